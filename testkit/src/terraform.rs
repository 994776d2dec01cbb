//! Runs the real `terraform` binary against locally built providers (through `dev_overrides`
//! in a private CLI configuration, so the real handshake and AutoMTLS are exercised), in a
//! temporary directory with a clean environment and a hard timeout.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Terraform binary under test.
#[derive(Debug, Clone)]
pub struct Terraform {
    /// Its path.
    pub bin: PathBuf,
    /// `terraform version -json` → `terraform_version`.
    pub version: String,
}

/// Parses "1.11.4" into (1, 11, 4).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.trim().trim_start_matches('v').split(['.', '-']);
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

impl Terraform {
    /// The binary at `path`, checked to be Terraform >= 1.10.
    pub fn at(path: &Path) -> Terraform {
        let out = Command::new(path)
            .args(["version", "-json"])
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{} version -json printed no JSON", path.display()));
        let version = v["terraform_version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let parsed = parse_version(&version).unwrap_or((0, 0, 0));
        assert!(
            parsed >= (1, 10, 0),
            "Terraform {version} at {} is too old: ephemeral resources need Terraform >= 1.10.",
            path.display()
        );
        Terraform {
            bin: path.to_owned(),
            version,
        }
    }

    /// The binary from `TF_ACC_TERRAFORM_PATH`, else `terraform` on PATH. Panics with install
    /// instructions when there is none.
    pub fn find() -> &'static Terraform {
        static FOUND: OnceLock<Terraform> = OnceLock::new();
        FOUND.get_or_init(|| {
            let path = std::env::var_os("TF_ACC_TERRAFORM_PATH")
                .map(PathBuf::from)
                .or_else(|| which("terraform"))
                .unwrap_or_else(|| {
                    panic!(
                        "Terraform >= 1.10 is required for the acceptance tests but was not found.\n\
                         Install it (https://developer.hashicorp.com/terraform/install) and put it on PATH,\n\
                         or set TF_ACC_TERRAFORM_PATH to the binary."
                    )
                });
            Terraform::at(&path)
        })
    }
}

/// The first executable called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The outcome of one Terraform command.
#[derive(Debug)]
pub struct Run {
    /// The command, for messages.
    pub args: Vec<String>,
    /// Exit code (None when killed).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// True when Terraform exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout and stderr together.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The output with runs of whitespace folded, so wrapped diagnostics can be matched.
    pub fn folded(&self) -> String {
        self.output()
            .replace(['│', '╷', '╵'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Panics with the whole output unless Terraform succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.ok(),
            "terraform {:?} failed ({:?}):\n{}",
            self.args,
            self.code,
            self.output()
        );
        self
    }

    /// Panics unless Terraform failed and its (folded) output contains every text of `wanted`.
    pub fn assert_fails_with(&self, wanted: &[&str]) -> &Self {
        assert!(
            !self.ok(),
            "terraform {:?} succeeded but should have failed:\n{}",
            self.args,
            self.output()
        );
        self.assert_says(wanted)
    }

    /// Panics unless the (folded) output contains every text of `wanted`.
    pub fn assert_says(&self, wanted: &[&str]) -> &Self {
        let folded = self.folded();
        for w in wanted {
            let w_folded = w.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                folded.contains(&w_folded),
                "terraform {:?}: output lacks {w:?}:\n{}",
                self.args,
                self.output()
            );
        }
        self
    }
}

/// A Terraform working directory with its own CLI configuration and environment.
#[derive(Debug)]
pub struct Workdir {
    dir: tempfile::TempDir,
    terraform: Terraform,
    env: BTreeMap<String, String>,
    /// Hard limit for one command.
    pub timeout: Duration,
}

/// Environment variables never inherited from the caller: they could change what a test sees.
/// Variables of the test runner's own environment that never reach Terraform: a developer's
/// cloud sign-in must not change what a test does.
const SCRUBBED_PREFIXES: [&str; 9] = [
    "TF_",
    "VAULT_",
    "BAO_",
    "CCSECRETS_",
    "GENESYSCLOUD_",
    "AWS_",
    "AZURE_",
    "IDENTITY_",
    "MSI_",
];

impl Workdir {
    /// A working directory where each `(source address, binary)` provider is served by
    /// `dev_overrides`.
    pub fn new(providers: &[(&str, &Path)]) -> Workdir {
        Self::with_terraform(Terraform::find(), providers)
    }

