//! The wire layer: go-plugin handshake, AutoMTLS, hclog logging and the tfplugin6 gRPC service.
//! The only module that names generated protocol types.

mod convert;
mod grpc;
mod handshake;
mod logging;
mod tls;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::transport::Server;
use tonic::transport::server::Connected;

use crate::framework::Provider;

pub use tokio_util::sync::CancellationToken;

/// Code generated from `proto/`.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]
pub mod proto {
    /// Terraform plugin protocol 6.
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    /// go-plugin's controller service.
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

/// How long cleanup may take once Terraform asks the process to end. Terraform kills a plugin
/// that has not exited two seconds after Shutdown.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1500);

/// How long cleanup may take when Terraform itself is gone (killed, out of memory): no one
/// will kill us early, but an orphan must not linger.
const ORPHAN_BUDGET: Duration = Duration::from_secs(5);

/// Serves `incoming` connections until `shutdown` is cancelled.
async fn run<P, I, IO, IE>(
    provider: Arc<P>,
    incoming: I,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error>
where
    P: Provider,
    I: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    // go-plugin's client checks the health of the service named "plugin".
    reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    Server::builder()
        .add_service(health)
        .add_service(proto::tfplugin6::provider_server::ProviderServer::new(
            grpc::ProviderService::new(provider),
        ))
        .add_service(
            proto::plugin::grpc_controller_server::GrpcControllerServer::new(grpc::Controller {
                shutdown: shutdown.clone(),
            }),
        )
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}

/// TLS-wrapped connections: each handshake runs in its own task so one slow or failed client
/// cannot hold up the others.
fn tls_incoming(
    listener: UnixListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<UnixStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "TLS handshake with Terraform failed"),
                    Err(_) => tracing::warn!("TLS handshake with Terraform timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Ends the process's work: abandon waits, release what is held (within `budget`), stop
/// serving.
async fn wind_down<P: Provider>(
    provider: &P,
    server: tokio::task::JoinHandle<()>,
    budget: Duration,
) {
    provider.stop();
    if tokio::time::timeout(budget, provider.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("cleanup did not finish in time; some tokens may outlive this run");
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), server).await;
    if let Some(kib) = peak_rss_kib() {
        tracing::debug!(peak_rss_kib = kib, "provider process done");
    }
}

/// The process's peak resident set size (Linux `VmHWM`), for the shutdown log line.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A fresh directory for the socket, readable by this user only (0700), whatever the umask.
fn socket_dir(preferred: Option<&str>) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let base = preferred.map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::Builder::new()
        .prefix("plugin")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)?;
    // mkdir applies the umask; chmod does not, so the mode is exactly 0700.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Listens on `path` with the socket itself 0600: the gRPC service hands out tokens, and in
/// debug mode it has no TLS, so no other local user may connect.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn fail(message: &str) -> ExitCode {
    // Plain text on stderr: Terraform shows it in its log; a person running the binary sees it.
    let _ = writeln!(std::io::stderr(), "{message}");
    ExitCode::FAILURE
}

