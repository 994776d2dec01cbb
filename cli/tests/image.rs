//! The container image under runc, run as the examples describe it: the release's image
//! (built from this test build's binary with the release's code), the Kubernetes Deployment's
//! agent (args, securityContext, ConfigMap, memory emptyDir, service account token, probes)
//! and the compose file's (command, environment, tmpfs volume, read-only root, user,
//! `cap_drop`, `no-new-privileges`, healthcheck), each with an app container that reads the
//! token from the shared volume and calls the Genesys stand-in; `runc kill TERM` revokes and
//! removes the token. Only the store address and login, the platform URLs and the listen
//! port (the containers share the host's loopback) differ from the shipped files.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ccsecrets_testkit::genesys::GenesysStandin;
use ccsecrets_testkit::image::{self, ImageSpec};
use ccsecrets_testkit::kube::{KubeStandin, ServiceAccount};
use ccsecrets_testkit::openbao::OpenBao;
use ccsecrets_testkit::runc::{Bundle, Runc};
use serde_json::{Value, json};

const BUSYBOX: &str = "/bin/busybox";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every document of a YAML file, as JSON (PyYAML comes with kubernetes-validate).
fn yaml(path: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}: {} (PyYAML: `pip install kubernetes-validate` brings it)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The image of the `ccsecrets` binary cargo built for these tests (or of the one
/// `CCSECRETS_TEST_IMAGE_BINARY` names, e.g. `target/release/ccsecrets` to time the release
/// build), written once by the release's code (`cargo xtask release` calls the same function).
fn archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ccsecrets-test.oci.tar");
        let binary = std::env::var_os("CCSECRETS_TEST_IMAGE_BINARY").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_ccsecrets")),
            PathBuf::from,
        );
        let spec = ImageSpec {
            binary,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            source: "https://example.com/ccsecrets".to_owned(),
            revision: "0000000000000000000000000000000000000000".to_owned(),
            created: 1_700_000_000,
        };
        image::write_archive(&spec, &out).unwrap();
        out
    })
}

fn require_busybox() {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is required for the app container of the image tests: install it with `apt-get install busybox-static`"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// `text` with `from` replaced by `to`, which must be there.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the example no longer contains {from:?}: update this test"
    );
    text.replace(from, to)
}

/// The world the agent runs in: OpenBao holding the OAuth client, the Genesys stand-in.
struct World {
    bao: OpenBao,
    genesys: GenesysStandin,
    client_id: String,
    client_secret: String,
}

impl World {
    fn new() -> World {
        let bao = OpenBao::start();
        let genesys = GenesysStandin::start();
        let client_id = format!("client-{}", fastrand::u32(..));
        let client_secret: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(24)
            .collect();
        genesys.add_client(&client_id, &client_secret, "org-1");
        bao.kv_put(
            "genesys/prod/runtime",
            json!({"client_id": client_id, "client_secret": client_secret, "region": "us-east-1"}),
        );
        bao.policy(
            "runtime",
            r#"path "secret/data/genesys/prod/runtime" { capabilities = ["read"] }"#,
        );
        World {
            bao,
            genesys,
            client_id,
            client_secret,
        }
    }

