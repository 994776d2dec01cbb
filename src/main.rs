//! `terraform-provider-ccsecrets`: run by Terraform as a plugin, or by hand with `--debug`.

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "\
terraform-provider-ccsecrets: a Terraform/OpenTofu provider (run by Terraform, not by hand).

Usage:
  terraform-provider-ccsecrets                 serve as a plugin (Terraform starts it)
  terraform-provider-ccsecrets --debug [ADDR]  serve for debugging; prints TF_REATTACH_PROVIDERS
                                               (ADDR defaults to registry.terraform.io/ccsecrets/ccsecrets)
  terraform-provider-ccsecrets --version       print the version
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => {
            drop(out);
            ccsecrets::server::serve_plugin(ccsecrets::provider())
        }
        ["--version" | "-version" | "version"] => {
            let _ = writeln!(
                out,
                "terraform-provider-ccsecrets v{}",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        ["--debug"] | ["--debug", _] => {
            drop(out);
            let address = args
                .get(1)
                .map_or(ccsecrets::REGISTRY_ADDRESS, String::as_str);
            ccsecrets::server::serve_debug(ccsecrets::provider(), address)
        }
        ["--help" | "-h" | "help"] => {
            let _ = write!(out, "{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            let _ = write!(std::io::stderr(), "unknown arguments: {args:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