/// Runs the provider as a plugin launched by Terraform: checks the handshake environment,
/// listens on a unix socket (with AutoMTLS when Terraform asks for it), prints the handshake
/// line and serves until Terraform shuts the process down.
pub fn serve_plugin<P: Provider>(provider: P) -> ExitCode {
    logging::init();
    let env = match handshake::PluginEnv::from_vars(|k| std::env::var(k).ok()) {
        Ok(env) => env,
        Err(e) => return fail(&e.to_string()),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("ccsecrets: cannot start the async runtime: {e}")),
    };
    let code = rt.block_on(plugin_main(Arc::new(provider), env));
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn plugin_main<P: Provider>(provider: Arc<P>, env: handshake::PluginEnv) -> ExitCode {
    // Ctrl-C reaches the whole process group; Terraform then stops us in order (StopProvider,
    // Shutdown), so SIGINT itself is ignored. SIGTERM ends the process after cleanup.
    let (Ok(mut sigint), Ok(mut sigterm)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return fail("ccsecrets: cannot install signal handlers");
    };
    tokio::spawn(async move {
        while sigint.recv().await.is_some() {
            tracing::debug!("ignoring SIGINT; Terraform will stop the provider");
        }
    });

    let dir = match socket_dir(env.socket_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            return fail(&format!(
                "ccsecrets: cannot create the plugin socket directory: {e}"
            ));
        }
    };
    let path = dir.path().join("provider.sock");
    let listener = match bind_private(&path) {
        Ok(l) => l,
        Err(e) => {
            return fail(&format!(
                "ccsecrets: cannot listen on {}: {e}",
                path.display()
            ));
        }
    };
    let shutdown = CancellationToken::new();
    let (cert_der, server) = match env.client_cert_pem.as_deref() {
        Some(pem) => match tls::server_tls(pem) {
            Ok(t) => {
                let incoming = tls_incoming(listener, tokio_rustls::TlsAcceptor::from(t.config));
                let task = tokio::spawn(log_end(run(
                    Arc::clone(&provider),
                    incoming,
                    shutdown.clone(),
                )));
                (Some(t.cert_der), task)
            }
            Err(e) => return fail(&format!("ccsecrets: cannot set up TLS with Terraform: {e}")),
        },
        None => {
            let incoming = UnixListenerStream::new(listener);
            (
                None,
                tokio::spawn(log_end(run(
                    Arc::clone(&provider),
                    incoming,
                    shutdown.clone(),
                ))),
            )
        }
    };

    let line = handshake::handshake_line(&path.to_string_lossy(), cert_der.as_deref());
    {
        let mut out = std::io::stdout().lock();
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return fail("ccsecrets: cannot write the handshake line to stdout");
        }
    }
    tracing::debug!(socket = %path.display(), tls = cert_der.is_some(), "plugin ready");

    let budget = tokio::select! {
        () = shutdown.cancelled() => SHUTDOWN_BUDGET,
        _ = sigterm.recv() => {
            tracing::info!("SIGTERM received; shutting down");
            shutdown.cancel();
            SHUTDOWN_BUDGET
        }
        () = ccsecrets_core::process::parent_exit() => {
            tracing::warn!("Terraform (the parent process) is gone; revoking tokens and exiting");
            shutdown.cancel();
            ORPHAN_BUDGET
        }
    };
    wind_down(&*provider, server, budget).await;
    drop(dir);
    ExitCode::SUCCESS
}

async fn log_end(server: impl std::future::Future<Output = Result<(), tonic::transport::Error>>) {
    if let Err(e) = server.await {
        tracing::error!(error = %e, "gRPC server stopped with an error");
    }
}

/// Serves the provider in-process on a unix socket without TLS until `shutdown` is cancelled,
/// then releases what the provider holds. For debug mode, tests and benchmarks.
pub async fn serve_unix<P: Provider>(
    provider: Arc<P>,
    path: &Path,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = bind_private(path)?;
    let server = tokio::spawn(log_end(run(
        Arc::clone(&provider),
        UnixListenerStream::new(listener),
        shutdown.clone(),
    )));
    shutdown.cancelled().await;
    wind_down(&*provider, server, SHUTDOWN_BUDGET).await;
    Ok(())
}

/// Runs the provider by hand for debugging: serves plaintext on a unix socket and prints the
/// `TF_REATTACH_PROVIDERS` value to use. Stops on Ctrl-C or SIGTERM.
pub fn serve_debug<P: Provider>(provider: P, address: &str) -> ExitCode {
    logging::init();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("ccsecrets: cannot start the async runtime: {e}")),
    };
    let code = rt.block_on(async {
        let (Ok(mut sigint), Ok(mut sigterm)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return fail("ccsecrets: cannot install signal handlers");
        };
        let dir = match socket_dir(None) {
            Ok(d) => d,
            Err(e) => return fail(&format!("ccsecrets: cannot create a socket directory: {e}")),
        };
        let path = dir.path().join("provider.sock");
        let shutdown = CancellationToken::new();
        let serve = tokio::spawn({
            let (provider, path, shutdown) = (Arc::new(provider), path.clone(), shutdown.clone());
            async move { serve_unix(provider, &path, shutdown).await }
        });
        // Give the listener a moment to bind before telling anyone to connect.
        for _ in 0..100 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let reattach =
            handshake::reattach_json(address, std::process::id(), &path.to_string_lossy());
        let _ = writeln!(
            std::io::stdout().lock(),
            "ccsecrets is running in debug mode. In another shell, run Terraform with:\n\n\
             \texport TF_REATTACH_PROVIDERS='{reattach}'\n\n\
             Press Ctrl-C to stop."
        );
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        shutdown.cancel();
        match serve.await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => fail(&format!(
                "ccsecrets: cannot serve on {}: {e}",
                path.display()
            )),
            Err(_) => ExitCode::FAILURE,
        }
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}