    /// The same with a given Terraform binary.
    pub fn with_terraform(terraform: &Terraform, providers: &[(&str, &Path)]) -> Workdir {
        let dir = tempfile::Builder::new()
            .prefix("ccsecrets-acc")
            .tempdir()
            .expect("tempdir");
        let mut overrides = String::new();
        for (source, bin) in providers {
            // A directory of its own per provider, holding only a link to the binary.
            let type_name = source
                .rsplit('/')
                .next()
                .expect("source address has a type");
            let pdir = dir.path().join("providers").join(type_name);
            std::fs::create_dir_all(&pdir).expect("provider dir");
            std::os::unix::fs::symlink(bin, pdir.join(format!("terraform-provider-{type_name}")))
                .expect("symlink provider");
            overrides.push_str(&format!("    \"{source}\" = \"{}\"\n", pdir.display()));
        }
        let cli = format!(
            "provider_installation {{\n  dev_overrides {{\n{overrides}  }}\n  direct {{}}\n}}\n"
        );
        std::fs::write(dir.path().join("cli.tfrc"), cli).expect("write cli config");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        let mut env = BTreeMap::new();
        env.insert(
            "TF_CLI_CONFIG_FILE".to_owned(),
            dir.path().join("cli.tfrc").display().to_string(),
        );
        env.insert("CHECKPOINT_DISABLE".to_owned(), "1".to_owned());
        env.insert("TF_IN_AUTOMATION".to_owned(), "1".to_owned());
        env.insert("TF_INPUT".to_owned(), "0".to_owned());
        env.insert(
            "HOME".to_owned(),
            dir.path().join("home").display().to_string(),
        );
        Workdir {
            dir,
            terraform: terraform.clone(),
            env,
            timeout: Duration::from_secs(240),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating directories).
    pub fn file(&self, name: &str, content: &str) -> &Self {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write file");
        self
    }

    /// Removes a file.
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.path().join(name));
    }

    /// Sets an environment variable for every command.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Unsets one.
    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self
    }

    /// Runs `terraform <args>` to completion (killed after `timeout`).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_under(&[], args)
    }

    /// Runs `<wrapper...> terraform <args>`, e.g. `ccsecrets exec --` as the wrapper, with the
    /// same environment as [`Workdir::run`].
    pub fn run_under(&self, wrapper: &[&std::ffi::OsStr], args: &[&str]) -> Run {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&self.terraform.bin);
                c
            }
            None => Command::new(&self.terraform.bin),
        };
        cmd.args(args).current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if SCRUBBED_PREFIXES.iter().any(|p| k.starts_with(p)) {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn terraform");
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait terraform") {
                break status.code();
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                let (o, e) = (
                    t_out.join().unwrap_or_default(),
                    t_err.join().unwrap_or_default(),
                );
                panic!(
                    "terraform {args:?} did not finish within {:?}:\n{o}\n{e}",
                    self.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Run {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            code,
            stdout: t_out.join().unwrap_or_default(),
            stderr: t_err.join().unwrap_or_default(),
            elapsed: started.elapsed(),
        }
    }

    /// `terraform plan -out=tfplan`.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "-no-color", "-input=false", "-out=tfplan"])
    }

    /// `terraform apply tfplan` (the saved plan).
    pub fn apply_plan(&self) -> Run {
        self.run(&["apply", "-no-color", "-input=false", "tfplan"])
    }

    /// `terraform apply -auto-approve` (plans and applies in one go).
    pub fn apply(&self) -> Run {
        self.run(&["apply", "-no-color", "-input=false", "-auto-approve"])
    }

    /// The bytes of a file in the directory (empty when absent).
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Everything Terraform persisted that a secret must never reach: the state, every file
    /// inside the saved plan (a zip, so read decompressed), and `terraform show -json` of the
    /// plan and of the state.
    pub fn persisted(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(
            "terraform.tfstate".to_owned(),
            self.read("terraform.tfstate"),
        )];
        let plan = self.read("tfplan");
        if !plan.is_empty() {
            out.push(("tfplan (raw)".to_owned(), plan.clone()));
            let mut zip =
                zip::ZipArchive::new(std::io::Cursor::new(plan)).expect("the saved plan is a zip");
            for i in 0..zip.len() {
                let mut f = zip.by_index(i).expect("plan entry");
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).expect("read plan entry");
                let name = f.name().map(|n| n.into_owned()).unwrap_or_default();
                out.push((format!("tfplan:{name}"), bytes));
            }
            let show = self.run(&["show", "-json", "tfplan"]);
            out.push((
                "terraform show -json tfplan".to_owned(),
                show.output().into_bytes(),
            ));
        }
        let show = self.run(&["show", "-json"]);
        out.push((
            "terraform show -json".to_owned(),
            show.output().into_bytes(),
        ));
        out
    }
}

/// Panics if any of `secrets` occurs in any of `places` (as text, or base64-encoded).
pub fn assert_no_secrets(places: &[(String, Vec<u8>)], secrets: &[String]) {
    use base64::Engine;
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        let encodings = [
            secret.clone(),
            base64::engine::general_purpose::STANDARD.encode(secret),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret),
        ];
        for (name, bytes) in places {
            for enc in &encodings {
                let found = bytes.windows(enc.len()).any(|w| w == enc.as_bytes());
                assert!(
                    !found,
                    "a secret (starting {:?}) leaked into {name}",
                    &secret[..4]
                );
            }
        }
    }
}