    /// The example's agent configuration with the stand-ins' URLs and `port`.
    fn configure(&self, hcl: &str, port: u16) -> String {
        let hcl = replace(
            hcl,
            "listen = \"0.0.0.0:8765\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        let g = self.genesys.url();
        replace(
            &hcl,
            "path = \"genesys/{environment}/runtime\"",
            &format!(
                "path = \"genesys/{{environment}}/runtime\"\n  login_url = \"{g}\"\n  api_url = \"{g}\""
            ),
        )
    }

    /// The app: reads the token from the volume mounted read-only at `volume`, proves it
    /// cannot write there, and calls the API with it (busybox's wget; the stand-in closes a
    /// half-closed connection, as hyper does, so busybox's nc cannot be used).
    fn app_script(&self, volume: &str) -> String {
        let api = self.genesys.url().trim_end_matches('/');
        format!(
            r#"set -e
test -s "$GENESYSCLOUD_TOKEN_FILE"
if touch {volume}/written-by-app 2>/dev/null; then echo "the token volume is writable" >&2; exit 3; fi
wget -q -O - --header "Authorization: Bearer $(cat "$GENESYSCLOUD_TOKEN_FILE")" {api}/api/v2/organizations/me
"#
        )
    }

    /// What must never show in a log.
    fn secrets(&self) -> Vec<String> {
        let mut s = vec![self.client_secret.clone()];
        s.extend(self.genesys.issued_tokens());
        s
    }
}

/// A busybox container running `script` as `user`, with the same hardening.
fn app_bundle(runc: &mut Runc, script: &str, user: (u64, u64)) -> Bundle {
    let mut b = runc.bundle(&[(Path::new(BUSYBOX), "/bin/busybox")]);
    b.set_args(&[
        "/bin/busybox".to_owned(),
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
    ]);
    b.set_user(user.0, user.1);
    b.read_only_root(true);
    b.drop_all_capabilities();
    b.no_new_privileges(true);
    b
}

/// Applies a Kubernetes container `securityContext` (merged over the pod's).
fn apply_security_context(b: &mut Bundle, pod: &Value, container: &Value) {
    let get = |k: &str| {
        let c = &container["securityContext"][k];
        if c.is_null() {
            pod["securityContext"][k].clone()
        } else {
            c.clone()
        }
    };
    let (image_uid, image_gid) = b.user();
    let uid = get("runAsUser").as_u64().unwrap_or(image_uid);
    let gid = get("runAsGroup").as_u64().unwrap_or(image_gid);
    if get("runAsNonRoot") == json!(true) {
        assert_ne!(uid, 0, "runAsNonRoot with uid 0: the kubelet would refuse");
    }
    b.set_user(uid, gid);
    b.read_only_root(get("readOnlyRootFilesystem") == json!(true));
    b.no_new_privileges(get("allowPrivilegeEscalation") == json!(false));
    let caps = get("capabilities");
    assert_eq!(caps["drop"], json!(["ALL"]), "{caps}");
    assert!(caps["add"].is_null(), "{caps}");
    b.drop_all_capabilities();
}

/// The image as a runtime unpacks it: user 65532:65532 by default, `ccsecrets` as the
/// entrypoint, and only the binary, its libraries, the CA roots, the user and group entries,
/// nsswitch.conf and the copyright files (no shell).
fn assert_image_is_minimal(b: &Bundle) {
    assert_eq!(b.user(), (65532, 65532), "the image's default user");
    assert_eq!(b.args(), ["/usr/local/bin/ccsecrets", "--help"]);
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(format!("/{}", p.strip_prefix(root).unwrap().display()));
            }
        }
    }
    let mut files = Vec::new();
    walk(&b.rootfs(), &b.rootfs(), &mut files);
    files.sort();
    let binary = std::env::var_os("CCSECRETS_TEST_IMAGE_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_ccsecrets")),
        PathBuf::from,
    );
    let libs: Vec<String> = image::shared_libraries(&binary)
        .unwrap()
        .iter()
        .map(|l| l.display().to_string())
        .collect();
    assert!(libs.iter().any(|l| l.ends_with("/libc.so.6")), "{libs:?}");
    let mut want: Vec<String> = [
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/passwd",
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/local/bin/ccsecrets",
        "/usr/share/doc/ca-certificates/copyright",
        "/usr/share/doc/libc6/copyright",
        "/usr/share/doc/libgcc-s1/copyright",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(libs)
    .collect();
    want.sort();
    assert_eq!(files, want);
    let passwd = std::fs::read_to_string(b.rootfs().join("etc/passwd")).unwrap();
    assert_eq!(
        passwd,
        "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"
    );
    let group = std::fs::read_to_string(b.rootfs().join("etc/group")).unwrap();
    assert_eq!(group, "nonroot:x:65532:\n");
}

