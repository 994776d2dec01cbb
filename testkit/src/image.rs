//! The container image of `ccsecrets`: one linux/amd64 OCI image (the binary, the shared
//! libraries it loads and the CA roots, all from this machine's Debian packages, and a 65532
//! user) written reproducibly as an OCI layout in a tar archive. `cargo xtask release` and the
//! runc tests build it with this one function.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder,
    RootFsBuilder, Sha256Digest,
};
use sha2::{Digest as _, Sha256};

/// Where the binary lives in the image; the entrypoint.
pub const ENTRYPOINT: &str = "/usr/local/bin/ccsecrets";
/// The user and group the image runs as by default (distroless' `nonroot`).
pub const USER: &str = "65532:65532";
/// The CA bundle: the first file rustls-native-certs (through rustls-platform-verifier and
/// openssl-probe) looks for on Linux.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

const PASSWD: &str = "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "nonroot:x:65532:\n";
/// Without this file glibc looks names up with `dns [!UNAVAIL=return] files`, which skips
/// `/etc/hosts` (Kubernetes `hostAliases`, compose `extra_hosts`) whenever DNS answers.
const NSSWITCH: &str = "hosts: files dns\n";

/// What the image is built from and what its labels say.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The `ccsecrets` binary for linux/amd64.
    pub binary: PathBuf,
    /// `org.opencontainers.image.version` (the reference name in the layout, too).
    pub version: String,
    /// `org.opencontainers.image.source`: the repository URL.
    pub source: String,
    /// `org.opencontainers.image.revision`: the commit.
    pub revision: String,
    /// `org.opencontainers.image.created` and every timestamp inside, in seconds since the
    /// epoch (the commit's time, so that one commit gives one digest).
    pub created: i64,
}

/// A written image.
#[derive(Debug, Clone)]
pub struct Image {
    pub archive: PathBuf,
    /// The manifest's digest (`sha256:…`): what a registry shows after `skopeo copy`.
    pub digest: String,
    /// The compressed layer's size: what a pull transfers.
    pub layer_size: u64,
    /// The Debian packages the image's files come from, with their versions.
    pub packages: Vec<String>,
}

/// One file of the image.
#[derive(Debug)]
enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
}

fn io_err(path: &Path, e: &std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

/// The standard output of a command that must succeed; its standard error when it fails.
pub fn command_output(cmd: &mut Command) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The shared objects `binary` loads, as `ldd` names them (the dynamic loader included): the
/// paths they must have in the image.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run ldd ({e}): install libc-bin (apt-get install libc-bin)")
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)", "/lib64/ld-linux-x86-64.so.2
        // (0x…)", "linux-vdso.so.1 (0x…)" (the kernel's, no file).
        let path = match line.split_once(" => ") {
            Some((name, rest)) => {
                let p = rest.split(" (").next().unwrap_or("").trim();
                if p == "not found" || p.is_empty() {
                    return Err(format!(
                        "{} needs {name}, which this machine lacks",
                        binary.display()
                    ));
                }
                p
            }
            None => line.split(" (").next().unwrap_or("").trim(),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// The Debian package (`name:arch`) that installed `path`.
fn package_of(path: &Path) -> Result<String, String> {
    let mut tried = vec![path.to_owned()];
    if let Ok(real) = std::fs::canonicalize(path) {
        tried.push(real);
    }
    for p in &tried {
        let Ok(out) = Command::new("dpkg")
            .arg("-S")
            .arg(p)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return Err(
                "cannot run dpkg: the image takes its C library and CA roots from Debian packages; build it on Debian or Ubuntu"
                    .into(),
            );
        };
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some((pkg, _)) = text.lines().next().and_then(|l| l.split_once(": ")) {
                return Ok(pkg.trim().to_owned());
            }
        }
    }
    Err(format!(
        "{} belongs to no Debian package (dpkg -S): the image ships only packaged libraries",
        path.display()
    ))
}

/// A package's version, from dpkg's database.
fn package_version(pkg: &str) -> Result<String, String> {
    let v = command_output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", pkg]))?;
    Ok(v.trim().to_owned())
}

/// `name:arch` → `name`.
fn bare(pkg: &str) -> &str {
    pkg.split(':').next().unwrap_or(pkg)
}

/// Adds `path` (absolute, in the image) and its parent directories.
fn add(tree: &mut BTreeMap<String, Node>, path: &str, node: Node) {
    let rel = path.trim_start_matches('/');
    let mut parent = String::new();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !parent.is_empty() {
            parent.push('/');
        }
        parent.push_str(part);
        tree.entry(parent.clone()).or_insert(Node::Dir);
    }
    tree.insert(rel.to_owned(), node);
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| io_err(path, &e))
}

