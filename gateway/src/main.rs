//! `ipfaas`: the gateway (HTTP API + embedded IPFS node) and its command-line client.

mod api;
mod cli;
mod units;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    ipfaas_runtime::pypkg::index::install_crypto_provider();
    let args = cli::Cli::parse();
    // libp2p's layers log every failed dial as an error; a peer that is down is normal in a
    // network, and ipfaas reports its bootstrap peers' state itself.
    let quiet = "libp2p=warn,libp2p_kad=error,rust_ipfs=warn,connexa=warn,connexa::task::swarm=off,connexa::behaviour::request_response=off";
    // bollard logs every request body at debug level, and a container's body holds its
    // secrets: never below info, whatever the spec asks
    let never = "bollard=info";
    let filter = match std::env::var("IPFAAS_LOG") {
        Ok(level) if !level.contains('=') => format!("{level},{quiet},{never}"),
        Ok(spec) => format!("{spec},{never}"),
        Err(_) => format!("info,{quiet},{never}"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("info,{quiet},{never}"))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
