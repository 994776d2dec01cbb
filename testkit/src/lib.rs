//! The test kit of ccsecrets: a real OpenBao dev server, the real Terraform binary, stand-ins
//! for the platforms we cannot reach (Genesys Cloud, NICE CXone, a Kubernetes TokenReview
//! API), and a stand-in consumer provider. Shared by the acceptance tests, the benchmarks and
//! the demo.

pub mod consumer;
pub mod cxone;
pub mod genesys;
pub mod grpc;
pub mod jwt;
pub mod kube;
pub mod openbao;
pub mod registry;
mod standin;
pub mod terraform;

pub use standin::Fault;