/// The image's files and the packages they come from (`name=version`, sorted).
fn root_filesystem(binary: &Path) -> Result<(BTreeMap<String, Node>, Vec<String>), String> {
    let mut tree = BTreeMap::new();
    add(
        &mut tree,
        ENTRYPOINT,
        Node::File {
            data: read(binary)?,
            mode: 0o755,
        },
    );
    let mut packages = std::collections::BTreeSet::new();
    for lib in shared_libraries(binary)? {
        packages.insert(package_of(&lib)?);
        let path = lib.to_str().ok_or("a library path that is not UTF-8")?;
        add(
            &mut tree,
            path,
            Node::File {
                data: read(&lib)?,
                mode: 0o755,
            },
        );
    }
    // /etc/ssl/certs/ca-certificates.crt is generated by update-ca-certificates from the
    // ca-certificates package (dpkg owns the directory, not the file).
    let ca = Path::new(CA_BUNDLE);
    if !ca.is_file() {
        return Err(format!(
            "{CA_BUNDLE} is missing: install ca-certificates (apt-get install ca-certificates)"
        ));
    }
    package_version("ca-certificates").map_err(|_| {
        "the ca-certificates package is not installed (apt-get install ca-certificates)".to_owned()
    })?;
    packages.insert("ca-certificates".to_owned());
    add(
        &mut tree,
        CA_BUNDLE,
        Node::File {
            data: read(ca)?,
            mode: 0o644,
        },
    );
    for (path, text) in [
        ("/etc/passwd", PASSWD),
        ("/etc/group", GROUP),
        ("/etc/nsswitch.conf", NSSWITCH),
    ] {
        add(
            &mut tree,
            path,
            Node::File {
                data: text.as_bytes().to_vec(),
                mode: 0o644,
            },
        );
    }
    let mut versions = Vec::new();
    for pkg in &packages {
        let name = bare(pkg);
        // The licenses of what the image redistributes (LGPL for glibc, GPL with the runtime
        // exception for libgcc, MPL for the CA list).
        let copyright = PathBuf::from(format!("/usr/share/doc/{name}/copyright"));
        add(
            &mut tree,
            &copyright.display().to_string(),
            Node::File {
                data: read(&copyright)?,
                mode: 0o644,
            },
        );
        versions.push(format!("{name}={}", package_version(pkg)?));
    }
    versions.sort();
    versions.dedup();
    Ok((tree, versions))
}

/// The layer: an uncompressed tar of `tree` with fixed owners, modes and times.
fn layer_tar(tree: &BTreeMap<String, Node>, mtime: u64) -> Result<Vec<u8>, String> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, node) in tree {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        let data: &[u8] = match node {
            Node::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                &[]
            }
            Node::File { data, mode } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                data
            }
        };
        let name = match node {
            Node::Dir => format!("{path}/"),
            Node::File { .. } => path.clone(),
        };
        b.append_data(&mut h, &name, data)
            .map_err(|e| format!("layer entry {name}: {e}"))?;
    }
    b.into_inner().map_err(|e| format!("layer: {e}"))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    // The header's time is 0 and its OS byte fixed: the output depends on the input only.
    let mut gz = flate2::GzBuilder::new()
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(data).map_err(|e| format!("gzip: {e}"))?;
    gz.finish().map_err(|e| format!("gzip: {e}"))
}

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// JSON with every object's keys sorted: oci-spec keeps annotations and labels in `HashMap`s,
/// whose order changes from one run to the next (and so would the digest).
fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let v = serde_json::to_value(value).map_err(|e| format!("image JSON: {e}"))?;
    serde_json::to_vec(&sort(v)).map_err(|e| format!("image JSON: {e}"))
}

