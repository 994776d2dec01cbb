//! runc, the reference OCI runtime, for the image tests: unpacks an OCI archive with skopeo and
//! umoci, runs containers in the host's network namespace under a private runc root, and
//! removes every container and mount it made when dropped, on failure too.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The tools, each with how to install it.
const TOOLS: [(&str, &str, &str); 3] = [
    ("runc", "--version", "apt-get install runc"),
    ("umoci", "--version", "apt-get install umoci"),
    ("skopeo", "--version", "apt-get install skopeo"),
];

/// Panics, saying how to fix it, unless runc, umoci and skopeo are installed and this process
/// runs as root (runc creates containers as root only, without a user namespace setup).
pub fn require() {
    for (tool, arg, install) in TOOLS {
        assert!(
            crate::runs(tool, arg),
            "{tool} is required for the container image tests: install it with `{install}` (Debian 12 or later)"
        );
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_default();
    assert!(
        uid == "0",
        "the container image tests run containers with runc, which needs root: run the tests as root (CI does), uid here is {uid:?}"
    );
}

fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A bundle: a root filesystem and the runtime configuration to run it with.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    /// `config.json`, written by [`Runc::start`].
    pub config: Value,
}

impl Bundle {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The image's command: its entrypoint and its default arguments.
    pub fn args(&self) -> Vec<String> {
        self.config["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_args(&mut self, args: &[String]) {
        self.config["process"]["args"] = json!(args);
    }

    /// The process's `uid:gid`.
    pub fn user(&self) -> (u64, u64) {
        let u = &self.config["process"]["user"];
        (
            u["uid"].as_u64().unwrap_or(0),
            u["gid"].as_u64().unwrap_or(0),
        )
    }

    pub fn set_user(&mut self, uid: u64, gid: u64) {
        self.config["process"]["user"] = json!({"uid": uid, "gid": gid});
    }

    pub fn env(&mut self, name: &str, value: &str) {
        let prefix = format!("{name}=");
        let env = self.config["process"]["env"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut env: Vec<Value> = env
            .into_iter()
            .filter(|v| !v.as_str().is_some_and(|s| s.starts_with(&prefix)))
            .collect();
        env.push(json!(format!("{name}={value}")));
        self.config["process"]["env"] = json!(env);
    }

    pub fn read_only_root(&mut self, on: bool) {
        self.config["root"]["readonly"] = json!(on);
    }

    /// No capability at all (`capabilities: drop: [ALL]`, `cap_drop: [ALL]`).
    pub fn drop_all_capabilities(&mut self) {
        self.config["process"]["capabilities"] = json!({
            "bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []
        });
    }

    /// `allowPrivilegeEscalation: false`, `no-new-privileges:true`.
    pub fn no_new_privileges(&mut self, on: bool) {
        self.config["process"]["noNewPrivileges"] = json!(on);
    }

    /// Mounts host path `source` at `destination`.
    pub fn bind(&mut self, source: &Path, destination: &str, read_only: bool) {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        options.push(if read_only { "ro" } else { "rw" });
        self.mount(json!({
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": options,
        }));
    }

    fn mount(&mut self, m: Value) {
        match self.config["mounts"].as_array_mut() {
            Some(list) => list.push(m),
            None => self.config["mounts"] = json!([m]),
        }
    }

    /// What every runtime does: the host network namespace (hostNetwork here, so that the
    /// containers reach the test's loopback servers), no terminal, and the host's
    /// `/etc/hosts` and `/etc/resolv.conf`.
    fn prepare(&mut self) {
        self.config["process"]["terminal"] = json!(false);
        if let Some(ns) = self.config["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
        for f in ["/etc/hosts", "/etc/resolv.conf"] {
            if Path::new(f).exists() {
                self.bind(Path::new(f), f, true);
            }
        }
    }
}

/// A private runc: its own state directory, its own containers and mounts.
#[derive(Debug)]
pub struct Runc {
    root: tempfile::TempDir,
    work: tempfile::TempDir,
    containers: Vec<(String, Child)>,
    mounts: Vec<PathBuf>,
    bundles: usize,
}

impl Runc {
    /// A runc with its own state directory; panics, saying what to install, without the tools
    /// or root.
    pub fn private() -> Runc {
        require();
        Runc {
            root: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
            work: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
            containers: Vec::new(),
            mounts: Vec::new(),
            bundles: 0,
        }
    }

    fn runc(&self) -> Command {
        self_runc(self.root.path())
    }

    /// A fresh directory for the test's files (configuration, volumes).
    pub fn dir(&mut self, name: &str) -> PathBuf {
        let d = self.work.path().join(name);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    }

    /// Copies the image `tag` of OCI archive `archive` with skopeo into a layout, and unpacks
    /// it with umoci into a bundle whose runtime configuration comes from the image's
    /// (entrypoint, arguments, user, environment).
    pub fn unpack(&mut self, archive: &Path, tag: &str) -> Bundle {
        self.bundles += 1;
        let layout = self.work.path().join(format!("layout-{}", self.bundles));
        let dir = self.work.path().join(format!("bundle-{}", self.bundles));
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("oci-archive:{}:{tag}", archive.display()))
            .arg(format!("oci:{}:{tag}", layout.display())));
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&dir));
        let config = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| panic!("umoci wrote no readable config.json in {}", dir.display()));
        Bundle { dir, config }
    }

    /// A bundle for a root filesystem made by hand (`runc spec`'s defaults).
    pub fn bundle(&mut self, files: &[(&Path, &str)]) -> Bundle {
        self.bundles += 1;
        let dir = self.work.path().join(format!("bundle-{}", self.bundles));
        for (src, dst) in files {
            let to = dir.join("rootfs").join(dst.trim_start_matches('/'));
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
            std::fs::copy(src, &to).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
        run(Command::new("runc").args(["spec", "--bundle"]).arg(&dir));
        let config = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| panic!("runc spec wrote no config.json in {}", dir.display()));
        Bundle { dir, config }
    }

    /// A tmpfs mounted on the host with `options` (an `emptyDir` with `medium: Memory`, a
    /// compose tmpfs volume), unmounted when this is dropped.
    pub fn tmpfs(&mut self, name: &str, options: &str) -> PathBuf {
        let d = self.dir(name);
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&d));
        self.mounts.push(d.clone());
        d
    }

    /// Starts container `id` from `bundle` (`runc run`, in the foreground of a child process,
    /// which ends with the container's exit status).
    pub fn start(&mut self, id: &str, bundle: &mut Bundle) {
        bundle.prepare();
        let bytes = serde_json::to_vec_pretty(&bundle.config).unwrap_or_default();
        std::fs::write(bundle.dir.join("config.json"), bytes)
            .unwrap_or_else(|e| panic!("config.json: {e}"));
        let out = File::create(self.log(id, "out")).unwrap_or_else(|e| panic!("log: {e}"));
        let err = File::create(self.log(id, "err")).unwrap_or_else(|e| panic!("log: {e}"));
        let child = self
            .runc()
            .args(["run", "--bundle"])
            .arg(&bundle.dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run runc: {e}"));
        self.containers.push((id.to_owned(), child));
    }

    fn log(&self, id: &str, which: &str) -> PathBuf {
        self.work.path().join(format!("{id}.{which}"))
    }

    /// What container `id` wrote so far: (stdout, stderr).
    pub fn output(&self, id: &str) -> (String, String) {
        let read = |w| std::fs::read_to_string(self.log(id, w)).unwrap_or_default();
        (read("out"), read("err"))
    }

    /// `runc state`'s status ("creating", "created", "running", "stopped"), if it knows `id`.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self
            .runc()
            .args(["state", id])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["status"].as_str().map(str::to_owned)
    }

    /// Runs `args` in container `id` as the container's user (`runc exec`: what a compose
    /// `healthcheck` or a Kubernetes exec probe does).
    pub fn exec(&self, id: &str, user: (u64, u64), args: &[&str]) -> Output {
        self.runc()
            .args(["exec", "--user", &format!("{}:{}", user.0, user.1), id])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run runc exec: {e}"))
    }

    /// `runc kill <id> <signal>`.
    pub fn kill(&self, id: &str, signal: &str) {
        run(self.runc().args(["kill", id, signal]));
    }

    /// Waits up to `within` for container `id` to end; its exit status.
    pub fn wait(&mut self, id: &str, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let child = self
            .containers
            .iter_mut()
            .find(|(c, _)| c == id)
            .map(|(_, child)| child)
            .unwrap_or_else(|| panic!("no container {id}"));
        loop {
            if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not end within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        for (id, child) in &mut self.containers {
            let quiet = |c: &mut Command| {
                let _ = c
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            };
            quiet(self_runc(self.root.path()).args(["kill", id.as_str(), "KILL"]));
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            quiet(self_runc(self.root.path()).args(["delete", "--force", id.as_str()]));
        }
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount")
                .arg(m)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn self_runc(root: &Path) -> Command {
    let mut c = Command::new("runc");
    c.arg("--root").arg(root);
    c
}
