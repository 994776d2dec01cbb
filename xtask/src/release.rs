//! `cargo xtask release`: the artifacts a Terraform provider registry serves, in goreleaser's
//! layout: one zip per platform, `SHA256SUMS` over the zips and the manifest, a binary detached
//! GPG signature of it, and the registry manifest; beside them the command line's zips and its
//! linux/amd64 container image (an OCI archive). Zips and image are reproducible.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

const NAME: &str = "terraform-provider-ccsecrets";
/// The command line, released beside the provider (its own zip per platform, in the same
/// signed `SHA256SUMS`).
const CLI: &str = "ccsecrets";
const CLI_PACKAGE: &str = "ccsecrets-cli";
const MANIFEST: &str = "terraform-registry-manifest.json";

const USAGE: &str = "\
usage: cargo xtask release [--key <gpg key id> | --unsigned] [--out <dir>] [--binary <path>] [--target <triple>]...

  --key <id>        sign SHA256SUMS with this GPG key (default: $GPG_FINGERPRINT; $GNUPGHOME is honoured)
  --unsigned        skip the signature (Terraform will not install such a release from a registry)
  --out <dir>       where to write the artifacts (default: dist/ at the workspace root)
  --binary <path>   package this already built provider binary instead of building (host
                    platform, or the one --target names); the command line next to it
                    (`ccsecrets`) is packaged too when it is there
  --cli-binary <path>  the command line binary to package with --binary
  --target <triple> build for this target (repeatable; default: every installed target
                    that has a Terraform platform name)
  --no-image        do not write the container image (ccsecrets_<version>_linux_amd64.oci.tar;
                    it takes the C library and CA roots from this machine's Debian packages,
                    so it needs Debian or Ubuntu with dpkg, ldd and ca-certificates)
";

/// A Terraform platform, in Go's naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Platform {
    os: &'static str,
    arch: &'static str,
}

impl Platform {
    fn exe_suffix(self) -> &'static str {
        if self.os == "windows" { ".exe" } else { "" }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.os, self.arch)
    }
}

/// The platform of a Rust target triple, when Terraform has a name for it.
fn go_platform(triple: &str) -> Option<Platform> {
    let arch = match triple.split('-').next()? {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i586" => "386",
        "armv7" | "arm" => "arm",
        _ => return None,
    };
    let os = if triple.contains("-linux-") {
        "linux"
    } else if triple.ends_with("-apple-darwin") {
        "darwin"
    } else if triple.contains("-windows-") {
        "windows"
    } else if triple.ends_with("-freebsd") {
        "freebsd"
    } else {
        return None;
    };
    Some(Platform { os, arch })
}

