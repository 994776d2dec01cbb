//! Benchmarks: ccsecrets against the shell pipeline teams use today, on loopback, against the
//! same OpenBao server and the same platform stand-ins. Run with
//!
//!     cargo bench --bench pipeline
//!
//! (`CCSECRETS_BENCH_QUICK=1` for fewer iterations). Prints a Markdown report and writes it
//! to `target/bench-report.md`.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ccsecrets::framework::Value;
use ccsecrets_testkit::cxone::CxoneStandin;
use ccsecrets_testkit::genesys::GenesysStandin;
use ccsecrets_testkit::grpc::InProcess;
use ccsecrets_testkit::openbao::OpenBao;
use ccsecrets_testkit::terraform::Workdir;
use serde_json::json;

const PROVIDER: &str = env!("CARGO_BIN_EXE_terraform-provider-ccsecrets");
const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// Latency samples.
#[derive(Default, Clone)]
struct Samples(Vec<Duration>);

impl Samples {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        // Nearest rank.
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v[rank.min(v.len()) - 1]
    }
    fn p50(&self) -> Duration {
        self.pct(50.0)
    }
    fn p99(&self) -> Duration {
        self.pct(99.0)
    }
}

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.0} ms")
    }
}

fn measure(n: usize, mut f: impl FnMut()) -> Samples {
    f(); // warm-up
    Samples(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

struct World {
    bao: OpenBao,
    genesys: GenesysStandin,
    cxone: CxoneStandin,
}

fn world() -> World {
    let bao = OpenBao::start();
    let genesys = GenesysStandin::start();
    let cxone = CxoneStandin::start();
    genesys.add_client("bench-client", "bench-secret-0123456789", "org-bench");
    // Every measured open mints a fresh token on purpose: lift Genesys's 300/min per client.
    genesys.set_rate_limit(1_000_000);
    bao.kv_put(
        "genesys/bench/pipeline",
        json!({"client_id": "bench-client", "client_secret": "bench-secret-0123456789", "region": "us-east-1"}),
    );
    cxone.add_app("bench-app", "bench-app-secret");
    cxone.add_access_key("BENCHKEY==", "bench/key+secret==", "tenant-bench");
    bao.kv_put(
        "cxone/bench/pipeline",
        json!({"access_key_id": "BENCHKEY==", "access_key_secret": "bench/key+secret==",
               "client_id": "bench-app", "client_secret": "bench-app-secret"}),
    );
    bao.kv_put("app/bench", json!({"signing_key": "bench-signing-key"}));
    World {
        bao,
        genesys,
        cxone,
    }
}

/// What teams do today: three `bao kv get -field=...` and `curl | jq`.
fn pipeline_script(w: &World) -> String {
    format!(
        r#"set -eu
export BAO_ADDR={addr} BAO_TOKEN=root
CLIENT_ID=$(bao kv get -mount=secret -field=client_id genesys/bench/pipeline)
CLIENT_SECRET=$(bao kv get -mount=secret -field=client_secret genesys/bench/pipeline)
REGION=$(bao kv get -mount=secret -field=region genesys/bench/pipeline)
TOKEN=$(curl -sSf -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials {login}/oauth/token | jq -r .access_token)
test -n "$TOKEN" && test -n "$REGION"
"#,
        addr = w.bao.addr(),
        login = w.genesys.url()
    )
}

/// The `ccsecrets` command line, built with the same (release) profile next to the provider.
fn cli_bin() -> PathBuf {
    ccsecrets_testkit::workspace_bin("ccsecrets-cli", "ccsecrets", Path::new(PROVIDER), true)
}

/// `ccsecrets exec -- true` with one Genesys token, as a whole process: read, mint, run,
/// revoke.
fn exec_time(w: &World, runs: usize) -> Samples {
    let bin = cli_bin();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ccsecrets.hcl");
    std::fs::write(
        &cfg,
        format!(
            "vault {{\n  address = \"{}\"\n  token = \"root\"\n}}\ngenesys_token \"bench\" {{\n  path = \"genesys/bench/pipeline\"\n  login_url = \"{u}\"\n  api_url = \"{u}\"\n}}\n",
            w.bao.addr(),
            u = w.genesys.url()
        ),
    )
    .unwrap();
    measure(runs, || {
        let out = Command::new(&bin)
            .args(["exec", "--config"])
            .arg(&cfg)
            .args(["--", "true"])
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ccsecrets exec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
}

/// How long `calls` API calls take through `tokens` (each of `workers` callers uses token
/// `i % tokens.len()`), with the stand-in enforcing Genesys's per-token limit on a clock sped
/// up by the caller; a 429 waits for its `Retry-After` and tries again, as the Go SDK does.
fn api_throughput(
    rt: &tokio::runtime::Runtime,
    w: &World,
    tokens: &[String],
    calls: usize,
    workers: usize,
) -> (Duration, usize) {
    let url = format!("{}/api/v2/organizations/me", w.genesys.url());
    rt.block_on(async {
        let http = reqwest::Client::new();
        let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(calls));
        let throttled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|i| {
                let (http, url, left, throttled) =
                    (http.clone(), url.clone(), left.clone(), throttled.clone());
                let token = tokens[i % tokens.len()].clone();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    while left
                        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        loop {
                            let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                            match r.status().as_u16() {
                                200 => break,
                                429 => {
                                    throttled.fetch_add(1, SeqCst);
                                    let after: u64 = r.headers()["retry-after"]
                                        .to_str()
                                        .unwrap()
                                        .parse()
                                        .unwrap();
                                    tokio::time::sleep(Duration::from_secs(after)).await;
                                }
                                other => panic!("API call answered {other}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (
            started.elapsed(),
            throttled.load(std::sync::atomic::Ordering::SeqCst),
        )
    })
}

/// Mints `n` tokens for the bench client straight from the stand-in.
fn mint_tokens(rt: &tokio::runtime::Runtime, w: &World, n: usize) -> Vec<String> {
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        for _ in 0..n {
            let v: serde_json::Value = http
                .post(format!("{}/oauth/token", w.genesys.url()))
                .basic_auth("bench-client", Some("bench-secret-0123456789"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.push(v["access_token"].as_str().unwrap().to_owned());
        }
        out
    })
}

fn require(tool: &str, hint: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "the benchmark needs `{tool}`: {hint}");
}

fn provider_config(addr: &str) -> Value {
    Value::object([(
        "vault",
        Value::object([
            ("address", Value::from(addr)),
            ("token", Value::from("root")),
        ]),
    )])
}

fn resource_config(w: &World, type_name: &str) -> Value {
    match type_name {
        "ccsecrets_genesys_token" => Value::object([
            ("path", Value::from("genesys/bench/pipeline")),
            ("login_url", Value::from(w.genesys.url())),
            ("api_url", Value::from(w.genesys.url())),
        ]),
        "ccsecrets_cxone_token" => Value::object([
            ("path", Value::from("cxone/bench/pipeline")),
            ("issuer", Value::from(w.cxone.url())),
        ]),
        _ => Value::object([("path", Value::from("app/bench"))]),
    }
}

/// Open latency in-process: each batch reconfigures (a fresh Vault read cache), then opens
/// `concurrency` blocks at once (timed one by one) and closes them (revoking). So every batch
/// pays the Vault read and the token request.
fn open_latency(
    rt: &tokio::runtime::Runtime,
    w: &World,
    type_name: &str,
    concurrency: usize,
    batches: usize,
) -> Samples {
    rt.block_on(async {
        let mut p = InProcess::start().await;
        let mut all = Vec::new();
        for batch in 0..=batches {
            let d = p.configure(provider_config(&w.bao.addr())).await;
            assert!(d.is_empty(), "{d:?}");
            let opens = (0..concurrency).map(|_| {
                let mut c = p.client.clone();
                let cfg = resource_config(w, type_name);
                async move {
                    let t = Instant::now();
                    let r = ccsecrets_testkit::grpc::open_with(&mut c, type_name, cfg).await;
                    (t.elapsed(), r)
                }
            });
            let results = futures_util::future::join_all(opens).await;
            for (elapsed, r) in results {
                assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
                if batch > 0 {
                    all.push(elapsed); // batch 0 warms up
                }
                p.close(type_name, r.private).await;
            }
        }
        p.stop().await;
        Samples(all)
    })
}

/// The network floor: the same two round trips (Vault read, token request) with a bare client.
fn network_floor(rt: &tokio::runtime::Runtime, w: &World, n: usize) -> Samples {
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut s = Vec::new();
        for i in 0..=n {
            let t = Instant::now();
            let v: serde_json::Value = http
                .get(format!(
                    "{}/v1/secret/data/genesys/bench/pipeline",
                    w.bao.addr()
                ))
                .header("X-Vault-Token", "root")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let d = &v["data"]["data"];
            let r = http
                .post(format!("{}/oauth/token", w.genesys.url()))
                .basic_auth(
                    d["client_id"].as_str().unwrap(),
                    d["client_secret"].as_str(),
                )
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            let _ = r.bytes().await.unwrap();
            if i > 0 {
                s.push(t.elapsed());
            }
        }
        Samples(s)
    })
}

fn plan_config(w: &World, count: Option<usize>) -> String {
    match count {
        None => "resource \"terraform_data\" \"x\" {\n  input = 1\n}\n".to_owned(),
        Some(n) => format!(
            "terraform {{\n  required_providers {{\n    ccsecrets = {{ source = \"ccsecrets/ccsecrets\" }}\n  }}\n}}\n\
             provider \"ccsecrets\" {{}}\n\
             ephemeral \"ccsecrets_genesys_token\" \"t\" {{\n  count = {n}\n  path = \"genesys/bench/pipeline\"\n  login_url = \"{u}\"\n  api_url = \"{u}\"\n}}\n",
            u = w.genesys.url()
        ),
    }
}

fn plan_workdir(w: &World, count: Option<usize>) -> Workdir {
    let mut wd = Workdir::new(&[("ccsecrets/ccsecrets", Path::new(PROVIDER))]);
    wd.env("VAULT_ADDR", &w.bao.addr())
        .env("VAULT_TOKEN", "root");
    wd.file("main.tf", &plan_config(w, count));
    wd
}

fn plan_time(w: &World, count: Option<usize>, n: usize) -> Samples {
    let wd = plan_workdir(w, count);
    measure(n, || {
        wd.run(&["plan", "-no-color", "-input=false", "-refresh=false"])
            .assert_ok();
    })
}

/// Peak RSS of the provider process in the plan walk of a plan with `count` tokens, from
/// the provider's own shutdown log line.
fn peak_rss(w: &World, count: usize) -> u64 {
    let mut wd = plan_workdir(w, Some(count));
    wd.env("TF_LOG_PROVIDER", "DEBUG")
        .env("TF_LOG_PATH", "provider.log");
    wd.run(&["plan", "-no-color", "-input=false"]).assert_ok();
    let log = String::from_utf8(wd.read("provider.log")).unwrap();
    log.lines()
        .filter_map(|l| l.split("peak_rss_kib=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .expect("the provider logs its peak RSS at shutdown")
}

fn client_cert_pem() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

/// Process start to handshake line, with and without AutoMTLS.
fn startup(n: usize, tls: bool) -> Samples {
    let cert = client_cert_pem();
    let dir = tempfile::tempdir().unwrap();
    measure(n, || {
        let mut cmd = Command::new(PROVIDER);
        cmd.env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
            .env("PLUGIN_UNIX_SOCKET_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if tls {
            cmd.env("PLUGIN_CLIENT_CERT", &cert);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("1|6|unix|"), "{line}");
        let _ = child.kill();
        let _ = child.wait();
    })
}

/// Process start → handshake → `ConfigureProvider` answered, with `config` as the provider
/// block (no TLS, as in debug mode). The SDKs of AWS and Azure set themselves up at the first
/// read, so configuring a store must not cost their start-up.
fn startup_configured(rt: &tokio::runtime::Runtime, n: usize, config: &Value) -> Samples {
    use ccsecrets::framework::Provider as _;
    use ccsecrets::server::proto::tfplugin6 as pb;
    let dir = tempfile::tempdir().unwrap();
    let block = ccsecrets::provider().schema().block;
    let msgpack = ccsecrets::framework::encode_msgpack(config, &block).unwrap();
    measure(n, || {
        let mut child = Command::new(PROVIDER)
            .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "6")
            .env("PLUGIN_UNIX_SOCKET_DIR", dir.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let socket = line.split('|').nth(3).unwrap().to_owned();
        rt.block_on(async {
            let mut client = ccsecrets_testkit::grpc::connect_unix(Path::new(&socket)).await;
            let reply = client
                .configure_provider(pb::configure_provider::Request {
                    terraform_version: "1.11.4".into(),
                    config: Some(pb::DynamicValue {
                        msgpack: msgpack.clone(),
                        json: vec![],
                    }),
                    client_capabilities: None,
                })
                .await
                .unwrap()
                .into_inner();
            assert!(reply.diagnostics.is_empty(), "{:?}", reply.diagnostics);
        });
        let _ = child.kill();
        let _ = child.wait();
    })
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is not supported (it is one report).
    let quick = std::env::var_os("CCSECRETS_BENCH_QUICK").is_some();
    let scale = |full: usize, q: usize| if quick { q } else { full };
    require("jq", "apt-get install jq");
    require("curl", "apt-get install curl");
    let w = world();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut r = String::new();
    let _ = writeln!(r, "# ccsecrets benchmarks\n");
    let _ = writeln!(
        r,
        "Loopback; OpenBao {} dev server; Genesys Cloud and NICE CXone stand-ins; Terraform {}; {} CPUs. Provider binary: {}. The Genesys stand-in's 300 token requests per minute limit is lifted: every measured open mints a fresh token.\n",
        String::from_utf8_lossy(&Command::new("bao").arg("version").output().unwrap().stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or("?"),
        ccsecrets_testkit::terraform::Terraform::find().version,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        PathBuf::from(PROVIDER)
            .file_name()
            .unwrap()
            .to_string_lossy()
    );

    // 1. The seed pipeline versus one token.
    let script = pipeline_script(&w);
    let pipe = measure(scale(20, 5), || {
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "pipeline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let open1 = open_latency(&rt, &w, "ccsecrets_genesys_token", 1, scale(300, 30));
    let plan1 = plan_time(&w, Some(1), scale(10, 3));
    let exec1 = exec_time(&w, scale(50, 10));
    let floor = network_floor(&rt, &w, scale(300, 30));
    let _ = writeln!(
        r,
        "## One Genesys Cloud token: the shell pipeline versus ccsecrets\n"
    );
    let _ = writeln!(
        r,
        "| way | p50 | p99 | vs pipeline (p50) | target |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        r,
        "| shell pipeline (3× `bao kv get -field`, `curl \\| jq`) | {} | {} | 1× | |",
        ms(pipe.p50()),
        ms(pipe.p99())
    );
    let ratio = |s: &Samples| pipe.p50().as_secs_f64() / s.p50().as_secs_f64();
    let _ = writeln!(
        r,
        "| ccsecrets, gRPC open in-process | {} | {} | **{:.0}× faster** | ≥ 100× |",
        ms(open1.p50()),
        ms(open1.p99()),
        ratio(&open1)
    );
    let _ = writeln!(
        r,
        "| ccsecrets, `terraform plan` (whole run, 1 token) | {} | {} | **{:.1}× faster** | ≥ 5× |",
        ms(plan1.p50()),
        ms(plan1.p99()),
        ratio(&plan1)
    );
    let _ = writeln!(
        r,
        "| ccsecrets command line, `ccsecrets exec -- true` (whole process: read, mint, run, revoke) | {} | {} | **{:.0}× faster** | ≥ 100× |",
        ms(exec1.p50()),
        ms(exec1.p99()),
        ratio(&exec1)
    );
    let overhead = open1.p50().saturating_sub(floor.p50());
    let _ = writeln!(
        r,
        "\nProvider overhead per open above the two network round trips (bare Vault read + token request: {} p50): **{}** (target < 1 ms).\n",
        ms(floor.p50()),
        ms(overhead)
    );

    // 2. Open latency per resource type.
    let _ = writeln!(
        r,
        "## Open latency (in-process gRPC, each batch pays its Vault read and token request)\n"
    );
    let _ = writeln!(
        r,
        "| resource | concurrency | p50 | p99 |\n|---|---|---|---|"
    );
    for t in [
        "ccsecrets_genesys_token",
        "ccsecrets_cxone_token",
        "ccsecrets_vault_secret",
    ] {
        for (c, batches) in [(1, scale(200, 20)), (50, scale(20, 3))] {
            let s = open_latency(&rt, &w, t, c, batches);
            let _ = writeln!(r, "| `{t}` | {c} | {} | {} |", ms(s.p50()), ms(s.p99()));
        }
    }
    let _ = writeln!(
        r,
        "\nAt concurrency 50 the opens of a batch share one Vault read and one token request (single-flight), so the latency is that of the first plus queueing.\n"
    );

    // 3. terraform plan wall time.
    let _ = writeln!(
        r,
        "## `terraform plan` wall time\n\n| configuration | p50 | p99 |\n|---|---|---|"
    );
    let runs = scale(10, 3);
    let base = plan_time(&w, None, runs);
    let _ = writeln!(
        r,
        "| no ccsecrets at all (Terraform alone) | {} | {} |",
        ms(base.p50()),
        ms(base.p99())
    );
    for n in [0usize, 1, 10, 100] {
        let s = if n == 1 {
            plan1.clone()
        } else {
            plan_time(&w, Some(n), runs)
        };
        let _ = writeln!(
            r,
            "| {n} ephemeral `ccsecrets_genesys_token` | {} | {} |",
            ms(s.p50()),
            ms(s.p99())
        );
    }

    // 4. Start-up and memory.
    let tls = startup(scale(50, 10), true);
    let plain = startup(scale(50, 10), false);
    let rss = peak_rss(&w, 100);
    let store_block =
        |name: &str, attrs: Vec<(&str, Value)>| Value::object([(name, Value::object(attrs))]);
    let configured = [
        ("Vault", provider_config(&w.bao.addr())),
        (
            "AWS Secrets Manager",
            store_block(
                "aws_secretsmanager",
                vec![("region", Value::from("eu-west-1"))],
            ),
        ),
        (
            "Azure Key Vault",
            store_block(
                "azure_keyvault",
                vec![
                    ("vault_url", Value::from("https://cc-bench.vault.azure.net")),
                    (
                        "tenant_id",
                        Value::from("00000000-0000-4000-8000-000000000000"),
                    ),
                    (
                        "client_id",
                        Value::from("00000000-0000-4000-8000-000000000001"),
                    ),
                    ("credential", Value::from("managed_identity")),
                ],
            ),
        ),
    ]
    .map(|(name, config)| (name, startup_configured(&rt, scale(30, 5), &config)));
    let _ = writeln!(
        r,
        "\n## Plugin start-up and memory\n\n| measure | p50 | p99 | target |\n|---|---|---|---|"
    );
    for (name, s) in &configured {
        let _ = writeln!(
            r,
            "| process start → handshake → ConfigureProvider done, {name} store | {} | {} | < 10 ms |",
            ms(s.p50()),
            ms(s.p99())
        );
    }
    let _ = writeln!(
        r,
        "| process start → handshake line, AutoMTLS (as Terraform runs it) | {} | {} | < 10 ms |",
        ms(tls.p50()),
        ms(tls.p99())
    );
    let _ = writeln!(
        r,
        "| process start → handshake line, no TLS | {} | {} | |",
        ms(plain.p50()),
        ms(plain.p99())
    );
    let _ = writeln!(
        r,
        "| peak RSS of the provider during the 100-token plan | {:.1} MB | | < 20 MB |",
        rss as f64 / 1024.0
    );

    // 5. Throughput: one shared token versus the genesyscloud provider's own pool.
    const SPEED_UP: u32 = 20;
    let calls = scale(1200, 600);
    w.genesys
        .set_api_limit(300, Duration::from_secs(60) / SPEED_UP);
    // Fresh tokens for each measurement: a token's window must not carry over.
    let tokens = mint_tokens(&rt, &w, 11);
    let (one, one_429) = api_throughput(&rt, &w, &tokens[..1], calls, 10);
    let (ten, ten_429) = api_throughput(&rt, &w, &tokens[1..], calls, 10);
    let real = |d: Duration| {
        let secs = d.as_secs_f64() * f64::from(SPEED_UP);
        if secs >= 60.0 {
            format!("{:.1} min", secs / 60.0)
        } else {
            format!("{secs:.1} s")
        }
    };
    let _ = writeln!(
        r,
        "\n## API calls through one token versus a pool\n\nGenesys Cloud allows 300 API calls a minute per token. The stand-in enforces that on a clock {SPEED_UP}× faster; {calls} calls from 10 concurrent callers (the genesyscloud provider's default `token_pool_size`), each waiting out a 429's `Retry-After`. Real time is the measured time × {SPEED_UP}.\n\n| tokens | measured | real time | 429 answers |\n|---|---|---|---|"
    );
    let _ = writeln!(
        r,
        "| 1 (an `access_token` from `ccsecrets_genesys_token`, shared by the provider's whole pool) | {} | {} | {one_429} |",
        ms(one),
        real(one)
    );
    let _ = writeln!(
        r,
        "| 10 (the provider's own client-credentials pool, from `oauthclient_id`/`oauthclient_secret`) | {} | {} | {ten_429} |",
        ms(ten),
        real(ten)
    );

    println!("{r}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-report.md");
    let _ = std::fs::write(&out, &r);
    println!("(written to {})", out.display());
}
