//! What `ccsecrets agent` costs a pod: peak memory over a run, CPU while idle between
//! refreshes, token requests per hour per replica, and how a fleet of replicas sharing one
//! OAuth client starts and stops under Genesys's login rate limit. Real OpenBao and the
//! Genesys stand-in on loopback, the release binary. Run with
//!
//!     cargo bench -p ccsecrets-cli --bench agent
//!
//! `CCSECRETS_BENCH_QUICK=1` for a shorter run; the fleet: `CCSECRETS_BENCH_FLEET=200`
//! replicas (default 20, 0 to skip), `CCSECRETS_BENCH_FLEET_LIMIT=60` tokens a minute
//! (default 8), `CCSECRETS_BENCH_FLEET_ONLY=1` to measure only the fleet;
//! `CCSECRETS_BENCH_BIN=path` measures another `ccsecrets` build. Prints a Markdown report.

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

/// A whole number from the environment, else `default`.
fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What one fleet run measured.
struct Fleet {
    replicas: usize,
    limit: usize,
    window: Duration,
    /// Seconds from the start until each replica's sink held a token.
    ready: Vec<f64>,
    rejected: usize,
    requests: usize,
    minted: usize,
    /// Seconds from SIGTERM until every replica had exited.
    stopped_in: f64,
    /// Tokens neither revoked nor expired after every replica exited.
    left_valid: usize,
    /// Replicas that said their revocation did not finish in time.
    timed_out: usize,
    killed: usize,
}

impl Fleet {
    /// The earliest every replica could hold a token: the limit lets `limit` tokens be
    /// created in any rolling window, so the k-th batch of `limit` waits k windows.
    fn ideal(&self) -> f64 {
        let batches = self.replicas.div_ceil(self.limit.max(1));
        self.window.as_secs_f64() * batches.saturating_sub(1) as f64
    }
}

