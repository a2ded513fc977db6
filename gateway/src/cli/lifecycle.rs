//! CLI commands for a function's lifecycle: `functions --versions NAME`, `rollback NAME [CID]`
//! and `rm NAME [--purge]`. Against a running server they use the HTTP API; without one they
//! work on the repo directly.

use super::client::{Backend, check};
use super::function::local_functions;
use anyhow::Result;
use serde_json::{Value, json};
use std::io::Write;

/// `/v1/functions/{name}` with the name escaped for a path segment.
fn path(name: &str, rest: &str) -> String {
    let n = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("/v1/functions/{n}{rest}")
}

/// Prints `name`'s versions, newest first: function CID, date, how, who; `*` marks the current.
pub async fn versions(b: &Backend, name: &str) -> Result<()> {
    let versions: Value = match b {
        Backend::Local(store) => serde_json::to_value(local_functions(store)?.versions(name)?)?,
        Backend::Remote(r) => {
            let v: Value = check(
                r.request(reqwest::Method::GET, &path(name, "/versions"))
                    .send()
                    .await?,
            )
            .await?
            .json()
            .await?;
            v["versions"].clone()
        }
    };
    let mut out = std::io::stdout().lock();
    for (i, v) in versions.as_array().into_iter().flatten().enumerate() {
        let at = v["at"]
            .as_u64()
            .map(|s| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
                )
                .to_string()
            })
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{} {}  {:<20}  {:<8}  {}",
            if i == 0 { "*" } else { " " },
            v["function_cid"].as_str().unwrap_or(""),
            at,
            v["how"].as_str().unwrap_or(""),
            v["by"].as_str().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// Points `name` at `cid`, or at its previous version; prints the answer.
pub async fn rollback(b: &Backend, name: &str, cid: Option<&str>) -> Result<()> {
    let v: Value = match b {
        Backend::Local(store) => {
            serde_json::to_value(local_functions(store)?.rollback(name, cid, None).await?)?
        }
        Backend::Remote(r) => {
            check(
                r.request(reqwest::Method::PUT, &path(name, ""))
                    .json(&json!({ "function_cid": cid }))
                    .send()
                    .await?,
            )
            .await?
            .json()
            .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// Removes `name` (and with `purge` unpins what only it used); prints the answer.
pub async fn remove(b: &Backend, name: &str, purge: bool) -> Result<()> {
    let v: Value = match b {
        Backend::Local(store) => {
            serde_json::to_value(local_functions(store)?.remove(name, purge).await?)?
        }
        Backend::Remote(r) => {
            let mut req = r.request(reqwest::Method::DELETE, &path(name, ""));
            if purge {
                req = req.query(&[("purge", "true")]);
            }
            check(req.send().await?).await?.json().await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
