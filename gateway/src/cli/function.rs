//! CLI commands for functions: `deploy`, `invoke`, `functions`, `verify`, and `peers`. Against a running server they
//! use the HTTP API; without one they work on the repo directly.

use super::client::{Backend, check};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use ipfaas_runtime::executor::ExecError;
use ipfaas_runtime::invoke::headers;
use ipfaas_runtime::invoke::{Functions, FunctionsConfig, InvokeError, InvokeRequest};
use ipfaas_runtime::registry::Bundle;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// The repo's functions, for commands run without a server.
pub fn local_functions(store: &ipfaas_runtime::Store) -> Result<Functions> {
    Ok(Functions::open(
        store.clone(),
        &prometheus::Registry::new(),
        FunctionsConfig::default(),
    )?)
}

/// A bundle directory as a tar archive (what `POST /v1/functions` takes).
pub fn bundle_tar(dir: &Path) -> Result<Vec<u8>> {
    let bundle = Bundle::from_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !bundle.files.contains_key("function.py") {
        bail!("{} has no function.py", dir.display());
    }
    let mut t = tar::Builder::new(Vec::new());
    for (path, data) in &bundle.files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        t.append_data(&mut h, path, &data[..])?;
    }
    Ok(t.into_inner()?)
}

/// The name a directory deploys under when `ipfaas.toml` and `--name` give none.
fn dir_name(dir: &Path) -> Option<String> {
    let canon = dir.canonicalize().ok()?;
    Some(canon.file_name()?.to_string_lossy().into_owned())
}

/// What `ipfaas deploy` does besides deploying.
pub struct DeployFlags {
    /// Write `requirements.lock` next to the bundle from what the deploy resolved.
    pub lock: bool,
    /// Resolve `requirements.txt` again (ignore `requirements.lock` and earlier resolutions).
    pub upgrade: bool,
}

pub async fn deploy(
    b: &Backend,
    dir: &Path,
    name: Option<String>,
    flags: DeployFlags,
) -> Result<()> {
    let bundle = Bundle::from_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let name = match name {
        Some(n) => Some(n),
        None if bundle.manifest()?.name.is_some() => None,
        None => dir_name(dir),
    };
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!(
        "building {} (componentize-py pre-initialises the function; ~15 s)",
        name.as_deref().unwrap_or("the function")
    ));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let r = deploy_inner(b, dir, bundle, name, flags.upgrade).await;
    spinner.finish_and_clear();
    let v = r?;
    if flags.lock {
        write_lock(dir, &v)?;
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// Writes the deploy answer's lock as `requirements.lock` in `dir`.
fn write_lock(dir: &Path, deployed: &Value) -> Result<()> {
    let wheels: Vec<ipfaas_runtime::pypkg::lock::Locked> =
        serde_json::from_value(deployed["lock"].clone()).unwrap_or_default();
    if wheels.is_empty() {
        bail!("--lock: the function has no requirements to lock");
    }
    let lock = ipfaas_runtime::pypkg::lock::Lock::new(wheels);
    let path = dir.join("requirements.lock");
    std::fs::write(&path, lock.to_toml()).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} ({} wheels)", path.display(), lock.wheels.len());
    Ok(())
}

async fn deploy_inner(
    b: &Backend,
    dir: &Path,
    bundle: Bundle,
    name: Option<String>,
    upgrade: bool,
) -> Result<Value> {
    match b {
        Backend::Local(store) => {
            let f = local_functions(store)?;
            Ok(serde_json::to_value(
                f.deploy(name, bundle, None, upgrade).await?,
            )?)
        }
        Backend::Remote(r) => {
            let tar = bundle_tar(dir)?;
            let mut req = r
                .request(reqwest::Method::POST, "/v1/functions")
                .header("content-type", "application/x-tar")
                .body(tar);
            if let Some(n) = &name {
                req = req.query(&[("name", n)]);
            }
            if upgrade {
                req = req.query(&[("upgrade", "true")]);
            }
            Ok(check(req.send().await?).await?.json().await?)
        }
    }
}

pub async fn list(b: &Backend) -> Result<()> {
    let fns: Value = match b {
        Backend::Local(store) => serde_json::to_value(local_functions(store)?.list().await?)?,
        Backend::Remote(r) => {
            let v: Value = check(
                r.request(reqwest::Method::GET, "/v1/functions")
                    .send()
                    .await?,
            )
            .await?
            .json()
            .await?;
            v["functions"].clone()
        }
    };
    let mut out = std::io::stdout().lock();
    for f in fns.as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<24} {}  {}",
            f["name"].as_str().unwrap_or(""),
            f["function_cid"].as_str().unwrap_or(""),
            f["kind"].as_str().unwrap_or("")
        )?;
    }
    Ok(())
}

pub fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

