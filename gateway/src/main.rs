//! `ipfaas`: the gateway (HTTP API + embedded IPFS node) and its command-line client.

mod backend;
mod cli;
mod examples;
mod fncmd;
mod server;
mod units;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IPFAAS_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,libp2p=warn,rust_ipfs=warn,connexa=warn")
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