/// One platform's binaries.
#[derive(Debug, Clone)]
struct Built {
    platform: Platform,
    provider: PathBuf,
    cli: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Options {
    binary: Option<PathBuf>,
    cli_binary: Option<PathBuf>,
    out: Option<PathBuf>,
    key: Option<String>,
    unsigned: bool,
    no_image: bool,
    targets: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--binary" => o.binary = Some(value("--binary")?.into()),
            "--cli-binary" => o.cli_binary = Some(value("--cli-binary")?.into()),
            "--out" => o.out = Some(value("--out")?.into()),
            "--key" => o.key = Some(value("--key")?),
            "--target" => o.targets.push(value("--target")?),
            "--unsigned" => o.unsigned = true,
            "--no-image" => o.no_image = true,
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if o.unsigned && o.key.is_some() {
        return Err("--unsigned and --key contradict each other".into());
    }
    if o.cli_binary.is_some() && o.binary.is_none() {
        return Err("--cli-binary goes with --binary".into());
    }
    if o.binary.is_some() && o.targets.len() > 1 {
        return Err("--binary packages one binary: give at most one --target".into());
    }
    Ok(o)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

// The output of a command that must succeed (one helper with the image builder).
use ccsecrets_testkit::image::command_output as output;

/// The provider's version, the cargo target directory and the repository URL, from `cargo
/// metadata`.
fn metadata() -> Result<(String, PathBuf, String), String> {
    let json = output(Command::new(cargo()).current_dir(root()).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    let meta: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("cargo metadata: {e}"))?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == NAME))
        .ok_or_else(|| format!("cargo metadata lists no package {NAME}"))?;
    let version = package["version"]
        .as_str()
        .ok_or_else(|| format!("cargo metadata: {NAME} has no version"))?;
    let repository = package["repository"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let target = meta["target_directory"]
        .as_str()
        .ok_or("cargo metadata has no target_directory")?;
    Ok((version.to_owned(), PathBuf::from(target), repository))
}

fn host_triple() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let info = output(Command::new(rustc).arg("-vV"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV printed no host".into())
}

/// The triples to build: those asked for, else every installed one Terraform can name (the
/// host first; one triple per platform).
fn targets(asked: &[String], host: &str) -> Result<Vec<(String, Platform)>, String> {
    let candidates: Vec<String> = if asked.is_empty() {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        std::iter::once(host.to_owned())
            .chain(installed.lines().map(str::trim).map(str::to_owned))
            .collect()
    } else {
        asked.to_vec()
    };
    let mut out: Vec<(String, Platform)> = Vec::new();
    for triple in candidates {
        let Some(p) = go_platform(&triple) else {
            if !asked.is_empty() {
                return Err(format!("no Terraform platform name for target {triple}"));
            }
            continue;
        };
        if out.iter().all(|(t, q)| *t != triple && *q != p) {
            out.push((triple, p));
        }
    }
    if out.is_empty() {
        return Err(format!("no target to build (host {host})"));
    }
    Ok(out)
}

/// `cargo build --release` of the provider and the command line for each target; the
/// binaries' paths.
fn build(
    targets: &[(String, Platform)],
    host: &str,
    target_dir: &Path,
) -> Result<Vec<Built>, String> {
    let mut out = Vec::new();
    for (triple, platform) in targets {
        println!("==> cargo build --release ({triple}, {platform})");
        let mut cmd = Command::new(cargo());
        cmd.current_dir(root()).args([
            "build",
            "--release",
            "-p",
            NAME,
            "--bin",
            NAME,
            "-p",
            CLI_PACKAGE,
            "--bin",
            CLI,
        ]);
        let dir = if triple == host {
            target_dir.join("release")
        } else {
            cmd.args(["--target", triple]);
            target_dir.join(triple).join("release")
        };
        let ok = cmd.status().is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "cargo build --release for {triple} failed (to build the host only: --target {host})"
            ));
        }
        out.push(Built {
            platform: *platform,
            provider: dir.join(format!("{NAME}{}", platform.exe_suffix())),
            cli: Some(dir.join(format!("{CLI}{}", platform.exe_suffix()))),
        });
    }
    Ok(out)
}

/// Refuses a binary that runs here but reports another version.
fn check_version(bin: &Path, wanted: &str) -> Result<(), String> {
    let printed = output(Command::new(bin).arg("--version"))?;
    if printed.trim() == wanted {
        Ok(())
    } else {
        Err(format!(
            "{} --version printed {:?}, expected {wanted:?}",
            bin.display(),
            printed.trim()
        ))
    }
}

/// The zip timestamp: `SOURCE_DATE_EPOCH` when set, else 1980-01-01 00:00:00 (zip's epoch).
fn zip_time(source_date_epoch: Option<&str>) -> Result<DateTime, String> {
    let Some(raw) = source_date_epoch.filter(|s| !s.trim().is_empty()) else {
        return Ok(DateTime::default());
    };
    let secs: i64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("SOURCE_DATE_EPOCH={raw:?} is not a number of seconds"))?;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let n = |v: i64| u8::try_from(v).unwrap_or(0);
    u16::try_from(year)
        .ok()
        .and_then(|y| {
            DateTime::from_date_and_time(
                y,
                n(month),
                n(day),
                n(rem / 3600),
                n(rem / 60 % 60),
                n(rem % 60),
            )
            .ok()
        })
        .ok_or_else(|| format!("SOURCE_DATE_EPOCH={raw} is outside zip's range (1980..2107)"))
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = BufReader::new(File::open(path).map_err(|e| format!("{}: {e}", path.display()))?);
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!("{:x}", h.finalize()))
}

