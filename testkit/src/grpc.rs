//! The provider served in-process on a unix socket (plaintext, as in debug mode) with a gRPC
//! client, for round-trip tests and benchmarks that skip Terraform but not the wire protocol.

use std::path::Path;
use std::sync::Arc;

use ccsecrets::framework::{self, Block, Provider, Value};
use ccsecrets::server::CancellationToken;
use ccsecrets::server::proto::tfplugin6 as pb;
use pb::provider_client::ProviderClient;
use tonic::transport::{Channel, Endpoint};

/// A diagnostic as it came over the wire: (is_error, summary, detail, attribute path text).
pub type WireDiagnostic = (bool, String, String, String);

/// A provider process-in-a-task and a client connected to it.
#[derive(Debug)]
pub struct InProcess {
    /// The connected client (cheap to clone).
    pub client: ProviderClient<Channel>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Connects a client to a unix socket. The socket file can exist a moment before its
/// listener accepts (under load, "connection refused"): connecting is retried for up to 10 s.
pub async fn connect_unix(path: &Path) -> ProviderClient<Channel> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let p = path.to_owned();
        // The URI is required but unused: the connector dials the socket.
        let attempt = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let p = p.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(p).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await;
        match attempt {
            Ok(channel) => return ProviderClient::new(channel),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!(
                    "connect to the in-process provider at {}: {e}",
                    path.display()
                )
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

fn diags(ds: &[pb::Diagnostic]) -> Vec<WireDiagnostic> {
    ds.iter()
        .map(|d| {
            let path = d
                .attribute
                .as_ref()
                .map(|p| {
                    p.steps
                        .iter()
                        .filter_map(|s| match &s.selector {
                            Some(pb::attribute_path::step::Selector::AttributeName(n)) => {
                                Some(n.clone())
                            }
                            Some(pb::attribute_path::step::Selector::ElementKeyString(k)) => {
                                Some(format!("[{k:?}]"))
                            }
                            Some(pb::attribute_path::step::Selector::ElementKeyInt(i)) => {
                                Some(format!("[{i}]"))
                            }
                            None => None,
                        })
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .unwrap_or_default();
            (
                d.severity == pb::diagnostic::Severity::Error as i32,
                d.summary.clone(),
                d.detail.clone(),
                path,
            )
        })
        .collect()
}

/// The schema block of ephemeral resource `type_name`.
pub fn ephemeral_block(type_name: &str) -> Block {
    ccsecrets::provider()
        .ephemeral_resources()
        .into_iter()
        .find(|r| r.type_name() == type_name)
        .unwrap_or_else(|| panic!("no ephemeral resource {type_name}"))
        .schema()
        .block
}

/// What an open returned.
#[derive(Debug)]
pub struct OpenReply {
    /// The decoded result (null on error).
    pub result: Value,
    /// Opaque private bytes.
    pub private: Option<Vec<u8>>,
    /// Diagnostics.
    pub diagnostics: Vec<WireDiagnostic>,
}

/// OpenEphemeralResource through any client (clone [`InProcess::client`] for concurrent opens).
pub async fn open_with(
    client: &mut ProviderClient<Channel>,
    type_name: &str,
    config: Value,
) -> OpenReply {
    let block = ephemeral_block(type_name);
    let msgpack = framework::encode_msgpack(&config, &block).expect("resource config encodes");
    let reply = client
        .open_ephemeral_resource(pb::open_ephemeral_resource::Request {
            type_name: type_name.into(),
            config: Some(pb::DynamicValue {
                msgpack,
                json: vec![],
            }),
            client_capabilities: None,
        })
        .await
        .expect("OpenEphemeralResource")
        .into_inner();
    let result = reply
        .result
        .map(|dv| {
            framework::decode_msgpack(&dv.msgpack, &block).expect("result decodes with the schema")
        })
        .unwrap_or_default();
    OpenReply {
        result,
        private: reply.private,
        diagnostics: diags(&reply.diagnostics),
    }
}

impl InProcess {
    /// Serves a fresh provider on a socket in a temporary directory.
    pub async fn start() -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("provider.sock");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (path, shutdown) = (path.clone(), shutdown.clone());
            async move {
                ccsecrets::server::serve_unix(Arc::new(ccsecrets::provider()), &path, shutdown)
                    .await
            }
        });
        for _ in 0..200 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        InProcess {
            client: connect_unix(&path).await,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// ConfigureProvider with `config` (an object of the provider schema).
    pub async fn configure(&mut self, config: Value) -> Vec<WireDiagnostic> {
        let block = ccsecrets::provider().schema().block;
        let msgpack = framework::encode_msgpack(&config, &block).expect("provider config encodes");
        let reply = self
            .client
            .configure_provider(pb::configure_provider::Request {
                terraform_version: "1.11.4".into(),
                config: Some(pb::DynamicValue {
                    msgpack,
                    json: vec![],
                }),
                client_capabilities: None,
            })
            .await
            .expect("ConfigureProvider")
            .into_inner();
        diags(&reply.diagnostics)
    }

    /// ValidateEphemeralResourceConfig with raw msgpack (which may hold unknown values).
    pub async fn validate_raw(&mut self, type_name: &str, msgpack: Vec<u8>) -> Vec<WireDiagnostic> {
        let reply = self
            .client
            .validate_ephemeral_resource_config(pb::validate_ephemeral_resource_config::Request {
                type_name: type_name.into(),
                config: Some(pb::DynamicValue {
                    msgpack,
                    json: vec![],
                }),
            })
            .await
            .expect("ValidateEphemeralResourceConfig")
            .into_inner();
        diags(&reply.diagnostics)
    }

    /// OpenEphemeralResource with `config`; the result is decoded with the resource's schema.
    pub async fn open(&mut self, type_name: &str, config: Value) -> OpenReply {
        open_with(&mut self.client, type_name, config).await
    }

    /// CloseEphemeralResource with `private`.
    pub async fn close(
        &mut self,
        type_name: &str,
        private: Option<Vec<u8>>,
    ) -> Vec<WireDiagnostic> {
        let reply = self
            .client
            .close_ephemeral_resource(pb::close_ephemeral_resource::Request {
                type_name: type_name.into(),
                private,
            })
            .await
            .expect("CloseEphemeralResource")
            .into_inner();
        diags(&reply.diagnostics)
    }

    /// Stops serving; the provider releases what it holds (revokes tokens) first.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
