//! The stand-in `genesyscloud` consumer provider, run by Terraform in the acceptance tests.

fn main() -> std::process::ExitCode {
    ccsecrets::server::serve_plugin(ccsecrets_testkit::consumer::GenesysCloudConsumer)
}