/// Writes a zip holding only `entry` (the bytes of `bin`, mode 0755), reproducibly.
fn write_zip(bin: &Path, entry: &str, zip_path: &Path, mtime: DateTime) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", zip_path.display());
    let mut src = BufReader::new(File::open(bin).map_err(|e| format!("{}: {e}", bin.display()))?);
    let size = std::fs::metadata(bin)
        .map_err(|e| format!("{}: {e}", bin.display()))?
        .len();
    let file = File::create(zip_path).map_err(|e| err(&e))?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .system(System::Unix)
        .unix_permissions(0o755)
        .last_modified_time(mtime)
        .large_file(size >= u64::from(u32::MAX));
    zip.start_file(entry, options).map_err(|e| err(&e))?;
    std::io::copy(&mut src, &mut zip).map_err(|e| err(&e))?;
    zip.finish()
        .map_err(|e| err(&e))?
        .flush()
        .map_err(|e| err(&e))
}

/// One written artifact.
#[derive(Debug)]
struct Artifact {
    path: PathBuf,
    /// The packaged binary's size, for zips.
    binary_size: Option<u64>,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What the container image's labels say besides the version.
#[derive(Debug, Clone)]
struct ImageLabels {
    source: String,
    revision: String,
    /// Seconds since the epoch: the commit's time, or `SOURCE_DATE_EPOCH`.
    created: i64,
}

const LINUX_AMD64: Platform = Platform {
    os: "linux",
    arch: "amd64",
};

/// The image's labels from git: the commit (`-dirty` when tracked files differ from it) and
/// its time, unless `SOURCE_DATE_EPOCH` is set.
fn image_labels(source: &str) -> Result<ImageLabels, String> {
    let git = |args: &[&str]| {
        output(Command::new("git").current_dir(root()).args(args))
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                format!("the container image is labelled with the commit: {e} (or pass --no-image)")
            })
    };
    let mut revision = git(&["rev-parse", "HEAD"])?;
    if !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty() {
        println!("    (uncommitted changes: the image's revision label is {revision}-dirty)");
        revision.push_str("-dirty");
    }
    let created = match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={raw:?} is not a number of seconds"))?,
        None => {
            let raw = git(&["log", "-1", "--format=%ct"])?;
            raw.parse::<i64>()
                .map_err(|_| format!("git log printed {raw:?} for the commit time"))?
        }
    };
    Ok(ImageLabels {
        source: source.to_owned(),
        revision,
        created,
    })
}

