//! The `ccsecrets` binary against a real OpenBao server and the platform stand-ins: exec with
//! real children (exit status, signals, revocation in every path), token, revoke, check,
//! configuration errors, store and platform failures, GitHub masking, and Terraform without
//! ephemeral blocks run under exec. No output of any test holds a secret it should not.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ccsecrets_testkit::Fault;
use ccsecrets_testkit::cxone::CxoneStandin;
use ccsecrets_testkit::genesys::{self, GenesysStandin};
use ccsecrets_testkit::openbao::{OpenBao, ROOT_TOKEN};
use ccsecrets_testkit::terraform::Workdir;
use serde_json::json;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ccsecrets")
}

fn random(prefix: &str) -> String {
    let body: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect();
    format!("{prefix}-{body}")
}

/// OpenBao, both stand-ins, one Genesys client and one CXone access key in Vault, and a
/// directory for the configuration file.
struct World {
    bao: OpenBao,
    genesys: GenesysStandin,
    cxone: CxoneStandin,
    client_id: String,
    client_secret: String,
    access_key_secret: String,
    cx_client_secret: String,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let bao = OpenBao::start();
        let genesys = GenesysStandin::start();
        let cxone = CxoneStandin::start();
        let client_id = random("client");
        let client_secret = random("gcsecret");
        genesys.add_client(&client_id, &client_secret, "org-1");
        bao.kv_put(
            "genesys/prod/pipeline",
            json!({"client_id": client_id, "client_secret": client_secret}),
        );
        let access_key_id = format!("AKID{}==", random("k"));
        let access_key_secret = format!("{}/x+y==", random("aks"));
        let cx_client_id = random("app");
        let cx_client_secret = random("appsecret");
        cxone.add_app(&cx_client_id, &cx_client_secret);
        cxone.add_access_key(
            &access_key_id,
            &access_key_secret,
            "11eb0000-0000-4000-8000-0242ac110002",
        );
        bao.kv_put(
            "cxone/prod/pipeline",
            json!({"access_key_id": access_key_id, "access_key_secret": access_key_secret,
                   "client_id": cx_client_id, "client_secret": cx_client_secret}),
        );
        World {
            bao,
            genesys,
            cxone,
            client_id,
            client_secret,
            access_key_secret,
            cx_client_secret,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The usual configuration: one Genesys and one CXone block at the stand-ins.
    fn config(&self) -> String {
        format!(
            r#"environment = "prod"
vault {{
  address = "{addr}"
}}
genesys_token "deploy" {{
  path      = "genesys/{{environment}}/pipeline"
  region    = "us-east-1"
  login_url = "{g}"
  api_url   = "{g}"
}}
cxone_token "deploy" {{
  path   = "cxone/{{environment}}/pipeline"
  issuer = "{c}"
}}
"#,
            addr = self.bao.addr(),
            g = self.genesys.url(),
            c = self.cxone.url()
        )
    }

    fn write(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("ccsecrets.hcl");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn secrets(&self) -> Vec<String> {
        let mut s = vec![
            self.client_secret.clone(),
            self.access_key_secret.clone(),
            self.cx_client_secret.clone(),
            ROOT_TOKEN.to_owned(),
        ];
        s.extend(self.genesys.issued_tokens());
        s.extend(self.cxone.issued_tokens());
        s
    }

    /// `ccsecrets <args>` in the world's directory, with a clean environment plus `env`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.command(bin());
        c.args(args);
        c
    }

    /// `program` in the world's directory, with a clean environment plus `env`.
    fn command(&self, program: &str) -> Command {
        common::clean_command(program, self.dir.path())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Panics with the whole output unless it contains every one of `wanted`.
fn assert_says(out: &Output, wanted: &[&str]) {
    let all = text(out);
    for w in wanted {
        assert!(all.contains(w), "no {w:?} in:\n{all}");
    }
}

fn assert_no_secrets(output: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !output.contains(s.as_str()),
            "a secret leaked into:\n{output}"
        );
    }
}

/// A shell child that checks its Genesys token against the stand-in's API and its CXone
/// variables, then runs `then`.
fn checking_child(w: &World, then: &str) -> String {
    format!(
        "set -e; curl -sf -o /dev/null -H \"Authorization: Bearer $GENESYSCLOUD_ACCESS_TOKEN\" {g}/api/v2/organizations/me; \
         test \"$GENESYSCLOUD_REGION\" = us-east-1; test -n \"$CXONE_ACCESS_TOKEN\"; \
         test \"$CXONE_API_ENDPOINT\" = {c}; \
         test -z \"${{GENESYSCLOUD_OAUTHCLIENT_ID+x}}${{GENESYSCLOUD_OAUTHCLIENT_SECRET+x}}\"; {then}",
        g = w.genesys.url(),
        c = w.cxone.url()
    )
}

/// A child for `exec` that calls the Genesys API with the token it was handed and says
/// `child-ok`.
fn genesys_child(genesys: &GenesysStandin) -> String {
    format!(
        "curl -sf -o /dev/null -H \"Authorization: Bearer $GENESYSCLOUD_ACCESS_TOKEN\" {}/api/v2/organizations/me && echo child-ok",
        genesys.url()
    )
}

/// `exec` ran [`genesys_child`], which used `client_id`'s token once, and the token was
/// revoked after.
fn assert_child_used_and_revoked(out: &Output, genesys: &GenesysStandin, client_id: &str) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child-ok\n");
    assert_eq!(
        genesys.valid_calls(client_id),
        1,
        "the child used the token"
    );
    assert_eq!(
        genesys.live_tokens(client_id),
        0,
        "revoked after the command"
    );
}

