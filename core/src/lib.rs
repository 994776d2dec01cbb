//! The ccsecrets core: reads contact-center credentials from a secret store, mints Genesys
//! Cloud and NICE CXone tokens, shares and revokes them. It knows nothing of Terraform, HCL
//! or gRPC; the provider, the command line and the agent are its front ends.
//!
//! Data flows one way: a front end → [`settings`] (a [`mint::Core`]) → [`mint`] (the one
//! pipeline) → [`store`] and [`platform`] (the seams) → [`pool`] (shared tokens).

pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod mint;
pub mod net;
pub mod platform;
pub mod pool;
pub mod process;
pub mod settings;
pub mod store;
pub mod vocabulary;

pub use error::{Field, Problem, Severity};
pub use mint::{Core, Minted, Options, Source};
pub use settings::Settings;