/// Writes the zips, the container image (with `image`: for linux/amd64, when the command line
/// is built for it), the manifest and `SHA256SUMS` into `out` (after removing this version's
/// previous artifacts there). Returns them with `SHA256SUMS` last, and the image.
fn package(
    out: &Path,
    version: &str,
    binaries: &[Built],
    manifest: &[u8],
    mtime: DateTime,
    image: Option<&ImageLabels>,
) -> Result<(Vec<Artifact>, Option<ccsecrets_testkit::image::Image>), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let prefix = format!("{NAME}_{version}_");
    let cli_prefix = format!("{CLI}_{version}_");
    for entry in std::fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = file_name(&path);
        if name.starts_with(&prefix) || name.starts_with(&cli_prefix) {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let mut artifacts = Vec::new();
    for b in binaries {
        let platform = b.platform;
        let zip_path = out.join(format!("{prefix}{platform}.zip"));
        let entry = format!("{NAME}_v{version}{}", platform.exe_suffix());
        write_zip(&b.provider, &entry, &zip_path, mtime)?;
        artifacts.push(Artifact {
            path: zip_path,
            binary_size: std::fs::metadata(&b.provider).map(|m| m.len()).ok(),
        });
        if let Some(cli) = &b.cli {
            let zip_path = out.join(format!("{cli_prefix}{platform}.zip"));
            write_zip(
                cli,
                &format!("{CLI}{}", platform.exe_suffix()),
                &zip_path,
                mtime,
            )?;
            artifacts.push(Artifact {
                path: zip_path,
                binary_size: std::fs::metadata(cli).map(|m| m.len()).ok(),
            });
        }
    }
    let mut written_image = None;
    let linux_cli = binaries
        .iter()
        .find(|b| b.platform == LINUX_AMD64)
        .and_then(|b| b.cli.as_ref());
    if let (Some(labels), Some(cli)) = (image, linux_cli) {
        let path = out.join(format!("{cli_prefix}{LINUX_AMD64}.oci.tar"));
        println!("==> container image {}", file_name(&path));
        let img = ccsecrets_testkit::image::write_archive(
            &ccsecrets_testkit::image::ImageSpec {
                binary: cli.clone(),
                version: version.to_owned(),
                source: labels.source.clone(),
                revision: labels.revision.clone(),
                created: labels.created,
            },
            &path,
        )?;
        artifacts.push(Artifact {
            path,
            binary_size: None,
        });
        written_image = Some(img);
    }
    let manifest_path = out.join(format!("{prefix}manifest.json"));
    std::fs::write(&manifest_path, manifest)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    artifacts.push(Artifact {
        path: manifest_path,
        binary_size: None,
    });
    let mut lines = artifacts
        .iter()
        .map(|a| {
            Ok(format!(
                "{}  {}\n",
                sha256_file(&a.path)?,
                file_name(&a.path)
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    lines.sort_by(|a, b| {
        a.split_once("  ")
            .map(|x| x.1)
            .cmp(&b.split_once("  ").map(|x| x.1))
    });
    let sums = out.join(format!("{prefix}SHA256SUMS"));
    std::fs::write(&sums, lines.concat()).map_err(|e| format!("{}: {e}", sums.display()))?;
    artifacts.push(Artifact {
        path: sums,
        binary_size: None,
    });
    Ok((artifacts, written_image))
}

/// Checks the registry manifest and returns its bytes.
fn read_manifest() -> Result<Vec<u8>, String> {
    let path = root().join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    if v["version"] != 1 || !v["metadata"]["protocol_versions"].is_array() {
        return Err(format!(
            "{} must be {{\"version\": 1, \"metadata\": {{\"protocol_versions\": [\"6.0\"]}}}}",
            path.display()
        ));
    }
    Ok(bytes)
}

fn gpg() -> Command {
    let mut cmd = Command::new("gpg");
    cmd.arg("--batch");
    cmd
}

fn gpg_missing(e: &std::io::Error) -> String {
    format!("cannot run gpg ({e}): install gnupg (apt-get install gnupg), or build with --unsigned")
}

/// Fails early (before a long build) when gpg or the secret key is missing.
fn check_key(key: &str) -> Result<(), String> {
    let out = gpg()
        .args(["--list-secret-keys", "--with-colons", key])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| gpg_missing(&e))?;
    if out.status.success() {
        Ok(())
    } else {
        let home = std::env::var("GNUPGHOME").unwrap_or_else(|_| "~/.gnupg".into());
        Err(format!(
            "no GPG secret key {key:?} in {home}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Signs `sums` with a binary detached signature (Terraform rejects armored ones) and
/// verifies it.
fn sign(sums: &Path, key: &str) -> Result<PathBuf, String> {
    let sig = PathBuf::from(format!("{}.sig", sums.display()));
    let out = gpg()
        .args(["--yes", "--no-armor", "--local-user", key, "--output"])
        .arg(&sig)
        .arg("--detach-sign")
        .arg(sums)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| gpg_missing(&e))?;
    if !out.status.success() {
        return Err(format!(
            "gpg --detach-sign with key {key:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let verify = gpg()
        .arg("--verify")
        .args([&sig, sums])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| gpg_missing(&e))?;
    if !verify.status.success() {
        return Err(format!(
            "gpg --verify of the new signature failed: {}",
            String::from_utf8_lossy(&verify.stderr).trim()
        ));
    }
    Ok(sig)
}

fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1024.0 * 1024.0);
    format!("{m:.1} MiB ({bytes} bytes)")
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        #[allow(clippy::print_stdout)]
        {
            println!("{USAGE}");
        }
        return Ok(());
    }
    let opts = parse(args)?;
    // An explicit --unsigned wins over GPG_FINGERPRINT.
    let key = match (&opts.key, opts.unsigned) {
        (Some(k), _) => Some(k.clone()),
        (None, true) => None,
        (None, false) => std::env::var("GPG_FINGERPRINT")
            .ok()
            .filter(|k| !k.trim().is_empty()),
    };
    match &key {
        Some(k) => check_key(k)?,
        None if opts.unsigned => {}
        None => {
            return Err(
                "no signing key: pass --key <gpg key id> or set GPG_FINGERPRINT \
                        (Terraform installs only signed providers from a registry), \
                        or pass --unsigned to skip the signature"
                    .into(),
            );
        }
    }
    let manifest = read_manifest()?;
    let mtime = zip_time(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())?;
    let (version, target_dir, repository) = metadata()?;
    let labels = if opts.no_image {
        None
    } else {
        Some(image_labels(&repository)?)
    };
    let host = host_triple()?;
    let host_platform =
        go_platform(&host).ok_or_else(|| format!("no Terraform platform name for host {host}"))?;
    let binaries = match &opts.binary {
        Some(bin) => {
            let platform = match opts.targets.first() {
                Some(t) => go_platform(t)
                    .ok_or_else(|| format!("no Terraform platform name for target {t}"))?,
                None => host_platform,
            };
            let cli = opts.cli_binary.clone().or_else(|| {
                Some(bin.with_file_name(format!("{CLI}{}", platform.exe_suffix())))
                    .filter(|p| p.is_file())
            });
            if cli.is_none() {
                println!(
                    "    (no {CLI} binary next to {}: the command line is not packaged)",
                    bin.display()
                );
            }
            vec![Built {
                platform,
                provider: bin.clone(),
                cli,
            }]
        }
        None => build(&targets(&opts.targets, &host)?, &host, &target_dir)?,
    };
    for b in &binaries {
        for bin in std::iter::once(&b.provider).chain(&b.cli) {
            if !bin.is_file() {
                return Err(format!("{} is not a file", bin.display()));
            }
        }
        if b.platform == host_platform {
            check_version(&b.provider, &format!("{NAME} v{version}"))?;
            if let Some(cli) = &b.cli {
                check_version(cli, &format!("{CLI} {version}"))?;
            }
        }
    }
    let out = opts.out.clone().unwrap_or_else(|| root().join("dist"));
    println!(
        "==> packaging {NAME} and {CLI} {version} into {}",
        out.display()
    );
    let (mut artifacts, image) =
        package(&out, &version, &binaries, &manifest, mtime, labels.as_ref())?;
    if let Some(key) = &key {
        let sums = &artifacts.last().ok_or("no SHA256SUMS was written")?.path;
        let sig = sign(sums, key)?;
        artifacts.push(Artifact {
            path: sig,
            binary_size: None,
        });
    }
    for a in &artifacts {
        let size = std::fs::metadata(&a.path).map(|m| m.len()).unwrap_or(0);
        match a.binary_size {
            Some(b) => println!(
                "    {}\n        binary {}\n        zip    {}",
                a.path.display(),
                mib(b),
                mib(size)
            ),
            None => println!("    {}", a.path.display()),
        }
    }
    match &image {
        Some(img) => println!(
            "image {} (linux/amd64): digest {}\n    layer {} compressed; files from Debian packages {}\n    load it: skopeo copy oci-archive:{}:{version} docker://<registry>/ccsecrets:{version}",
            file_name(&img.archive),
            img.digest,
            mib(img.layer_size),
            img.packages.join(" "),
            img.archive.display(),
        ),
        None if opts.no_image => println!("no container image (--no-image)"),
        None => println!("no container image: no command line for {LINUX_AMD64} was built"),
    }
    match &key {
        Some(k) => println!("signed SHA256SUMS with GPG key {k}"),
        None => println!(
            "UNSIGNED (--unsigned): no SHA256SUMS.sig was written; a registry cannot serve this release"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn targets_map_to_go_platform_names() {
        for (triple, want) in [
            ("x86_64-unknown-linux-gnu", Some("linux_amd64")),
            ("x86_64-unknown-linux-musl", Some("linux_amd64")),
            ("aarch64-unknown-linux-gnu", Some("linux_arm64")),
            ("aarch64-apple-darwin", Some("darwin_arm64")),
            ("x86_64-apple-darwin", Some("darwin_amd64")),
            ("x86_64-pc-windows-msvc", Some("windows_amd64")),
            ("i686-unknown-linux-gnu", Some("linux_386")),
            ("armv7-unknown-linux-gnueabihf", Some("linux_arm")),
            ("x86_64-unknown-freebsd", Some("freebsd_amd64")),
            ("wasm32-unknown-unknown", None),
            ("x86_64-unknown-none", None),
        ] {
            assert_eq!(
                go_platform(triple).map(|p| p.to_string()).as_deref(),
                want,
                "{triple}"
            );
        }
        assert_eq!(
            go_platform("x86_64-pc-windows-gnu").unwrap().exe_suffix(),
            ".exe"
        );
    }

    #[test]
    fn one_target_per_platform_host_first() {
        let host = "x86_64-unknown-linux-gnu";
        let asked = vec![
            host.to_owned(),
            "x86_64-unknown-linux-musl".to_owned(),
            "aarch64-apple-darwin".to_owned(),
        ];
        let t = targets(&asked, host).unwrap();
        let names: Vec<_> = t.iter().map(|(t, p)| format!("{t}={p}")).collect();
        assert_eq!(
            names,
            [
                "x86_64-unknown-linux-gnu=linux_amd64",
                "aarch64-apple-darwin=darwin_arm64"
            ]
        );
        assert!(targets(&["wasm32-unknown-unknown".to_owned()], host).is_err());
    }

    #[test]
    fn arguments() {
        let a = |v: &[&str]| parse(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let o = a(&["--binary", "b", "--out", "o", "--key", "K"]).unwrap();
        assert_eq!(
            (
                o.binary.unwrap(),
                o.out.unwrap(),
                o.key.unwrap(),
                o.unsigned
            ),
            (
                PathBuf::from("b"),
                PathBuf::from("o"),
                "K".to_owned(),
                false
            )
        );
        assert!(a(&["--unsigned"]).unwrap().unsigned);
        assert!(a(&["--no-image"]).unwrap().no_image);
        assert!(!a(&["--unsigned"]).unwrap().no_image);
        assert!(
            a(&["--unsigned", "--key", "K"])
                .unwrap_err()
                .contains("contradict")
        );
        assert!(a(&["--key"]).unwrap_err().contains("--key needs a value"));
        assert!(a(&["--bogus"]).unwrap_err().contains("unknown argument"));
        assert!(a(&["--binary", "b", "--target", "x", "--target", "y"]).is_err());
    }

    #[test]
    fn zip_time_defaults_to_1980_and_follows_source_date_epoch() {
        assert_eq!(zip_time(None).unwrap().to_string(), "1980-01-01 00:00:00");
        assert_eq!(
            zip_time(Some("")).unwrap().to_string(),
            "1980-01-01 00:00:00"
        );
        // 2023-11-14T22:13:20Z; zip keeps even seconds.
        assert_eq!(
            zip_time(Some("1700000000")).unwrap().to_string(),
            "2023-11-14 22:13:20"
        );
        assert_eq!(
            zip_time(Some("951782400")).unwrap().to_string(),
            "2000-02-29 00:00:00"
        );
        assert!(zip_time(Some("0")).unwrap_err().contains("outside"));
        assert!(zip_time(Some("soon")).unwrap_err().contains("not a number"));
    }

    #[test]
    fn the_image_is_written_for_linux_amd64_and_listed_in_sha256sums() {
        let tmp = tempfile::tempdir().unwrap();
        let provider = tmp.path().join("provider");
        std::fs::write(&provider, b"provider").unwrap();
        // A dynamically linked program of this machine stands in for the command line.
        let binaries = vec![Built {
            platform: LINUX_AMD64,
            provider,
            cli: Some(PathBuf::from("/bin/true")),
        }];
        let labels = ImageLabels {
            source: "https://example.com/repo".into(),
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            created: 1_700_000_000,
        };
        let manifest = br#"{"version": 1, "metadata": {"protocol_versions": ["6.0"]}}"#;
        let run = |dir: &str| {
            package(
                &tmp.path().join(dir),
                "1.2.3",
                &binaries,
                manifest,
                DateTime::default(),
                Some(&labels),
            )
            .unwrap()
        };
        let (arts, image) = run("a");
        let image = image.unwrap();
        let name = format!("{CLI}_1.2.3_linux_amd64.oci.tar");
        assert_eq!(file_name(&image.archive), name);
        assert!(arts.iter().any(|a| file_name(&a.path) == name));
        let sums = std::fs::read_to_string(&arts.last().unwrap().path).unwrap();
        let line = format!("{}  {name}\n", sha256_file(&image.archive).unwrap());
        assert!(sums.contains(&line), "{sums}");
        // Another run, another directory: the same digest and bytes.
        let (_, again) = run("b");
        assert_eq!(again.unwrap().digest, image.digest);
        assert_eq!(
            std::fs::read(tmp.path().join("a").join(&name)).unwrap(),
            std::fs::read(tmp.path().join("b").join(&name)).unwrap()
        );
    }

    #[test]
    fn package_is_reproducible_and_in_the_registry_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("provider");
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&bin, &body).unwrap();
        let linux = Platform {
            os: "linux",
            arch: "amd64",
        };
        let darwin = Platform {
            os: "darwin",
            arch: "arm64",
        };
        let binaries = vec![
            Built {
                platform: linux,
                provider: bin.clone(),
                cli: Some(bin.clone()),
            },
            Built {
                platform: darwin,
                provider: bin.clone(),
                cli: Some(bin.clone()),
            },
        ];
        let manifest = br#"{"version": 1, "metadata": {"protocol_versions": ["6.0"]}}"#;
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        // A stale artifact of the same version is removed; other files are kept.
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join(format!("{NAME}_1.2.3_SHA256SUMS.sig")), "stale").unwrap();
        std::fs::write(a.join("README"), "keep").unwrap();
        let (arts, image) =
            package(&a, "1.2.3", &binaries, manifest, DateTime::default(), None).unwrap();
        assert!(image.is_none());
        // Written later: the timestamps inside must not depend on the clock.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        package(&b, "1.2.3", &binaries, manifest, DateTime::default(), None).unwrap();

        let mut names: Vec<String> = std::fs::read_dir(&a)
            .unwrap()
            .map(|e| file_name(&e.unwrap().path()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "README".to_owned(),
                format!("{CLI}_1.2.3_darwin_arm64.zip"),
                format!("{CLI}_1.2.3_linux_amd64.zip"),
                format!("{NAME}_1.2.3_SHA256SUMS"),
                format!("{NAME}_1.2.3_darwin_arm64.zip"),
                format!("{NAME}_1.2.3_linux_amd64.zip"),
                format!("{NAME}_1.2.3_manifest.json"),
            ]
        );
        let names: Vec<String> = [&names[..1], &names[3..], &names[1..3]].concat();
        for n in &names[1..] {
            assert_eq!(
                std::fs::read(a.join(n)).unwrap(),
                std::fs::read(b.join(n)).unwrap(),
                "{n} differs between two runs"
            );
        }
        assert_eq!(file_name(&arts.last().unwrap().path), names[1]);
        assert_eq!(std::fs::read(a.join(&names[4])).unwrap(), manifest);

        let zip_path = a.join(&names[3]);
        let mut zip = zip::ZipArchive::new(File::open(&zip_path).unwrap()).unwrap();
        assert_eq!(zip.len(), 1);
        let mut entry = zip.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), format!("{NAME}_v1.2.3"));
        assert_eq!(entry.unix_mode().unwrap() & 0o7777, 0o755);
        assert_eq!(entry.compression(), CompressionMethod::Deflated);
        assert_eq!(
            entry.last_modified().unwrap().to_string(),
            "1980-01-01 00:00:00"
        );
        let mut unpacked = Vec::new();
        entry.read_to_end(&mut unpacked).unwrap();
        assert_eq!(unpacked, body);

        // The command line's zip holds `ccsecrets`.
        let mut zip = zip::ZipArchive::new(File::open(a.join(&names[6])).unwrap()).unwrap();
        assert_eq!(zip.by_index(0).unwrap().name().unwrap(), CLI);

        // goreleaser's format: "<sha256>  <name>", sorted by name, the manifest and the
        // command line's zips included.
        let sums = std::fs::read_to_string(a.join(&names[1])).unwrap();
        let mut listed: Vec<&String> = names[2..].iter().collect();
        listed.sort();
        let want: String = listed
            .iter()
            .map(|n| format!("{}  {n}\n", sha256_file(&a.join(n)).unwrap()))
            .collect();
        assert_eq!(sums, want);
    }
}
