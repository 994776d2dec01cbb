//! The test kit of ccsecrets: a real OpenBao dev server, the real Terraform binary, stand-ins
//! for the platforms we cannot reach (Genesys Cloud, NICE CXone, a Kubernetes TokenReview
//! API), and a stand-in consumer provider. Shared by the acceptance tests, the benchmarks and
//! the demo.

pub mod aws;
pub mod azure;
pub mod consumer;
pub mod cxone;
pub mod genesys;
pub mod grpc;
pub mod image;
pub mod jwt;
pub mod kube;
pub mod openbao;
pub mod registry;
pub mod runc;
mod standin;
pub mod terraform;
mod tls;

pub use standin::Fault;

/// Whether `program arg` runs and succeeds (output discarded): how the kit checks that a tool
/// it needs is installed before it says how to install it.
pub(crate) fn runs(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds binary `bin` of workspace package `package` with cargo (the release profile when
/// `release`), and returns its path, which is next to `sibling` (a binary cargo built in the
/// same target directory and profile). For tests and benchmarks that need another package's
/// binary: cargo only hands a test the binaries of its own package.
pub fn workspace_bin(
    package: &str,
    bin: &str,
    sibling: &std::path::Path,
    release: bool,
) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(
        status.success(),
        "building {bin} (cargo build -p {package}) failed"
    );
    let path = sibling.with_file_name(bin);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}
