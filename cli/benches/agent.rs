//! What `ccsecrets agent` costs a pod: peak memory over a run, CPU while idle between
//! refreshes, and token requests per hour per replica. Real OpenBao and the Genesys stand-in
//! on loopback, the release binary. Run with
//!
//!     cargo bench -p ccsecrets-cli --bench agent
//!
//! (`CCSECRETS_BENCH_QUICK=1` for a shorter run). Prints a Markdown report.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ccsecrets_testkit::genesys::GenesysStandin;
use ccsecrets_testkit::openbao::{OpenBao, ROOT_TOKEN};
use serde_json::json;

/// Clock ticks per second for /proc/<pid>/stat (Linux: 100 everywhere we run).
const TICKS: f64 = 100.0;

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3; utime 14 and stime 15 (1-based) → 11, 12 here.
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / TICKS
}

fn main() {
    let quick = std::env::var_os("CCSECRETS_BENCH_QUICK").is_some();
    let bin = env!("CARGO_BIN_EXE_ccsecrets");
    let bao = OpenBao::start();
    let genesys = GenesysStandin::start();
    genesys.add_client("bench-client", "bench-secret-0123456789", "org-bench");
    bao.kv_put(
        "genesys/bench/runtime",
        json!({"client_id": "bench-client", "client_secret": "bench-secret-0123456789"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = |lifetime_note: &str| {
        let p = dir.path().join("ccsecrets.hcl");
        std::fs::write(
            &p,
            format!(
                "# {lifetime_note}\nvault {{\n  address = \"{}\"\n}}\nagent {{\n  revoke_grace_seconds = 2\n}}\ngenesys_token \"app\" {{\n  path = \"genesys/bench/runtime\"\n  login_url = \"{g}\"\n  api_url = \"{g}\"\n  sink {{\n    file = \"{}\"\n  }}\n}}\n",
                bao.addr(),
                dir.path().join("token").display(),
                g = genesys.url()
            ),
        )
        .unwrap();
        p
    };
    let run = |lifetime: u64, seconds: u64| {
        genesys.set_token_lifetime(lifetime);
        let cfg = config(&format!("tokens live {lifetime} s"));
        let before = genesys.tokens_issued("bench-client");
        let mut child = Command::new(bin)
            .args(["agent", "--config"])
            .arg(&cfg)
            .env("VAULT_TOKEN", ROOT_TOKEN)
            .env_remove("VAULT_ADDR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let started = Instant::now();
        while !dir.path().join("token").exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "no token");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Idle: after the first mint, before the first refresh (or the whole run).
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        let cpu = cpu_seconds(pid) - cpu0;
        let wall = t0.elapsed().as_secs_f64();
        let peak = status_kib(pid, "VmHWM:");
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = child.wait();
        let minted = genesys.tokens_issued("bench-client") - before;
        (cpu / wall, peak, minted, started.elapsed().as_secs_f64())
    };
    let idle_for = if quick { 10 } else { 60 };
    // Idle: a token that outlives the run, so no refresh happens while measuring.
    let (idle_cpu, idle_peak, _, _) = run(86_399, idle_for);
    // Busy: 6-second tokens (a refresh every ~4 s) for a while: memory must not grow.
    let busy_for = if quick { 20 } else { 120 };
    let (_, busy_peak, busy_minted, busy_wall) = run(6, busy_for);
    let per_hour = |lifetime: f64| 3600.0 / (lifetime * 2.0 / 3.0);
    let mut r = String::new();
    r.push_str("# ccsecrets agent\n\n");
    r.push_str(&format!(
        "Loopback; OpenBao dev server; Genesys Cloud stand-in; release build; {} CPUs.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    r.push_str("| measure | value | target |\n|---|---|---|\n");
    r.push_str(&format!(
        "| CPU while idle between refreshes ({idle_for} s, one block) | {:.3}% of a core | < 0.1% |\n",
        idle_cpu * 100.0
    ));
    r.push_str(&format!(
        "| peak RSS, idle run | {:.1} MB | < 15 MB |\n",
        idle_peak as f64 / 1024.0
    ));
    r.push_str(&format!(
        "| peak RSS after {busy_for} s of 6-second tokens ({busy_minted} tokens minted and written) | {:.1} MB | < 15 MB |\n",
        busy_peak as f64 / 1024.0
    ));
    r.push_str(&format!(
        "| token requests per hour per replica and block, measured with 6-second tokens | {:.0} (expected {:.0}: one per 2/3 of the life) | |\n",
        busy_minted as f64 * 3600.0 / busy_wall,
        per_hour(6.0)
    ));
    r.push_str(&format!(
        "| token requests per hour per replica and block: 1-hour tokens / Genesys's default 24-hour tokens | {:.1} / {:.2} | |\n",
        per_hour(3600.0),
        per_hour(86_400.0)
    ));
    println!("{r}");
}
