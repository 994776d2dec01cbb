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
fn github_actions_gets_escaped_mask_lines_on_stderr_and_stdout_stays_the_commands() {
    let w = World::new();
    // A secret value with the characters the runner unescapes in a command's data.
    w.bao.kv_put(
        "contact-center/prod/tricky",
        json!({"value": "p%0Aq\nsecond-line\r\n"}),
    );
    w.write(&format!(
        "{}vault_secret \"tricky\" {{\n  path = \"contact-center/{{environment}}/tricky\"\n  env  = {{ TRICKY = \"data.value\" }}\n}}\n",
        w.config()
    ));
    let out = w
        .cmd(&["exec", "--", "sh", "-c", "echo '{\"ok\":true}'"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // stdout is the command's, untouched: `> out.json` gets valid JSON.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"ok\":true}\n");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let masks: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .collect();
    let issued = w.genesys.issued_tokens();
    assert!(masks.contains(&issued[0].as_str()), "{stderr}");
    assert!(
        masks.contains(&w.cxone.issued_tokens()[0].as_str()),
        "{stderr}"
    );
    // The whole value, escaped as the runner's UnescapeData expects, and each of its lines.
    assert!(masks.contains(&"p%250Aq%0Asecond-line%0D%0A"), "{stderr}");
    assert!(masks.contains(&"p%250Aq"), "{stderr}");
    assert!(masks.contains(&"second-line"), "{stderr}");
    // Every mask line, unescaped as the runner does, is a real value or one line of one.
    let unescape = |s: &str| {
        s.replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%25", "%")
    };
    assert!(
        masks
            .iter()
            .any(|m| unescape(m) == "p%0Aq\nsecond-line\r\n")
    );

    // `T=$(ccsecrets token ...)` captures the token alone.
    let out = w
        .cmd(&["token", "genesys_token.deploy"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(token.lines().count(), 1, "{token}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("::add-mask::{}", token.trim())),
        "{}",
        text(&out)
    );

    // The switch turns them off (flag or variable).
    for (args, var) in [
        (vec!["--no-masks", "exec", "--", "true"], None),
        (vec!["exec", "--", "true"], Some("true")),
    ] {
        let mut c = w.cmd(&args);
        c.env("GITHUB_ACTIONS", "true");
        if let Some(v) = var {
            c.env("CCSECRETS_NO_MASKS", v);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(!text(&out).contains("::add-mask::"), "{}", text(&out));
    }
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
    // Pointed at a gateway (here the stand-in) by variables or flags, it works.
    let child = genesys_child(&w.genesys);
    let out = w
        .cmd(&[
            "exec",
            "--genesys",
            "genesys/prod/pipeline",
            "--",
            "sh",
            "-c",
            &child,
        ])
        .env("VAULT_ADDR", w.bao.addr())
        .env("CCSECRETS_GENESYS_LOGIN_URL", w.genesys.url())
        .env("CCSECRETS_GENESYS_API_URL", w.genesys.url())
        .output()
        .unwrap();
    assert_child_used_and_revoked(&out, &w.genesys, &w.client_id);
    let out = w
        .cmd(&[
            "exec",
            "--genesys",
            "genesys/prod/pipeline",
            "--genesys-login-url",
            w.genesys.url(),
            "--genesys-api-url",
            w.genesys.url(),
            "--",
            "sh",
            "-c",
            "test -n \"$GENESYSCLOUD_ACCESS_TOKEN\"",
        ])
        .env("VAULT_ADDR", w.bao.addr())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
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
    // The command gets the token, not the AWS keys ccsecrets read the secret with.
    let child = format!(
        "{} && {}",
        env_check(
            &[
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
            ],
            &["AWS_REGION"]
        ),
        genesys_child(&genesys)
    );
    let mut cmd = common::clean_command(bin(), dir.path());
    cmd.env_remove("VAULT_TOKEN");
    cmd.env("AWS_SESSION_TOKEN", "session-token");
    // Other credentials of the SDK's chain (unused here: the static keys come first).
    cmd.env(
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        dir.path().join("no-such-token"),
    );
    cmd.env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token");
    cmd.env(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        dir.path().join("no-such-file"),
    );
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
    let child = format!(
        "{} && {}",
        env_check(
            &[
                "AZURE_CLIENT_SECRET",
                "AZURE_FEDERATED_TOKEN_FILE",
                "IDENTITY_HEADER",
                "MSI_SECRET"
            ],
            &["AZURE_CLIENT_ID"]
        ),
        genesys_child(&genesys)
    );
    let out = common::clean_command(bin(), dir.path())
        .env("AZURE_TENANT_ID", azure.tenant())
        .env("AZURE_CLIENT_ID", app_id)
        .env("AZURE_CLIENT_SECRET", &app_secret)
        // The managed identity's secret header (unused here: the client secret comes first).
        .env("IDENTITY_HEADER", "identity-header")
        .env("MSI_SECRET", "msi-secret")
        .args(["exec", "--", "sh", "-c", &child])
        .output()
        .unwrap();
    assert_child_used_and_revoked(&out, &genesys, &client_id);
    let mut secrets = vec![client_secret, app_secret];
    secrets.extend(azure.issued_tokens());
    assert_no_secrets(&text(&out), &secrets);
}

/// Whether process `pid` is gone (reaped, or a zombie nobody has reaped yet).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

fn wait_gone(pid: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    gone(pid)
}

fn read_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn the_command_dies_with_ccsecrets_even_on_kill_9() {
    let w = World::new();
    w.write(&w.config());
    let mut c = w
        .cmd(&[
            "exec",
            "--",
            "sh",
            "-c",
            "trap '' TERM INT HUP; echo $$; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = read_line(&mut c);
    assert!(!gone(&pid), "the command runs");
    kill(&c, "-KILL");
    c.wait().unwrap();
    assert!(
        wait_gone(&pid, Duration::from_secs(5)),
        "the command outlived ccsecrets"
    );
}

#[test]
fn stop_signals_reach_the_commands_whole_group_and_the_grace_kill_takes_it_down() {
    let w = World::new();
    w.write(&w.config());
    // TERM is forwarded to the group: the background grandchild gets it too.
    let mut c = w
        .cmd(&["exec", "--", "sh", "-c", "sleep 30 & echo $!; wait"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let grandchild = read_line(&mut c);
    kill(&c, "-TERM");
    wait_exit(&mut c, Duration::from_secs(10));
    assert!(
        wait_gone(&grandchild, Duration::from_secs(5)),
        "the grandchild did not get TERM"
    );
    // A grandchild that ignores TERM (inherited from its shell) dies in the grace kill.
    let mut c = w
        .cmd(&[
            "exec",
            "--",
            "sh",
            "-c",
            "trap '' TERM; sleep 30 & echo $!; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let grandchild = read_line(&mut c);
    kill(&c, "-TERM");
    let status = wait_exit(&mut c, Duration::from_secs(25));
    assert_eq!(status.code(), Some(137), "killed after the grace");
    assert!(
        wait_gone(&grandchild, Duration::from_secs(5)),
        "a grandchild survived the grace kill"
    );
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0);
}

/// A child that fails unless none of `absent` is set and each of `present` is.
fn env_check(absent: &[&str], present: &[&str]) -> String {
    let mut s = String::from("set -e");
    for a in absent {
        s.push_str(&format!(
            "; test -z \"${{{a}+x}}\" || {{ echo \"{a} leaked\"; exit 9; }}"
        ));
    }
    for p in present {
        s.push_str(&format!(
            "; test -n \"${p}\" || {{ echo \"{p} missing\"; exit 8; }}"
        ));
    }
    s
}

#[test]
fn the_command_gets_no_store_credentials_unless_they_are_kept() {
    use ccsecrets_testkit::jwt::{JwtSigner, ci_claims};
    let w = World::new();
    let signer = JwtSigner::new();
    w.bao.enable_auth("jwt", "jwt");
    w.bao.write(
        "auth/jwt/config",
        json!({ "jwt_validation_pubkeys": [signer.public_key_pem()] }),
    );
    w.bao
        .policy("reader", "path \"secret/*\" { capabilities = [\"read\"] }");
    w.bao.write(
        "auth/jwt/role/ci",
        json!({"role_type": "jwt", "bound_audiences": ["ccsecrets"], "user_claim": "sub",
               "token_policies": ["reader"], "token_ttl": "5m"}),
    );
    let jwt = signer.sign(&ci_claims("job-1", "ccsecrets", 600));
    let with_jwt = w.config().replace(
        "vault {\n",
        "vault {\n  auth_jwt {\n    role    = \"ci\"\n    jwt_env = \"CI_ID_TOKEN\"\n  }\n",
    );
    w.write(&with_jwt);
    // The attack from the issue: the command asks Vault for the client secret itself.
    let out = w
        .cmd(&[
            "exec",
            "--",
            "sh",
            "-c",
            "bao kv get -field=client_secret secret/genesys/prod/pipeline; echo \"status $?\"",
        ])
        .env("CI_ID_TOKEN", &jwt)
        .env("VAULT_ADDR", w.bao.addr())
        .env("BAO_TOKEN", ROOT_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("status 0"),
        "{}",
        text(&out)
    );
    assert_no_secrets(&text(&out), std::slice::from_ref(&w.client_secret));
    // Vault's variables and the jwt_env variable are gone; other tools' credentials stay.
    let child = env_check(
        &["VAULT_TOKEN", "BAO_TOKEN", "CI_ID_TOKEN"],
        &["AWS_SECRET_ACCESS_KEY", "VAULT_ADDR"],
    );
    let run = |args: &[&str]| {
        w.cmd(args)
            .env("CI_ID_TOKEN", &jwt)
            .env("VAULT_ADDR", w.bao.addr())
            .env("BAO_TOKEN", ROOT_TOKEN)
            .env("AWS_SECRET_ACCESS_KEY", "for-the-aws-provider")
            .output()
            .unwrap()
    };
    let out = run(&["exec", "--", "sh", "-c", &child]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Kept on purpose, one by one...
    let out = run(&[
        "exec",
        "--keep-env",
        "VAULT_TOKEN",
        "--keep-env",
        "CI_ID_TOKEN",
        "--",
        "sh",
        "-c",
        &env_check(&["BAO_TOKEN"], &["VAULT_TOKEN", "CI_ID_TOKEN"]),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // ... or all of them.
    w.write(&format!("pass_store_credentials = true\n{with_jwt}"));
    let out = run(&[
        "exec",
        "--",
        "sh",
        "-c",
        &env_check(&[], &["VAULT_TOKEN", "BAO_TOKEN", "CI_ID_TOKEN"]),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.write(&format!("pass_store_credentials = \"yes\"\n{with_jwt}"));
    let out = run(&["exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert_says(
        &out,
        &["line 1", "`pass_store_credentials` must be true or false"],
    );
    assert_no_secrets(&text(&out), &[jwt]);
}

#[test]
fn one_mint_gives_several_fields_json_and_exports_that_can_be_sourced() {
    let w = World::new();
    let tricky = "it's $HOME \"quoted\" `cmd` \\ # not a comment\nline two";
    w.bao.kv_put(
        "contact-center/prod/webhook",
        json!({"signing_key": tricky}),
    );
    w.write(&format!(
        "{}vault_secret \"webhook\" {{\n  path = \"contact-center/{{environment}}/webhook\"\n  env  = {{ WEBHOOK_SIGNING_KEY = \"data.signing_key\" }}\n}}\n",
        w.config()
    ));
    // Two fields, one mint, one line each.
    let out = w.run(&[
        "token",
        "genesys_token.deploy",
        "--field",
        "access_token",
        "--field",
        "region",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(w.genesys.tokens_issued(&w.client_id), 1);
    let issued = w.genesys.issued_tokens();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\nus-east-1\n", issued[0])
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("expires at 20"), "{stderr}");
    assert!(
        stderr.contains("ccsecrets revoke genesys_token.deploy < token"),
        "{stderr}"
    );
    // Every value as JSON, from one more mint.
    let out = w.run(&["token", "cxone_token.deploy", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["access_token"], w.cxone.issued_tokens()[0].as_str());
    assert_eq!(v["api_endpoint"], w.cxone.url());
    assert!(v["expires_at"].as_str().unwrap().starts_with("20"), "{v}");

    // export: shell output, sourced, gives every value back exactly.
    let out = w.run(&["export", "--format", "shell"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    let env_file = w.dir.path().join("exported.sh");
    std::fs::write(&env_file, &script).unwrap();
    let shown = w
        .command("sh")
        .arg("-c")
        .arg(". \"$1\"; printf '%s|%s|%s' \"$GENESYSCLOUD_REGION\" \"$CXONE_API_ENDPOINT\" \"$WEBHOOK_SIGNING_KEY\"")
        .arg("sh")
        .arg(&env_file)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        format!("us-east-1|{}|{tricky}", w.cxone.url())
    );
    // json: the same names and values.
    let out = w.run(&[
        "export",
        "--format",
        "json",
        "genesys_token.deploy",
        "webhook",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["WEBHOOK_SIGNING_KEY"], tricky);
    assert_eq!(v["GENESYSCLOUD_REGION"], "us-east-1");
    assert!(v.get("CXONE_ACCESS_TOKEN").is_none(), "{v}");
    // dotenv: plain NAME=value lines; a value dotenv readers disagree on is refused, and the
    // tokens minted for it are revoked.
    let before = w.genesys.live_tokens(&w.client_id);
    let out = w.run(&["export", "--format", "dotenv"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty());
    assert_says(
        &out,
        &["WEBHOOK_SIGNING_KEY", "--format json or --format shell"],
    );
    assert_eq!(w.genesys.live_tokens(&w.client_id), before);
    let out = w.run(&["export", "genesys_token.deploy", "cxone_token.deploy"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let token = lines
        .iter()
        .find_map(|l| l.strip_prefix("GENESYSCLOUD_ACCESS_TOKEN="))
        .unwrap()
        .to_owned();
    assert!(w.genesys.issued_tokens().contains(&token), "{lines:?}");
    assert!(
        lines.contains(&"GENESYSCLOUD_REGION=us-east-1".to_owned()),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not revoked when ccsecrets exits"));
    // Exported tokens stay valid; `ccsecrets revoke` ends one.
    let live = w.genesys.live_tokens(&w.client_id);
    assert!(live >= 1);
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
    assert_eq!(w.genesys.live_tokens(&w.client_id), live - 1);
}

#[test]
fn token_json_of_a_vault_secret_gives_its_data() {
    // The guide: "for a `vault_secret`, `data` is an object of the secret's keys". A
    // vault_secret has no access_token, so the default field must not apply to --json.
    let w = World::new();
    w.bao.kv_put(
        "contact-center/prod/webhook",
        json!({"signing_key": "sk-1", "other": "two"}),
    );
    w.write(&format!(
        "{}vault_secret \"webhook\" {{\n  path = \"contact-center/{{environment}}/webhook\"\n  env  = {{ WEBHOOK_SIGNING_KEY = \"data.signing_key\" }}\n}}\n",
        w.config()
    ));
    let out = w.run(&["token", "webhook", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["data"],
        json!({"signing_key": "sk-1", "other": "two"}),
        "{v}"
    );
    assert_eq!(v["version"], 1, "{v}");
    // Without --json the default is still access_token, which a vault_secret lacks: 78.
    let out = w.run(&["token", "webhook"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert_says(&out, &["no attribute \"access_token\""]);
    // A key the secret lacks: no token was minted, so none is said to be revoked.
    let out = w.run(&["token", "webhook", "--field", "data.nope"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert_says(
        &out,
        &["has no value for \"data.nope\"; nothing was printed."],
    );
}

#[test]
fn the_configuration_file_must_be_a_small_regular_file_or_a_pipe() {
    let w = World::new();
    let out = w.run(&["--config", "/dev/zero", "check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert_says(&out, &["/dev/zero is not a regular file"]);
    let big = w.dir.path().join("big.hcl");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 * 1024 * 1024))).unwrap();
    let out = w.run(&["check", "--config", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert_says(&out, &["larger than 1024 KiB"]);
    // A pipe is fine: `--config <(...)`.
    let mut c = w
        .cmd(&["check", "--config", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(w.config().as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Names from the file are shown with control characters escaped.
    w.write("genesys_token \"evil\\u001b[2Jname\" {\n  path = \"p\"\n}\n");
    let out = w.run(&["token", "nope\u{7}"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let t = text(&out);
    assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
    assert!(t.contains("genesys_token.evil\\u{1b}[2Jname"), "{t}");
    // Escaped once, as the file's names are (not `\\u{7}` with a doubled backslash).
    assert!(t.contains("named \"nope\\u{7}\""), "{t}");
    let out = w.run(&["--config", "missing\u{1b}]0;title\u{7}.hcl", "check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(!text(&out).contains('\u{1b}'), "{:?}", text(&out));
}

#[test]
fn configuration_problems_exit_78_and_are_said_once() {
    let w = World::new();
    let marker = w.dir.path().join("started");
    // `{environment}` in two blocks' paths and no environment anywhere.
    w.write(&w.config().replace("environment = \"prod\"\n", ""));
    let out = w.run(&["exec", "--", "touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let t = text(&out);
    assert_eq!(
        t.matches("no `environment` is configured").count(),
        1,
        "{t}"
    );
    let out = w.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    // A `jwt_env` variable that is not set.
    w.write(&w.config().replace(
        "vault {\n",
        "vault {\n  auth_jwt {\n    role    = \"ci\"\n    jwt_env = \"CI_ID_TOKEN\"\n  }\n",
    ));
    let out = w.run(&["exec", "--", "touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert_says(&out, &["CI_ID_TOKEN", "attribute `vault.auth_jwt.jwt_env`"]);
    assert_eq!(text(&out).matches("Error:").count(), 1, "{}", text(&out));
    assert!(!marker.exists());
    assert_eq!(w.genesys.token_requests(&w.client_id), 0);
}

#[test]
fn config_and_environment_are_global_and_the_environment_has_an_order() {
    let w = World::new();
    let cfg = w.write(
        &w.config()
            .replace("environment = \"prod\"", "environment = \"dev\""),
    );
    std::fs::rename(&cfg, w.dir.path().join("other.hcl")).unwrap();
    let ok = |o: &Output| o.status.code() == Some(0);
    // The file says dev, where there is no secret: 69.
    let out = w.run(&["check", "--config", "other.hcl"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    // CCSECRETS_ENVIRONMENT overrides the file; --environment overrides both, before or after
    // the subcommand.
    let out = w
        .cmd(&["--config", "other.hcl", "check"])
        .env("CCSECRETS_ENVIRONMENT", "prod")
        .output()
        .unwrap();
    assert!(ok(&out), "{}", text(&out));
    let out = w.run(&["--environment", "prod", "check", "--config", "other.hcl"]);
    assert!(ok(&out), "{}", text(&out));
    let out = w
        .cmd(&["check", "--config", "other.hcl", "--environment", "dev"])
        .env("CCSECRETS_ENVIRONMENT", "prod")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let out = w.run(&["--config", "other.hcl", "--environment", "../x", "check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert_says(&out, &["--environment \"../x\""]);
}

#[test]
fn completions_for_three_shells_and_help_names_every_store() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _ccsecrets"),
        ("zsh", "#compdef ccsecrets"),
        ("fish", "complete -c ccsecrets"),
    ] {
        let out = common::clean_command(bin(), dir.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("export") && script.contains("keep-env"),
            "{shell}"
        );
    }
    let out = common::clean_command(bin(), dir.path())
        .arg("--help")
        .output()
        .unwrap();
    assert_says(
        &out,
        &[
            "Vault or OpenBao",
            "AWS Secrets Manager",
            "Azure Key Vault",
            "--environment",
            "VAULT_TOKEN",
        ],
    );
    let out = common::clean_command(bin(), dir.path())
        .args(["token", "--help"])
        .output()
        .unwrap();
    assert_says(&out, &["NOT", "revoked", "ccsecrets revoke"]);
    let out = common::clean_command(bin(), dir.path())
        .args(["export", "--help"])
        .output()
        .unwrap();
    assert_says(&out, &["NOT revoked", "dotenv", "shell", "json"]);
}

#[test]
fn revoke_reads_a_bounded_token_from_stdin() {
    // `ccsecrets revoke < /dev/zero` (or a wrong file) must end, not read without bound.
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::clean_command(bin(), dir.path())
        .args(["revoke", "--region", "us-east-1"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(78), "{}", text(&out));
    assert_says(&out, &["Cannot read the token", "64 KiB"]);
}

#[test]
fn token_and_export_that_cannot_write_fail_and_revoke() {
    // `ccsecrets token ... > /dev/full`: nobody got the token, so it must not stay valid, and
    // the script must not be told it worked.
    let w = World::new();
    w.write(&w.config());
    for args in [
        &["token", "genesys_token.deploy"][..],
        &["export", "genesys_token.deploy"][..],
    ] {
        let out = w
            .cmd(args)
            .stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(74), "{args:?}: {}", text(&out));
        assert_says(
            &out,
            &["Cannot write the output", "the tokens were revoked"],
        );
        assert!(
            !text(&out).contains("is not revoked"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(w.genesys.tokens_issued(&w.client_id) > 0);
        assert_eq!(w.genesys.live_tokens(&w.client_id), 0, "{args:?}");
        assert_no_secrets(&text(&out), &w.secrets());
    }
}

#[test]
fn the_command_the_agent_supervises_gets_no_store_credentials_either() {
    // The guide: what `exec` removes, `ccsecrets agent -- COMMAND` removes too.
    let w = World::new();
    w.write(&w.config());
    let child = format!(
        "{}; echo supervised-ok",
        env_check(
            &[
                "VAULT_TOKEN",
                "BAO_TOKEN",
                "GENESYSCLOUD_OAUTHCLIENT_SECRET"
            ],
            &["GENESYSCLOUD_ACCESS_TOKEN", "VAULT_ADDR"],
        )
    );
    let mut agent = w
        .cmd(&["agent", "--", "sh", "-c", &child])
        .env("BAO_TOKEN", ROOT_TOKEN)
        .env("VAULT_ADDR", w.bao.addr())
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "client-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut agent, Duration::from_secs(120));
    let out = agent.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "supervised-ok\n");
    assert_eq!(w.genesys.live_tokens(&w.client_id), 0, "revoked after");
}

#[test]
fn a_stop_signal_while_token_or_export_mints_revokes_what_was_minted() {
    // `timeout 2 ccsecrets token ...` in a script: the token request is on the wire when TERM
    // comes. Its answer is awaited and the token revoked, not abandoned valid for 24 hours.
    let w = World::new();
    w.write(&w.config());
    for (round, args) in [
        &["token", "genesys_token.deploy"][..],
        &["export", "genesys_token.deploy"][..],
    ]
    .into_iter()
    .enumerate()
    {
        w.genesys
            .push_fault(genesys::route::TOKEN, Fault::Delay(Duration::from_secs(2)));
        let child = w
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.genesys.token_requests(&w.client_id) <= round {
            assert!(Instant::now() < deadline, "{args:?}: no token request");
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(&child, "-TERM");
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(128 + 15),
            "{args:?}: {}",
            text(&out)
        );
        assert_says(&out, &["Interrupted", "every token minted was revoked"]);
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed");
        assert_eq!(
            w.genesys.tokens_issued(&w.client_id),
            round + 1,
            "{args:?}: the delayed request was answered"
        );
        assert_eq!(w.genesys.live_tokens(&w.client_id), 0, "{args:?}");
        assert_no_secrets(&text(&out), &w.secrets());
    }
}