fn assert_no_secrets(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} shows a secret:\n{text}");
    }
}

fn ends_revoked_and_removed(
    runc: &mut Runc,
    world: &World,
    id: &str,
    token_file: &Path,
) -> (String, String) {
    assert!(token_file.is_file());
    assert_eq!(world.genesys.live_tokens(&world.client_id), 1);
    runc.kill(id, "TERM");
    let status = runc.wait(id, Duration::from_secs(60));
    let (out, err) = runc.output(id);
    assert!(status.success(), "the agent ended with {status}:\n{err}");
    assert_eq!(
        world.genesys.live_tokens(&world.client_id),
        0,
        "the token is revoked:\n{err}"
    );
    assert!(world.genesys.revocations(&world.client_id) >= 1);
    assert!(!token_file.exists(), "the token file is removed");
    (out, err)
}

#[test]
fn the_kubernetes_example_runs_under_runc() {
    require_busybox();
    let docs = yaml(&examples().join("kubernetes/deployment.yaml"));
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap().clone();
    let deployment = kind("Deployment");
    let config_map = kind("ConfigMap");
    let account = kind("ServiceAccount");
    let pod = &deployment["spec"]["template"]["spec"];
    let agent = pod["initContainers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "ccsecrets"))
        .unwrap();
    let app = &pod["containers"][0];
    assert_eq!(agent["restartPolicy"], "Always", "a native sidecar");

    let world = World::new();
    // Kubernetes login as the example's service account, reviewed by the stand-in API server.
    let kube = KubeStandin::start();
    let sa = ServiceAccount::new(
        account["metadata"]["namespace"].as_str().unwrap(),
        account["metadata"]["name"].as_str().unwrap(),
    );
    world.bao.enable_auth("kubernetes", "kubernetes");
    world.bao.write(
        "auth/kubernetes/config",
        json!({"kubernetes_host": kube.url(), "disable_local_ca_jwt": true, "kubernetes_ca_cert": "x"}),
    );
    world.bao.write(
        "auth/kubernetes/role/cc-runtime",
        json!({"bound_service_account_names": [sa.name], "bound_service_account_namespaces": [sa.namespace],
               "token_policies": ["runtime"], "token_ttl": "1h"}),
    );

    let sa_jwt = kube.issue(&sa);
    let mut runc = Runc::private();
    let port = free_port();
    let hcl = config_map["data"]["ccsecrets.hcl"].as_str().unwrap();
    let hcl = replace(
        &world.configure(hcl, port),
        "address = \"https://vault.example.com:8200\"",
        &format!("address = \"{}\"", world.bao.addr()),
    );

    // The pod's volumes, as the kubelet makes them.
    let mut volumes: Vec<(String, PathBuf)> = Vec::new();
    let mut token_volume = None;
    for v in pod["volumes"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap().to_owned();
        let dir = if let Some(cm) = v.get("configMap") {
            assert_eq!(cm["name"], config_map["metadata"]["name"]);
            let d = runc.dir(&name);
            std::fs::write(d.join("ccsecrets.hcl"), &hcl).unwrap();
            d
        } else if let Some(e) = v.get("emptyDir") {
            assert_eq!(e["medium"], "Memory", "the token volume is memory-backed");
            let size = e["sizeLimit"].as_str().unwrap().replace("Mi", "m");
            let d = runc.tmpfs(&name, &format!("size={size}"));
            token_volume = Some(d.clone());
            d
        } else if let Some(p) = v.get("projected") {
            let src = &p["sources"][0]["serviceAccountToken"];
            let d = runc.dir(&name);
            std::fs::write(d.join(src["path"].as_str().unwrap()), &sa_jwt).unwrap();
            d
        } else {
            panic!("a volume kind this test does not know: {v}");
        };
        volumes.push((name, dir));
    }
    let token_volume = token_volume.expect("an emptyDir for the tokens");
    let mount = |b: &mut Bundle, c: &Value| {
        for m in c["volumeMounts"].as_array().unwrap() {
            let (_, dir) = volumes.iter().find(|(n, _)| *n == m["name"]).unwrap();
            b.bind(
                dir,
                m["mountPath"].as_str().unwrap(),
                m["readOnly"] == json!(true),
            );
        }
    };

    // The agent: the image's entrypoint with the container's args.
    let mut agent_bundle = runc.unpack(archive(), env!("CARGO_PKG_VERSION"));
    assert_image_is_minimal(&agent_bundle);
    assert!(
        agent["command"].is_null(),
        "args only: the entrypoint runs ccsecrets"
    );
    let mut args = vec![agent_bundle.args()[0].clone()];
    args.extend(
        agent["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    agent_bundle.set_args(&args);
    apply_security_context(&mut agent_bundle, pod, agent);
    mount(&mut agent_bundle, agent);
    let started = Instant::now();
    runc.start("k8s-agent", &mut agent_bundle);

    // The startup probe's path, on the listener; then readiness and liveness.
    let probe = &agent["startupProbe"]["httpGet"];
    let (ready_path, probe_port) = (probe["path"].as_str().unwrap(), &probe["port"]);
    let named = agent["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == *probe_port))
        .map(|p| p["containerPort"].clone());
    assert_eq!(
        named.as_ref().unwrap_or(probe_port),
        &json!(8765),
        "the probe's port is the listener's"
    );
    // Ready before the kubelet would give up on the startup probe.
    let probe_period = agent["startupProbe"]["periodSeconds"].as_u64().unwrap();
    let probe_failures = agent["startupProbe"]["failureThreshold"].as_u64().unwrap();
    let within = Duration::from_secs(probe_period * probe_failures);
    wait_for("the agent's startup probe", within, || {
        assert_ne!(
            runc.status("k8s-agent").as_deref(),
            Some("stopped"),
            "the agent stopped: {:?}",
            runc.output("k8s-agent")
        );
        common::http_status(port, ready_path) == Some(200)
    });
    let ready_after = started.elapsed();
    eprintln!("kubernetes example: the agent was ready {ready_after:?} after runc run");
    let live = agent["livenessProbe"]["httpGet"]["path"].as_str().unwrap();
    assert_eq!(live, "/healthz");
    assert_eq!(common::http_status(port, live), Some(200));
    let ready = agent["readinessProbe"]["httpGet"]["path"].as_str().unwrap();
    assert_eq!(common::http_status(port, ready), Some(200));

    // The sink, as the agent sees it, on the host's tmpfs.
    let sink = "/run/ccsecrets/genesys/access_token";
    let on_host = token_volume.join(sink.trim_start_matches("/run/ccsecrets/"));
    assert!(hcl.contains(sink));

    // The app, sharing the volume read-only.
    let env = app["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "GENESYSCLOUD_TOKEN_FILE")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(env, sink);
    let app_mount = app["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let mut app_bundle = app_bundle(&mut runc, &world.app_script(app_mount), (0, 0));
    apply_security_context(&mut app_bundle, pod, app);
    app_bundle.env("GENESYSCLOUD_TOKEN_FILE", &env);
    mount(&mut app_bundle, app);
    let calls = world.genesys.valid_calls(&world.client_id);
    runc.start("k8s-app", &mut app_bundle);
    let status = runc.wait("k8s-app", Duration::from_secs(60));
    let (out, err) = runc.output("k8s-app");
    assert!(status.success(), "the app failed ({status}):\n{out}{err}");
    assert!(out.contains("\"org-1\""), "the app printed:\n{out}{err}");
    assert_eq!(world.genesys.valid_calls(&world.client_id), calls + 1);

    let (out, err) = ends_revoked_and_removed(&mut runc, &world, "k8s-agent", &on_host);
    let logs = format!("{out}{err}");
    assert_no_secrets("the agent's logs", &logs, &world.secrets());
    assert_no_secrets("the agent's logs", &logs, &[sa_jwt]);
}

#[test]
fn the_compose_example_runs_under_runc() {
    require_busybox();
    let dir = examples().join("docker-compose");
    let compose = yaml(&dir.join("compose.yaml")).remove(0);
    let agent = &compose["services"]["ccsecrets"];
    let app = &compose["services"]["app"];
    assert_eq!(
        app["depends_on"]["ccsecrets"]["condition"], "service_healthy",
        "the app starts once the agent is healthy"
    );

    let world = World::new();
    let vault_token = world.bao.token(&["runtime"], "1h");
    let mut runc = Runc::private();
    let port = free_port();
    let hcl = world.configure(
        &std::fs::read_to_string(dir.join("ccsecrets.hcl")).unwrap(),
        port,
    );
    let config_dir = runc.dir("compose-config");
    std::fs::write(config_dir.join("ccsecrets.hcl"), &hcl).unwrap();

    // The named volume, as its driver_opts say.
    let opts = &compose["volumes"]["tokens"]["driver_opts"];
    assert_eq!(opts["type"], "tmpfs");
    let tokens = runc.tmpfs("compose-tokens", opts["o"].as_str().unwrap());

    let user = |svc: &Value| {
        let (u, g) = svc["user"].as_str().unwrap().split_once(':').unwrap();
        (u.parse::<u64>().unwrap(), g.parse::<u64>().unwrap())
    };
    let harden = |b: &mut Bundle, svc: &Value| {
        b.read_only_root(svc["read_only"] == json!(true));
        assert_eq!(svc["cap_drop"], json!(["ALL"]));
        b.drop_all_capabilities();
        assert_eq!(svc["security_opt"], json!(["no-new-privileges:true"]));
        b.no_new_privileges(true);
        let (u, g) = user(svc);
        b.set_user(u, g);
    };
    let mount = |b: &mut Bundle, svc: &Value| {
        for v in svc["volumes"].as_array().unwrap() {
            let v = v.as_str().unwrap();
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
            let ro = parts.next() == Some("ro");
            let host = if src == "tokens" {
                tokens.clone()
            } else {
                assert_eq!(src, "./ccsecrets.hcl", "{v}");
                config_dir.join("ccsecrets.hcl")
            };
            b.bind(&host, dst, ro);
        }
    };

    let mut agent_bundle = runc.unpack(archive(), env!("CARGO_PKG_VERSION"));
    let mut args = vec![agent_bundle.args()[0].clone()];
    args.extend(
        agent["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    agent_bundle.set_args(&args);
    harden(&mut agent_bundle, agent);
    mount(&mut agent_bundle, agent);
    for (k, v) in agent["environment"].as_object().unwrap() {
        let value = match v.as_str().unwrap() {
            "${VAULT_ADDR}" => world.bao.addr(),
            "${VAULT_TOKEN}" => vault_token.clone(),
            other => other.to_owned(),
        };
        agent_bundle.env(k, &value);
    }
    let started = Instant::now();
    runc.start("compose-agent", &mut agent_bundle);

    // The healthcheck, run in the container as compose does, until it passes.
    let check = agent["healthcheck"]["test"].as_array().unwrap();
    assert_eq!(check[0], "CMD", "exec form: the image has no shell");
    let check: Vec<&str> = check[1..].iter().map(|a| a.as_str().unwrap()).collect();
    let agent_user = user(agent);
    // Healthy within the healthcheck's start period.
    let start_period = agent["healthcheck"]["start_period"].as_str().unwrap();
    let start_period: u64 = start_period.strip_suffix('s').unwrap().parse().unwrap();
    wait_for(
        "the compose healthcheck",
        Duration::from_secs(start_period),
        || {
            assert_ne!(
                runc.status("compose-agent").as_deref(),
                Some("stopped"),
                "the agent stopped: {:?}",
                runc.output("compose-agent")
            );
            runc.exec("compose-agent", agent_user, &check)
                .status
                .success()
        },
    );
    eprintln!(
        "compose example: the agent was healthy {:?} after runc run",
        started.elapsed()
    );
    assert_eq!(common::http_status(port, "/readyz"), Some(200));

    let token_file = app["environment"]["GENESYSCLOUD_TOKEN_FILE"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_host = tokens.join(token_file.trim_start_matches("/run/ccsecrets/"));
    let mut app_bundle = app_bundle(&mut runc, &world.app_script("/run/ccsecrets"), (0, 0));
    harden(&mut app_bundle, app);
    app_bundle.env("GENESYSCLOUD_TOKEN_FILE", &token_file);
    mount(&mut app_bundle, app);
    let calls = world.genesys.valid_calls(&world.client_id);
    runc.start("compose-app", &mut app_bundle);
    let status = runc.wait("compose-app", Duration::from_secs(60));
    let (out, err) = runc.output("compose-app");
    assert!(status.success(), "the app failed ({status}):\n{out}{err}");
    assert!(out.contains("\"org-1\""), "the app printed:\n{out}{err}");
    assert_eq!(world.genesys.valid_calls(&world.client_id), calls + 1);

    let (out, err) = ends_revoked_and_removed(&mut runc, &world, "compose-agent", &on_host);
    let logs = format!("{out}{err}");
    assert_no_secrets("the agent's logs", &logs, &world.secrets());
    assert_no_secrets("the agent's logs", &logs, &[vault_token]);
}

/// The checks of the "restricted" Pod Security Standard (Kubernetes 1.34) on every container
/// of the example's pod.
#[test]
fn the_kubernetes_example_meets_the_restricted_pod_security_standard() {
    let docs = yaml(&examples().join("kubernetes/deployment.yaml"));
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    for k in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[k], json!(true), "{k}");
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for v in pod["volumes"].as_array().unwrap() {
        let kinds: Vec<&String> = v
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "name")
            .collect();
        assert!(
            kinds.iter().all(|k| allowed_volumes.contains(&k.as_str())),
            "volume {v}"
        );
    }
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten())
        .collect();
    assert_eq!(containers.len(), 2);
    for c in containers {
        let name = c["name"].as_str().unwrap();
        let get = |k: &str| {
            let v = &c["securityContext"][k];
            if v.is_null() {
                pod["securityContext"][k].clone()
            } else {
                v.clone()
            }
        };
        assert_eq!(get("runAsNonRoot"), json!(true), "{name}: runAsNonRoot");
        assert_ne!(get("runAsUser"), json!(0), "{name}: runAsUser");
        assert!(
            get("runAsGroup").as_u64().is_some_and(|g| g != 0),
            "{name}: runAsGroup"
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"],
            json!(false),
            "{name}: allowPrivilegeEscalation"
        );
        let caps = &c["securityContext"]["capabilities"];
        assert_eq!(caps["drop"], json!(["ALL"]), "{name}: capabilities.drop");
        assert!(
            caps["add"]
                .as_array()
                .is_none_or(|a| a.iter().all(|c| c == "NET_BIND_SERVICE")),
            "{name}: capabilities.add"
        );
        let seccomp = get("seccompProfile");
        assert!(
            seccomp["type"] == "RuntimeDefault" || seccomp["type"] == "Localhost",
            "{name}: seccompProfile {seccomp}"
        );
        assert_ne!(c["securityContext"]["privileged"], json!(true), "{name}");
        for p in c["ports"].as_array().into_iter().flatten() {
            assert!(p["hostPort"].is_null(), "{name}: hostPort");
            assert!(p["name"].is_string(), "{name}: a named containerPort");
        }
    }
}
