//! `ipfaas secret set|ls|rm`: the node's secret store, through the server when one runs,
//! else directly in the repo.

use super::client::{Backend, check};
use anyhow::{Result, bail};
use clap::Subcommand;
use ipfaas_runtime::secrets::{MAX_SECRET, Secrets};
use std::io::Read;
use std::path::Path;

/// What to do with secrets.
#[derive(Subcommand, Debug)]
pub enum SecretCmd {
    /// Set a secret; its value is read from standard input (a trailing newline is dropped)
    Set { name: String },
    /// List the names of the secrets set (never their values)
    Ls,
    /// Remove a secret
    Rm { name: String },
}

fn escape(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub async fn run(b: &Backend, repo: &Path, cmd: SecretCmd) -> Result<()> {
    match cmd {
        SecretCmd::Set { name } => {
            let mut value = Vec::new();
            std::io::stdin()
                .take(MAX_SECRET as u64 + 2)
                .read_to_end(&mut value)?;
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
            match b {
                Backend::Local(_) => Secrets::open(repo)?.set(&name, &value)?,
                Backend::Remote(r) => {
                    let path = format!("/v1/secrets/{}", escape(&name));
                    check(
                        r.request(reqwest::Method::PUT, &path)
                            .body(value)
                            .send()
                            .await?,
                    )
                    .await?;
                }
            }
            println!("set {name}");
        }
        SecretCmd::Ls => {
            let names: Vec<String> = match b {
                Backend::Local(_) => Secrets::open(repo)?.names()?,
                Backend::Remote(r) => {
                    let v: serde_json::Value = check(
                        r.request(reqwest::Method::GET, "/v1/secrets")
                            .send()
                            .await?,
                    )
                    .await?
                    .json()
                    .await?;
                    serde_json::from_value(v["secrets"].clone())?
                }
            };
            for n in names {
                println!("{n}");
            }
        }
        SecretCmd::Rm { name } => {
            match b {
                Backend::Local(_) => {
                    if !Secrets::open(repo)?.remove(&name)? {
                        bail!("no secret named {name:?}");
                    }
                }
                Backend::Remote(r) => {
                    let path = format!("/v1/secrets/{}", escape(&name));
                    check(r.request(reqwest::Method::DELETE, &path).send().await?).await?;
                }
            }
            println!("removed {name}");
        }
    }
    Ok(())
}