/// Prints the output on stdout; the output CID and logs on stderr.
pub async fn invoke(
    b: &Backend,
    function: &str,
    cid: &str,
    params: Vec<(String, String)>,
    cache: bool,
) -> Result<()> {
    let params: BTreeMap<String, String> = params.into_iter().collect();
    let (body, output_cid, logs): (Bytes, String, String) = match b {
        Backend::Local(store) => {
            let f = local_functions(store)?;
            let req = InvokeRequest {
                function: function.to_string(),
                input: ipfaas_runtime::error::parse_cid(cid)?,
                params,
                use_cache: cache,
                logs: None,
            };
            let r = f.invoke(req).await;
            f.flush().await?;
            match r {
                Ok(inv) => (
                    inv.body,
                    inv.output_cid,
                    String::from_utf8_lossy(&inv.logs).into_owned(),
                ),
                Err(InvokeError::Exec(ExecError::Host(e)) | InvokeError::Host(e)) => {
                    return Err(e.into());
                }
                Err(InvokeError::Exec(e)) => {
                    eprint!("{}", String::from_utf8_lossy(e.logs()));
                    if let ExecError::Exception { traceback, .. } = &e {
                        eprint!("{traceback}");
                    }
                    bail!("{e}");
                }
                Err(e @ InvokeError::Remote { .. }) => bail!("{e}"),
            }
        }
        Backend::Remote(r) => {
            let mut q: Vec<(String, String)> = params.into_iter().collect();
            q.push(("cid".into(), cid.to_string()));
            if !cache {
                q.push(("cache".into(), "false".into()));
            }
            let path = format!(
                "/v1/functions/{}/invoke",
                percent_encoding::utf8_percent_encode(function, percent_encoding::NON_ALPHANUMERIC)
            );
            let resp = r
                .request(reqwest::Method::POST, &path)
                .query(&q)
                .send()
                .await?;
            if !resp.status().is_success() {
                let status = resp.status();
                let v: Value = resp.json().await.unwrap_or_default();
                if let Some(l) = v["logs"].as_str() {
                    eprint!("{l}");
                }
                if let Some(tb) = v["traceback"].as_str() {
                    eprint!("{tb}");
                }
                bail!(
                    "{} (HTTP {status})",
                    v["error"].as_str().unwrap_or("invocation failed")
                );
            }
            let output_cid = resp
                .headers()
                .get(headers::OUTPUT_CID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let logs_cid = resp
                .headers()
                .get(headers::LOGS_CID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.bytes().await?;
            let logs = match logs_cid {
                Some(c) => {
                    let resp = r
                        .request(reqwest::Method::GET, &format!("/ipfs/{c}"))
                        .send()
                        .await?;
                    String::from_utf8_lossy(&check(resp).await?.bytes().await?).into_owned()
                }
                None => String::new(),
            };
            (body, output_cid, logs)
        }
    };
    eprint!("{logs}");
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    out.flush()?;
    eprintln!("output: {output_cid}");
    Ok(())
}

fn needs_server(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} needs the running node (start `ipfaas serve`, or point --api at one): \
         a node has peers only while it serves"
    )
}

/// Prints one line per peer and whether its output CID agrees; fails unless all agree.
pub async fn verify(
    b: &Backend,
    function: &str,
    cid: &str,
    params: Vec<(String, String)>,
    peers: usize,
) -> Result<()> {
    let Backend::Remote(r) = b else {
        return Err(needs_server("verify"));
    };
    let params: BTreeMap<String, String> = params.into_iter().collect();
    let body = serde_json::json!({
        "function": function, "cid": cid, "params": params, "peers": peers,
    });
    let resp = r
        .request(reqwest::Method::POST, "/v1/verify")
        .json(&body)
        .send()
        .await?;
    let v: Value = check(resp).await?.json().await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "here  {}",
        v["output_cid"].as_str().unwrap_or_default()
    )?;
    for p in v["peers"].as_array().into_iter().flatten() {
        let verdict = if p["agrees"].as_bool() == Some(true) {
            "agrees"
        } else {
            "DISAGREES"
        };
        let what = p["output_cid"]
            .as_str()
            .or(p["error"].as_str())
            .unwrap_or_default();
        writeln!(
            out,
            "{}  {what}  {verdict}",
            p["peer"].as_str().unwrap_or_default()
        )?;
    }
    if v["agree"].as_bool() != Some(true) {
        bail!(
            "not verified: {} of {} peers answered, {} agree",
            v["answered"],
            v["requested"],
            v["peers"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|p| p["agrees"] == true).count())
        );
    }
    Ok(())
}

pub async fn peers(b: &Backend) -> Result<()> {
    let Backend::Remote(r) = b else {
        return Err(needs_server("peers"));
    };
    let resp = r.request(reqwest::Method::GET, "/v1/peers").send().await?;
    let v: Value = check(resp).await?.json().await?;
    let mut out = std::io::stdout().lock();
    for p in v["peers"].as_array().into_iter().flatten() {
        let addrs: Vec<&str> = p["addrs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        writeln!(
            out,
            "{}  {}",
            p["peer"].as_str().unwrap_or_default(),
            addrs.join(" ")
        )?;
    }
    Ok(())
}