/// RFC 3339 in UTC for `secs` since the epoch (times before it are the epoch).
pub fn rfc3339(secs: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn descriptor(
    media_type: MediaType,
    blob: &[u8],
    annotations: Option<HashMap<String, String>>,
) -> Result<Descriptor, String> {
    let digest: Sha256Digest = sha256_hex(blob)
        .parse()
        .map_err(|e| format!("digest: {e}"))?;
    let mut d = DescriptorBuilder::default()
        .media_type(media_type)
        .size(blob.len() as u64)
        .digest(digest);
    if let Some(a) = annotations {
        d = d.annotations(a);
    }
    d.build().map_err(|e| format!("descriptor: {e}"))
}

/// Builds the image of `spec.binary` and writes it to `out` as an OCI layout in a tar archive
/// (`skopeo copy oci-archive:<out> …`, `podman load -i`, `docker load -i`).
pub fn write_archive(spec: &ImageSpec, out: &Path) -> Result<Image, String> {
    let (tree, packages) = root_filesystem(&spec.binary)?;
    let mtime = u64::try_from(spec.created).map_err(|_| "a creation time before 1970")?;
    let created = rfc3339(spec.created);
    let layer = layer_tar(&tree, mtime)?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let layer_gz = gzip(&layer)?;
    drop(layer);

    let annotations: HashMap<String, String> = [
        ("org.opencontainers.image.title", "ccsecrets".to_owned()),
        (
            "org.opencontainers.image.description",
            format!(
                "ccsecrets command line and agent (C library and CA roots from Debian: {})",
                packages.join(", ")
            ),
        ),
        ("org.opencontainers.image.version", spec.version.clone()),
        ("org.opencontainers.image.source", spec.source.clone()),
        ("org.opencontainers.image.revision", spec.revision.clone()),
        (
            "org.opencontainers.image.licenses",
            "MPL-2.0 AND LGPL-2.1-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1".to_owned(),
        ),
        ("org.opencontainers.image.created", created.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let err = |e: oci_spec::OciSpecError| format!("image configuration: {e}");
    let config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .user(USER)
                .entrypoint(vec![ENTRYPOINT.to_owned()])
                .cmd(vec!["--help".to_owned()])
                .env(vec!["PATH=/usr/local/bin".to_owned()])
                .working_dir("/")
                .labels(annotations.clone())
                .stop_signal("SIGTERM")
                .build()
                .map_err(err)?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id])
                .build()
                .map_err(err)?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created.clone())
                .created_by("cargo xtask release")
                .build()
                .map_err(err)?,
        ])
        .build()
        .map_err(err)?;
    let config_json = canonical_json(&config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config_json, None)?)
        .layers(vec![descriptor(
            MediaType::ImageLayerGzip,
            &layer_gz,
            None,
        )?])
        .annotations(annotations)
        .build()
        .map_err(|e| format!("image manifest: {e}"))?;
    let manifest_json = canonical_json(&manifest)?;
    let refs: HashMap<String, String> = [
        // skopeo's and podman's `oci-archive:<file>:<version>`.
        ("org.opencontainers.image.ref.name", spec.version.clone()),
        // The name `docker load` gives the image.
        (
            "io.containerd.image.name",
            format!("ccsecrets:{}", spec.version),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut manifest_desc = descriptor(MediaType::ImageManifest, &manifest_json, Some(refs))?;
    manifest_desc.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .build()
            .map_err(|e| format!("platform: {e}"))?,
    ));
    let digest = manifest_desc.digest().to_string();
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_desc])
        .build()
        .map_err(|e| format!("image index: {e}"))?;
    let index_json = canonical_json(&index)?;
    let layout = canonical_json(
        &OciLayoutBuilder::default()
            .image_layout_version("1.0.0")
            .build()
            .map_err(|e| format!("oci-layout: {e}"))?,
    )?;

    // The archive: the layout's directory tree, blobs named by their digests.
    let mut files: BTreeMap<String, Node> = BTreeMap::new();
    for blob in [&config_json, &manifest_json, &layer_gz] {
        add(
            &mut files,
            &format!("blobs/sha256/{}", sha256_hex(blob)),
            Node::File {
                data: blob.clone(),
                mode: 0o644,
            },
        );
    }
    add(
        &mut files,
        "index.json",
        Node::File {
            data: index_json,
            mode: 0o644,
        },
    );
    add(
        &mut files,
        "oci-layout",
        Node::File {
            data: layout,
            mode: 0o644,
        },
    );
    let archive = layer_tar(&files, mtime)?;
    std::fs::write(out, archive).map_err(|e| io_err(out, &e))?;
    Ok(Image {
        archive: out.to_owned(),
        digest,
        layer_size: layer_gz.len() as u64,
        packages,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ldd_lines_name_the_loader_and_the_libraries() {
        // This test binary is linked like ccsecrets (Rust, glibc).
        let exe = std::env::current_exe().unwrap();
        let libs = shared_libraries(&exe).unwrap();
        let names: Vec<String> = libs.iter().map(|p| p.display().to_string()).collect();
        assert!(names.iter().any(|n| n.ends_with("/libc.so.6")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("ld-linux")), "{names:?}");
        assert!(names.iter().all(|n| !n.contains("vdso")), "{names:?}");
    }

    #[test]
    fn the_same_input_gives_the_same_bytes_and_digest() {
        let tmp = tempfile::tempdir().unwrap();
        // A small dynamically linked program from this machine stands in for the binary.
        let spec = ImageSpec {
            binary: PathBuf::from("/bin/true"),
            version: "1.2.3".into(),
            source: "https://example.com/repo".into(),
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            created: 1_700_000_000,
        };
        let a = write_archive(&spec, &tmp.path().join("a.tar")).unwrap();
        let b = write_archive(&spec, &tmp.path().join("b.tar")).unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(
            std::fs::read(&a.archive).unwrap(),
            std::fs::read(&b.archive).unwrap()
        );
        assert!(
            a.packages.iter().any(|p| p.starts_with("libc6=")),
            "{:?}",
            a.packages
        );
        // Another commit time gives another image.
        let c = write_archive(
            &ImageSpec {
                created: 1_700_000_001,
                ..spec
            },
            &tmp.path().join("c.tar"),
        )
        .unwrap();
        assert_ne!(a.digest, c.digest);
    }
}