/// `replicas` agents started at once, sharing one OAuth client that may create `limit`
/// tokens a minute; each stopped with SIGTERM once all are ready.
fn fleet(bin: &str, bao: &OpenBao, replicas: usize, limit: usize) -> Fleet {
    let window = Duration::from_secs(60);
    let genesys = GenesysStandin::start();
    genesys.add_client("fleet-client", "fleet-secret-0123456789", "org-fleet");
    genesys.set_rate_limit_window(limit, window);
    bao.kv_put(
        "genesys/bench/fleet",
        json!({"client_id": "fleet-client", "client_secret": "fleet-secret-0123456789"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let sink = |i: usize| dir.path().join(format!("token-{i}"));
    let log = |i: usize| dir.path().join(format!("agent-{i}.log"));
    let configs: Vec<_> = (0..replicas)
        .map(|i| {
            let p = dir.path().join(format!("agent-{i}.hcl"));
            std::fs::write(
                &p,
                format!(
                    "vault {{\n  address = \"{}\"\n}}\ngenesys_token \"app\" {{\n  path = \"genesys/bench/fleet\"\n  login_url = \"{g}\"\n  api_url = \"{g}\"\n  sink {{\n    file = \"{}\"\n  }}\n}}\n",
                    bao.addr(),
                    sink(i).display(),
                    g = genesys.url()
                ),
            )
            .unwrap();
            p
        })
        .collect();
    let started = Instant::now();
    let mut children: Vec<_> = configs
        .iter()
        .enumerate()
        .map(|(i, cfg)| {
            Command::new(bin)
                .args(["agent", "--config"])
                .arg(cfg)
                .env("VAULT_TOKEN", ROOT_TOKEN)
                .env_remove("VAULT_ADDR")
                .env("CCSECRETS_LOG", "debug")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log(i)).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ready = vec![None; replicas];
    // Far beyond any sane backoff: a fleet that never gets ready fails the run.
    let give_up = Duration::from_secs(120) + window * (replicas.div_ceil(limit) as u32 * 3);
    while ready.iter().any(Option::is_none) {
        assert!(
            started.elapsed() < give_up,
            "{} of {replicas} replicas not ready after {give_up:?}",
            ready.iter().filter(|r| r.is_none()).count()
        );
        for (i, r) in ready.iter_mut().enumerate() {
            if r.is_none() && sink(i).exists() {
                *r = Some(started.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready: Vec<f64> = ready.into_iter().map(Option::unwrap_or_default).collect();
    let stop = Instant::now();
    for c in &children {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let mut killed = 0;
    for c in &mut children {
        let deadline = stop + Duration::from_secs(60);
        loop {
            if c.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                killed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let stopped_in = stop.elapsed().as_secs_f64();
    let timed_out = (0..replicas)
        .filter(|i| {
            std::fs::read_to_string(log(*i))
                .unwrap_or_default()
                .contains("did not finish")
        })
        .count();
    let result = Fleet {
        replicas,
        limit,
        window,
        ready,
        rejected: genesys.rate_limited("fleet-client"),
        requests: genesys.token_requests("fleet-client"),
        minted: genesys.tokens_issued("fleet-client"),
        stopped_in,
        left_valid: genesys.live_tokens("fleet-client"),
        timed_out,
        killed,
    };
    if let Some(keep) = std::env::var_os("CCSECRETS_BENCH_FLEET_LOGS") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for i in 0..replicas {
            let _ = std::fs::copy(log(i), keep.join(format!("agent-{i}.log")));
        }
    }
    result
}

fn main() {
    let quick = std::env::var_os("CCSECRETS_BENCH_QUICK").is_some();
    let bin_override = std::env::var("CCSECRETS_BENCH_BIN").ok();
    let bin = bin_override
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_ccsecrets"));
    let bao = OpenBao::start();
    let replicas = env_num("CCSECRETS_BENCH_FLEET", 20) as usize;
    let fleet_run = (replicas > 0).then(|| {
        fleet(
            bin,
            &bao,
            replicas,
            env_num("CCSECRETS_BENCH_FLEET_LIMIT", 8).max(1) as usize,
        )
    });
    if std::env::var_os("CCSECRETS_BENCH_FLEET_ONLY").is_some() {
        println!("{}", fleet_report(fleet_run.as_ref()));
        return;
    }
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
    r.push_str(&fleet_report(fleet_run.as_ref()));
    println!("{r}");
}

/// The fleet's section of the report.
fn fleet_report(f: Option<&Fleet>) -> String {
    let Some(f) = f else {
        return String::new();
    };
    let all_ready = f.ready.iter().copied().fold(0.0, f64::max);
    let ideal = f.ideal();
    let mut r = format!(
        "\n## A fleet sharing one OAuth client\n\n{} replicas started at once; the stand-in lets the client create {} tokens in any rolling {} s (Genesys: 300 a minute), refusing more with HTTP 400 `invalid_request` \"rate limit exceeded;\"; every replica stopped with SIGTERM once all were ready.\n\n| measure | value | target |\n|---|---|---|\n",
        f.replicas,
        f.limit,
        f.window.as_secs()
    );
    r.push_str(&format!(
        "| all ready after | {all_ready:.0} s ({:.2}× the ideal {ideal:.0} s: {} windows for {} batches of {}) | ≤ 1.25× |\n",
        if ideal > 0.0 { all_ready / ideal } else { 0.0 },
        f.replicas.div_ceil(f.limit).saturating_sub(1),
        f.replicas.div_ceil(f.limit),
        f.limit
    ));
    r.push_str(&format!(
        "| rejected token requests per replica (refused / all requests / tokens created) | {:.2} ({} / {} / {}) | ≤ 5 |\n",
        f.rejected as f64 / f.replicas as f64,
        f.rejected,
        f.requests,
        f.minted
    ));
    r.push_str(&format!(
        "| tokens left valid after SIGTERM | {} of {} ({} replicas said revocation did not finish in time; {} killed after 60 s) | 0 |\n",
        f.left_valid, f.minted, f.timed_out, f.killed
    ));
    r.push_str(&format!(
        "| every replica exited after SIGTERM within | {:.1} s | |\n",
        f.stopped_in
    ));
    r
}