#[test]
fn exec_hands_working_tokens_to_the_command_and_revokes_them_after() {
    let w = World::new();
    w.write(&w.config());
    let child = checking_child(&w, "echo child-ok");
    let out = w
        .cmd(&["exec", "--", "sh", "-c", &child])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "should-be-removed")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "should-be-removed")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child-ok\n");
    assert_eq!(
        w.genesys.valid_calls(&w.client_id),
        1,
        "the child used the token"
    );
    assert_eq!(
        w.genesys.live_tokens(&w.client_id),
        0,
        "revoked after the command"
    );
    assert_eq!(w.genesys.revocations(&w.client_id), 1);
    assert_no_secrets(&text(&out), &w.secrets());
}

#[test]
fn the_commands_exit_status_passes_through_and_tokens_are_revoked_anyway() {
    let w = World::new();
    w.write(&w.config());
    let out = w.run(&["exec", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
    // Killed by a signal: 128 + N, and still revoked.
    let out = w.run(&["exec", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
    assert_eq!(w.genesys.revocations(&w.client_id), 2);
    // A command that does not exist: 127, nothing left behind.
    let out = w.run(&["exec", "--", "no-such-command-here"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert_says(&out, &["Cannot run the command"]);
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
}

/// Starts `ccsecrets exec` with a child that records the signals it gets, and waits until the
/// child is running.
fn start_trapping(w: &World, marker: &Path) -> Child {
    let script = format!(
        "trap 'echo TERM >> {m}; exit 0' TERM; trap 'echo INT >> {m}; exit 3' INT; trap 'echo HUP >> {m}' HUP; echo ready; while :; do sleep 0.05; done",
        m = marker.display()
    );
    let mut child = w
        .cmd(&["exec", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child
}

fn kill(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ccsecrets did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_to_ccsecrets_reach_the_command_and_tokens_are_revoked() {
    let w = World::new();
    w.write(&w.config());
    let marker = w.dir.path().join("signals");
    // HUP is forwarded and the command goes on; TERM ends it with its own status.
    let mut c = start_trapping(&w, &marker);
    kill(&c, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        c.try_wait().unwrap().is_none(),
        "HUP did not end the command"
    );
    assert_eq!(
        w.genesys.live_tokens(&w.client_id),
        1,
        "in use while it runs"
    );
    kill(&c, "-TERM");
    let status = wait_exit(&mut c, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "HUP\nTERM\n");
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
    // INT (not from a terminal here) is forwarded too.
    std::fs::remove_file(&marker).unwrap();
    let mut c = start_trapping(&w, &marker);
    kill(&c, "-INT");
    let status = wait_exit(&mut c, Duration::from_secs(10));
    assert_eq!(status.code(), Some(3));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "INT\n");
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
    assert_eq!(w.genesys.revocations(&w.client_id), 2);
}

#[test]
fn a_command_that_ignores_term_is_killed_after_the_grace_and_tokens_revoked() {
    let w = World::new();
    w.write(&w.config());
    let mut c = w
        .cmd(&[
            "exec",
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started = Instant::now();
    kill(&c, "-TERM");
    let status = wait_exit(&mut c, Duration::from_secs(20));
    assert_eq!(status.code(), Some(137), "killed after the grace");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
}

#[test]
fn when_its_parent_dies_ccsecrets_stops_the_command_and_revokes() {
    let w = World::new();
    w.write(&w.config());
    let marker = w.dir.path().join("stopped");
    // A stand-in for a CI runner that is killed: a shell that started ccsecrets.
    let child = format!(
        "trap 'echo TERM > {m}; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
        m = marker.display()
    );
    let mut runner = w
        .command("sh")
        .arg("-c")
        .arg("\"$0\" exec -- sh -c \"$1\" & wait")
        .arg(bin())
        .arg(&child)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(runner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    assert_eq!(w.genesys.live_tokens(&w.client_id), 1);
    runner.kill().unwrap();
    runner.wait().unwrap();
    let started = Instant::now();
    while w.genesys.live_tokens(&w.client_id) > 0 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        w.genesys.live_tokens(&w.client_id),
        0,
        "revoked after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "TERM\n",
        "the command was stopped"
    );
}

#[test]
fn github_actions_gets_mask_lines_before_the_command_starts() {
    let w = World::new();
    w.write(&w.config());
    let out = w
        .cmd(&[
            "exec",
            "--",
            "sh",
            "-c",
            "echo \"token=$GENESYSCLOUD_ACCESS_TOKEN\"",
        ])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let issued = w.genesys.issued_tokens();
    assert_eq!(issued.len(), 1);
    let masks: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::add-mask::"))
        .collect();
    assert!(
        masks.contains(&format!("::add-mask::{}", issued[0]).as_str()),
        "{stdout}"
    );
    assert_eq!(masks.len(), 2, "the Genesys and the CXone token: {stdout}");
    let mask_at = stdout.find("::add-mask::").unwrap();
    let used_at = stdout.find("token=").unwrap();
    assert!(mask_at < used_at, "masks come before the command's output");
}

#[test]
fn token_prints_one_value_and_leaves_it_valid_and_revoke_ends_it() {
    let w = World::new();
    w.write(&w.config());
    let out = w.run(&["token", "genesys_token.deploy"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(vec![token.clone()], w.genesys.issued_tokens());
    assert_eq!(
        w.genesys.live_tokens(&w.client_id),
        1,
        "a printed token is not revoked"
    );
    assert_no_secrets(&String::from_utf8_lossy(&out.stderr), &w.secrets());
    let out = w.run(&["token", "genesys_token.deploy", "--field", "region"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "us-east-1\n");
    let out = w.run(&["token", "deploy"]);
    assert_eq!(out.status.code(), Some(78));
    assert_says(&out, &["Ambiguous block name"]);
    let out = w.run(&["token", "cxone_token.deploy", "--field", "nope"]);
    assert_eq!(out.status.code(), Some(78));
    assert_says(&out, &["has no attribute \"nope\""]);
    // Revoke from stdin, with the block's API URL.
    let mut c = w
        .cmd(&["revoke", "genesys_token.deploy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(c.stdin.take().unwrap(), "{token}").unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The `--field region` run minted a second token, also left valid; only the first is gone.
    assert_eq!(w.genesys.revocations(&w.client_id), 1);
    assert_eq!(w.genesys.live_tokens(&w.client_id), 1);
    assert_no_secrets(&text(&out), &w.secrets());
}

#[test]
fn check_reads_keys_mints_nothing_and_names_what_is_missing() {
    let w = World::new();
    w.write(&w.config());
    let out = w.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_says(
        &out,
        &[
            "ok: genesys_token \"deploy\": secret/genesys/prod/pipeline version 1 has the keys it needs (client_id, client_secret)",
        ],
    );
    assert_eq!(w.genesys.token_requests(&w.client_id), 0, "minted nothing");
    assert!(w.cxone.issued_tokens().is_empty());
    assert_no_secrets(&text(&out), &w.secrets());
    w.bao
        .kv_put("genesys/prod/pipeline", json!({"client_id": w.client_id}));
    let out = w.run(&["check"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Error: Key not found in secret"), "{t}");
    assert!(
        t.contains(
            "on ccsecrets.hcl line 5, in genesys_token \"deploy\", attribute `client_secret_key`"
        ),
        "{t}"
    );
    assert!(t.contains("has no non-empty key \"client_secret\""), "{t}");
}

#[test]
fn configuration_errors_name_file_line_and_attribute_and_start_nothing() {
    let w = World::new();
    let marker = w.dir.path().join("started");
    let run = |cfg: &str| {
        w.write(cfg);
        w.run(&["exec", "--", "touch", marker.to_str().unwrap()])
    };
    let out = run(&w
        .config()
        .replace("region    = \"us-east-1\"", "region    = \"moon-1\""));
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Error: Unknown Genesys Cloud region"), "{t}");
    assert!(
        t.contains("on ccsecrets.hcl line 7, in genesys_token \"deploy\", attribute `region`"),
        "{t}"
    );
    let out = run(&w.config().replace("path   = \"cxone/", "pth   = \"cxone/"));
    assert_eq!(out.status.code(), Some(78));
    assert_says(&out, &["Error: Unsupported argument"]);
    assert_says(&out, &["on ccsecrets.hcl line 12"]);
    let out = run(&format!(
        "{}\ncxone_token \"other\" {{\n  path = \"x\"\n}}\n",
        w.config()
    ));
    assert_eq!(out.status.code(), Some(78));
    assert_says(
        &out,
        &["cxone_token \"deploy\" and cxone_token \"other\" both set CXONE_ACCESS_TOKEN"],
    );
    let out = run(&w
        .config()
        .replace("environment = \"prod\"", "environment = \"..\""));
    assert_eq!(out.status.code(), Some(78));
    assert_says(&out, &["on ccsecrets.hcl line 1"]);
    assert!(!marker.exists(), "the command never started");
    assert_eq!(w.genesys.token_requests(&w.client_id), 0);
}

#[test]
fn vault_down_and_rejected_credentials_fail_before_the_command() {
    let w = World::new();
    let marker = w.dir.path().join("started");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w.write(
        &w.config()
            .replace(&w.bao.addr(), &format!("http://127.0.0.1:{port}")),
    );
    let out = w.run(&["exec", "--", "touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert_says(&out, &["Error: Cannot reach Vault"]);
    w.write(&w.config());
    w.genesys
        .push_fault(genesys::route::TOKEN, genesys::invalid_client());
    let out = w
        .cmd(&["exec", "--", "touch", marker.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert_says(&out, &["Error: Genesys Cloud rejected the credentials"]);
    assert_says(&out, &["in genesys_token \"deploy\", attribute `path`"]);
    assert!(!marker.exists());
    assert_no_secrets(&text(&out), &w.secrets());
    // A fault on the second block: the first block's token is revoked before exiting.
    w.cxone.push_fault(
        ccsecrets_testkit::cxone::route::TOKEN,
        Fault::Status(401, json!({"error": "invalid_grant"})),
    );
    let out = w.run(&["exec", "--", "touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
    assert!(!marker.exists());
}

#[test]
fn shorthand_flags_need_no_file() {
    let w = World::new();
    let out = w
        .cmd(&[
            "exec",
            "--genesys",
            "genesys/prod/pipeline",
            "--",
            "sh",
            "-c",
            "test -n \"$GENESYSCLOUD_ACCESS_TOKEN\"",
        ])
        .env("VAULT_ADDR", w.bao.addr())
        .output()
        .unwrap();
    // The secret has no region and the shorthand sets none: the error says so, nothing runs.
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert_says(&out, &["No Genesys Cloud region"]);
    assert_says(&out, &["on --genesys genesys/prod/pipeline"]);
}

/// The stand-in genesyscloud provider, built from the testkit.
fn consumer_bin() -> PathBuf {
    ccsecrets_testkit::workspace_bin(
        "ccsecrets-testkit",
        "terraform-provider-genesyscloud",
        Path::new(bin()),
        false,
    )
}

#[test]
fn terraform_without_ephemeral_blocks_runs_under_exec() {
    let w = World::new();
    let cfg = w.write(&w.config());
    let consumer = consumer_bin();
    let mut wd = Workdir::new(&[("mypurecloud/genesyscloud", consumer.as_path())]);
    wd.env("VAULT_TOKEN", ROOT_TOKEN)
        .env(ccsecrets_testkit::consumer::API_URL_ENV, w.genesys.url());
    // Older-Terraform style: the provider block names no token; the environment carries it.
    wd.file(
        "main.tf",
        "terraform {\n  required_providers {\n    genesyscloud = { source = \"mypurecloud/genesyscloud\" }\n  }\n}\n\
         provider \"genesyscloud\" {}\n\
         data \"genesyscloud_organizations_me\" \"me\" {}\n\
         output \"org\" { value = data.genesyscloud_organizations_me.me.id }\n",
    );
    let wrapper: Vec<&OsStr> = vec![
        OsStr::new(bin()),
        OsStr::new("exec"),
        OsStr::new("--config"),
        cfg.as_os_str(),
        OsStr::new("--"),
    ];
    let run = wd.run_under(&wrapper, &["apply", "-auto-approve", "-no-color"]);
    run.assert_ok();
    assert!(run.output().contains("org = \"org-1\""), "{}", run.output());
    // One token for the whole apply: the consumer uses it at each of its two configures (plan
    // and apply phases) and for the data source's read.
    assert_eq!(w.genesys.tokens_issued(&w.client_id), 1);
    assert_eq!(w.genesys.valid_calls(&w.client_id), 3);
    assert_eq!(
        w.genesys.live_tokens(&w.client_id),
        0,
        "revoked after the apply"
    );
    assert_no_secrets(&run.output(), &w.secrets());
    let state = std::fs::read_to_string(wd.path().join("terraform.tfstate")).unwrap();
    assert_no_secrets(&state, &w.secrets());
}

#[test]
fn exec_reads_credentials_from_aws_secrets_manager() {
    use ccsecrets_testkit::aws;
    aws::require_moto();
    let moto = aws::Moto::shared();
    let genesys = GenesysStandin::start();
    let (client_id, client_secret) = (random("client"), random("awssecret"));
    genesys.add_client(&client_id, &client_secret, "org-aws");
    let name = aws::unique_name("genesys/prod/pipeline");
    moto.create_secret(
        &name,
        &json!({"client_id": client_id, "client_secret": client_secret}).to_string(),
        &[("environment", "prod")],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ccsecrets.hcl");
    std::fs::write(
        &config,
        format!(
            "environment = \"prod\"\naws_secretsmanager {{\n  region = \"us-east-1\"\n}}\n\
             genesys_token \"deploy\" {{\n  path      = \"{name}\"\n  region    = \"us-east-1\"\n  login_url = \"{g}\"\n  api_url   = \"{g}\"\n}}\n",
            g = genesys.url()
        ),
    )
    .unwrap();
    let child = genesys_child(&genesys);
    let mut cmd = common::clean_command(bin(), dir.path());
    cmd.env_remove("VAULT_TOKEN");
    for (k, v) in aws::static_credentials_env(&moto.endpoint()) {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["exec", "--", "sh", "-c", &child])
        .output()
        .unwrap();
    assert_child_used_and_revoked(&out, &genesys, &client_id);

    // `check` names the store's version; a Vault-only attribute is pinned to its line.
    let mut cmd = common::clean_command(bin(), dir.path());
    for (k, v) in aws::static_credentials_env(&moto.endpoint()) {
        cmd.env(k, v);
    }
    let out = cmd.arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_says(&out, &["AWSCURRENT"]);
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(
            "  region    = \"us-east-1\"\n  login",
            "  mount     = \"secret\"\n  region    = \"us-east-1\"\n  login",
        ),
    )
    .unwrap();
    let mut cmd = common::clean_command(bin(), dir.path());
    for (k, v) in aws::static_credentials_env(&moto.endpoint()) {
        cmd.env(k, v);
    }
    let out = cmd.arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert_says(
        &out,
        &["line 7", "`mount` does not apply to AWS Secrets Manager"],
    );
    assert_no_secrets(&text(&out), &[client_secret]);

    // No credentials anywhere: the store's block is named, with where credentials are looked for.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("  mount     = \"secret\"\n", ""),
    )
    .unwrap();
    let out = common::clean_command(bin(), dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert_says(
        &out,
        &[
            "No AWS credentials",
            "ccsecrets.hcl line 2, block `aws_secretsmanager`",
            "AWS_PROFILE",
        ],
    );

    // No region anywhere: said before any call, at the block.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("  region = \"us-east-1\"\n}", "}"),
    )
    .unwrap();
    let out = common::clean_command(bin(), dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert_says(
        &out,
        &[
            "No AWS region",
            "line 2, attribute `aws_secretsmanager.region`",
            "AWS_REGION",
        ],
    );
}

#[test]
fn exec_reads_credentials_from_azure_key_vault() {
    use ccsecrets_testkit::azure::AzureStandin;
    let (app_id, app_secret) = ("0a0b0c0d-0000-4000-8000-00000000c0de", random("entra"));
    let azure = AzureStandin::with_client(app_id, &app_secret);
    let genesys = GenesysStandin::start();
    let (client_id, client_secret) = (random("client"), random("kvsecret"));
    genesys.add_client(&client_id, &client_secret, "org-azure");
    azure.set_secret(
        "genesys-prod-pipeline",
        &json!({"client_id": client_id, "client_secret": client_secret}).to_string(),
        &[("environment", "prod")],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ccsecrets.hcl"),
        format!(
            "environment = \"prod\"\nazure_keyvault {{\n  vault_url      = \"{}\"\n  authority_host = \"{}\"\n  ca_cert_file   = \"{}\"\n}}\n\
             genesys_token \"deploy\" {{\n  path      = \"genesys-{{environment}}-pipeline\"\n  region    = \"us-east-1\"\n  login_url = \"{g}\"\n  api_url   = \"{g}\"\n}}\n",
            azure.vault_url(),
            azure.authority_host(),
            azure.ca_file().display(),
            g = genesys.url()
        ),
    )
    .unwrap();
    let child = genesys_child(&genesys);
    let out = common::clean_command(bin(), dir.path())
        .env("AZURE_TENANT_ID", azure.tenant())
        .env("AZURE_CLIENT_ID", app_id)
        .env("AZURE_CLIENT_SECRET", &app_secret)
        .args(["exec", "--", "sh", "-c", &child])
        .output()
        .unwrap();
    assert_child_used_and_revoked(&out, &genesys, &client_id);
    let mut secrets = vec![client_secret, app_secret];
    secrets.extend(azure.issued_tokens());
    assert_no_secrets(&text(&out), &secrets);
}
