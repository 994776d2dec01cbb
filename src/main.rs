//! `terraform-provider-ccsecrets`: run by Terraform as a plugin, or by hand with `--debug`.

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "\
terraform-provider-ccsecrets: a Terraform/OpenTofu provider (run by Terraform, not by hand).

Usage:
  terraform-provider-ccsecrets                 serve as a plugin (Terraform starts it)
  terraform-provider-ccsecrets --debug [ADDR]  serve for debugging; prints TF_REATTACH_PROVIDERS
                                               (ADDR defaults to $CCSECRETS_DEBUG_ADDRESS, else
                                               registry.terraform.io/ccsecrets/ccsecrets; OpenTofu:
                                               registry.opentofu.org/ccsecrets/ccsecrets)
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
            // OpenTofu's address differs (registry.opentofu.org/...): the argument, else the
            // environment, else Terraform's.
            let from_env = std::env::var("CCSECRETS_DEBUG_ADDRESS")
                .ok()
                .filter(|a| !a.trim().is_empty());
            let address = args
                .get(1)
                .cloned()
                .or(from_env)
                .unwrap_or_else(|| ccsecrets::REGISTRY_ADDRESS.to_owned());
            ccsecrets::server::serve_debug(ccsecrets::provider(), &address)
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
