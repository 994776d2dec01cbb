//! The tfplugin6 `Provider` gRPC service over a framework [`Provider`], plus go-plugin's
//! `GRPCController`. Provider problems are always answered with diagnostics; only a broken
//! protocol is a gRPC error. A panic in a handler becomes an error diagnostic, not a crash.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::framework::{
    Config, DataSource, Diagnostic, Diagnostics, EphemeralResource, Provider, Schema,
};

use super::convert;
use super::proto::plugin as ctl;
use super::proto::tfplugin6 as pb;

type Reply<T> = Result<Response<T>, Status>;

struct Registered<T: ?Sized> {
    imp: Arc<T>,
    schema: Schema,
}

struct Inner<P: Provider> {
    provider: Arc<P>,
    provider_schema: Schema,
    ephemeral: HashMap<&'static str, Registered<dyn EphemeralResource<P::Context>>>,
    data_sources: HashMap<&'static str, Registered<dyn DataSource<P::Context>>>,
    /// Set by ConfigureProvider; replaced when it is called again (one process can serve
    /// several Terraform instances in debug mode).
    context: RwLock<Option<Arc<P::Context>>>,
}

/// The tfplugin6 service for one provider instance.
pub(crate) struct ProviderService<P: Provider> {
    inner: Arc<Inner<P>>,
}

impl<P: Provider> Clone for ProviderService<P> {
    fn clone(&self) -> Self {
        ProviderService {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Provider> ProviderService<P> {
    pub(crate) fn new(provider: Arc<P>) -> Self {
        let ephemeral = provider
            .ephemeral_resources()
            .into_iter()
            .map(|imp| {
                let schema = imp.schema();
                (imp.type_name(), Registered { imp, schema })
            })
            .collect();
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|imp| {
                let schema = imp.schema();
                (imp.type_name(), Registered { imp, schema })
            })
            .collect();
        ProviderService {
            inner: Arc::new(Inner {
                provider_schema: provider.schema(),
                provider,
                ephemeral,
                data_sources,
                context: RwLock::new(None),
            }),
        }
    }

    fn context(&self) -> Result<Arc<P::Context>, Diagnostic> {
        let guard = self
            .inner
            .context
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "Terraform asked for a value before configuring the ccsecrets provider. \
                 This should not happen; please report it with the Terraform version you use.",
            )
        })
    }

    fn ephemeral(
        &self,
        type_name: &str,
    ) -> Result<&Registered<dyn EphemeralResource<P::Context>>, Diagnostic> {
        self.inner.ephemeral.get(type_name).ok_or_else(|| {
            let mut known: Vec<_> = self.inner.ephemeral.keys().copied().collect();
            known.sort_unstable();
            Diagnostic::error(
                "Unknown ephemeral resource type",
                format!(
                    "This version of ccsecrets has no ephemeral resource type {type_name:?}. \
                     It offers: {}.",
                    known.join(", ")
                ),
            )
        })
    }

    fn data_source(
        &self,
        type_name: &str,
    ) -> Result<&Registered<dyn DataSource<P::Context>>, Diagnostic> {
        self.inner.data_sources.get(type_name).ok_or_else(|| {
            Diagnostic::error(
                "Unknown data source type",
                format!("This version of ccsecrets has no data source type {type_name:?}."),
            )
        })
    }
}

