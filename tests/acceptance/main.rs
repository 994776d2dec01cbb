//! Acceptance tests: the real `terraform` binary, a real OpenBao server, and stand-ins for the
//! SaaS platforms. One test binary, one module per area, run in parallel.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod auth;
mod aws;
mod azure;
mod binary;
mod config;
mod consumers;
mod core;
mod grpc;
mod guards;
mod hardening;
mod leaks;
mod registry;
mod resilience;
mod rotation;
mod support;