/// Runs a handler body, turning a panic into an error diagnostic for Terraform.
async fn guarded<F>(rpc: &'static str, body: F) -> Result<Diagnostics, Diagnostics>
where
    F: Future<Output = Result<Diagnostics, Diagnostics>>,
{
    let started = Instant::now();
    let out = AssertUnwindSafe(body).catch_unwind().await.unwrap_or_else(|_| {
        tracing::error!(rpc, "handler panicked");
        Err(Diagnostic::error(
            "Internal error in ccsecrets",
            format!("The provider failed unexpectedly while handling {rpc}. Please report this, with the Terraform log if you can."),
        )
        .into())
    });
    tracing::debug!(
        rpc,
        elapsed_us = started.elapsed().as_micros() as u64,
        ok = out.is_ok(),
        "handled"
    );
    out
}

fn merge(r: Result<Diagnostics, Diagnostics>) -> Vec<pb::Diagnostic> {
    match r {
        Ok(d) | Err(d) => convert::diagnostics(&d),
    }
}

fn metadata_response<P: Provider>(inner: &Inner<P>) -> pb::get_metadata::Response {
    pb::get_metadata::Response {
        server_capabilities: Some(capabilities()),
        diagnostics: vec![],
        data_sources: inner
            .data_sources
            .keys()
            .map(|t| pb::get_metadata::DataSourceMetadata {
                type_name: (*t).to_owned(),
            })
            .collect(),
        resources: vec![],
        functions: vec![],
        ephemeral_resources: inner
            .ephemeral
            .keys()
            .map(|t| pb::get_metadata::EphemeralMetadata {
                type_name: (*t).to_owned(),
            })
            .collect(),
    }
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: false,
        // Later provider processes in the same run take the schema from Terraform's cache.
        get_provider_schema_optional: true,
        move_resource_state: false,
    }
}

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for ProviderService<P> {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Reply<pb::get_metadata::Response> {
        Ok(Response::new(metadata_response(&self.inner)))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Reply<pb::get_provider_schema::Response> {
        let inner = &self.inner;
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(convert::schema(&inner.provider_schema)),
            resource_schemas: HashMap::new(),
            data_source_schemas: inner
                .data_sources
                .iter()
                .map(|(t, r)| ((*t).to_owned(), convert::schema(&r.schema)))
                .collect(),
            diagnostics: vec![],
            provider_meta: None,
            server_capabilities: Some(capabilities()),
            functions: HashMap::new(),
            ephemeral_resource_schemas: inner
                .ephemeral
                .iter()
                .map(|(t, r)| ((*t).to_owned(), convert::schema(&r.schema)))
                .collect(),
        }))
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Reply<pb::validate_provider_config::Response> {
        let req = req.into_inner();
        let r = guarded("ValidateProviderConfig", async {
            let cfg = convert::decode(
                req.config.as_ref(),
                &self.inner.provider_schema.block,
                "provider configuration",
            )?;
            let d = self.inner.provider.validate(&Config::new(cfg));
            d.into_result()
        })
        .await;
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: merge(r),
        }))
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Reply<pb::configure_provider::Response> {
        let req = req.into_inner();
        let r = guarded("ConfigureProvider", async {
            let cfg = convert::decode(
                req.config.as_ref(),
                &self.inner.provider_schema.block,
                "provider configuration",
            )?;
            let (ctx, warnings) = self
                .inner
                .provider
                .configure(&req.terraform_version, &Config::new(cfg))
                .await?;
            *self
                .inner
                .context
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(ctx));
            Ok(warnings)
        })
        .await;
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: merge(r),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Reply<pb::validate_data_resource_config::Response> {
        let req = req.into_inner();
        let r = guarded("ValidateDataResourceConfig", async {
            let ds = self.data_source(&req.type_name)?;
            let cfg = convert::decode(
                req.config.as_ref(),
                &ds.schema.block,
                "data source configuration",
            )?;
            let d = ds.imp.validate(&Config::new(cfg));
            d.into_result()
        })
        .await;
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: merge(r),
        }))
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Reply<pb::read_data_source::Response> {
        let req = req.into_inner();
        let mut state = None;
        let r = guarded("ReadDataSource", async {
            let ds = self.data_source(&req.type_name)?;
            let cfg = convert::decode(
                req.config.as_ref(),
                &ds.schema.block,
                "data source configuration",
            )?;
            let ctx = self.context()?;
            let (value, warnings) = ds.imp.read(&ctx, &Config::new(cfg)).await?;
            state = Some(convert::encode(&value, &ds.schema.block)?);
            Ok(warnings)
        })
        .await;
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics: merge(r),
            deferred: None,
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        req: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Reply<pb::validate_ephemeral_resource_config::Response> {
        let req = req.into_inner();
        let r = guarded("ValidateEphemeralResourceConfig", async {
            let res = self.ephemeral(&req.type_name)?;
            let cfg = convert::decode(
                req.config.as_ref(),
                &res.schema.block,
                "ephemeral resource configuration",
            )?;
            let d = res.imp.validate(&Config::new(cfg));
            d.into_result()
        })
        .await;
        Ok(Response::new(
            pb::validate_ephemeral_resource_config::Response {
                diagnostics: merge(r),
            },
        ))
    }

    async fn open_ephemeral_resource(
        &self,
        req: Request<pb::open_ephemeral_resource::Request>,
    ) -> Reply<pb::open_ephemeral_resource::Response> {
        let req = req.into_inner();
        let mut out = pb::open_ephemeral_resource::Response::default();
        let r = guarded("OpenEphemeralResource", async {
            let res = self.ephemeral(&req.type_name)?;
            let cfg = convert::decode(req.config.as_ref(), &res.schema.block, "ephemeral resource configuration")?;
            if !cfg.is_fully_known() {
                return Err(Diagnostic::error(
                    "Configuration not fully known",
                    "Terraform asked to open an ephemeral resource whose configuration still has unknown values.",
                )
                .into());
            }
            let ctx = self.context()?;
            tracing::debug!(type_name = %req.type_name, "opening");
            let opened = res.imp.open(&ctx, &Config::new(cfg)).await?;
            match convert::encode(&opened.result, &res.schema.block) {
                Ok(result) => {
                    out.result = Some(result);
                    out.private = opened.private;
                    out.renew_at = opened.renew_at.map(convert::timestamp);
                    Ok(opened.warnings)
                }
                Err(d) => {
                    // Terraform will not call close after an error, so release it now.
                    if let Some(private) = &opened.private {
                        res.imp.close(private).await;
                    }
                    Err(d.into())
                }
            }
        })
        .await;
        out.diagnostics = merge(r);
        Ok(Response::new(out))
    }

    async fn renew_ephemeral_resource(
        &self,
        req: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Reply<pb::renew_ephemeral_resource::Response> {
        let req = req.into_inner();
        let mut out = pb::renew_ephemeral_resource::Response::default();
        let r = guarded("RenewEphemeralResource", async {
            let res = self.ephemeral(&req.type_name)?;
            let ctx = self.context()?;
            let renewed = res
                .imp
                .renew(&ctx, req.private.as_deref().unwrap_or_default())
                .await?;
            // OpenTofu hands Close the private bytes of the latest Renew, even when a Renew
            // returned none: a resource that keeps its handle must get it back unchanged.
            out.private = renewed.private.or_else(|| req.private.clone());
            out.renew_at = renewed.renew_at.map(convert::timestamp);
            Ok(Diagnostics::new())
        })
        .await;
        out.diagnostics = merge(r);
        Ok(Response::new(out))
    }

    async fn close_ephemeral_resource(
        &self,
        req: Request<pb::close_ephemeral_resource::Request>,
    ) -> Reply<pb::close_ephemeral_resource::Response> {
        let req = req.into_inner();
        let r = guarded("CloseEphemeralResource", async {
            let res = self.ephemeral(&req.type_name)?;
            let d = res
                .imp
                .close(req.private.as_deref().unwrap_or_default())
                .await;
            d.into_result()
        })
        .await;
        Ok(Response::new(pb::close_ephemeral_resource::Response {
            diagnostics: merge(r),
        }))
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Reply<pb::get_functions::Response> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Reply<pb::stop_provider::Response> {
        tracing::info!("StopProvider: abandoning work in progress");
        self.inner.provider.stop();
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}

/// go-plugin's controller: Terraform calls Shutdown when it is done with the process.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    pub(crate) shutdown: CancellationToken,
}

#[tonic::async_trait]
impl ctl::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<ctl::Empty>) -> Reply<ctl::Empty> {
        tracing::debug!("Shutdown requested by Terraform");
        self.shutdown.cancel();
        Ok(Response::new(ctl::Empty {}))
    }
}
