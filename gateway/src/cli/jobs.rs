//! CLI commands for asynchronous jobs: `invoke --async`, `jobs [--status S] [--function F]`,
//! and `job ID [--follow] [--cancel] [--retry]`. Jobs live in a running server (its job table,
//! its workers), so these commands talk to one.

use super::client::{Backend, Remote, check};
use anyhow::{Result, bail};
use futures::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

fn remote(b: &Backend) -> Result<&Remote> {
    match b {
        Backend::Remote(r) => Ok(r),
        Backend::Local(_) => {
            bail!("jobs run in a server: start `ipfaas serve` (or pass --api URL) first")
        }
    }
}

/// Submits an invocation as a job; prints the job (its id first) and, with `follow`, follows it.
pub async fn submit(
    b: &Backend,
    function: &str,
    cid: &str,
    params: BTreeMap<String, String>,
    cache: bool,
    callback: Option<String>,
    follow: bool,
) -> Result<()> {
    let r = remote(b)?;
    let mut q: Vec<(String, String)> = params.into_iter().collect();
    q.push(("cid".into(), cid.to_string()));
    q.push(("async".into(), "true".into()));
    if !cache {
        q.push(("cache".into(), "false".into()));
    }
    let path = format!(
        "/v1/functions/{}/invoke",
        percent_encoding::utf8_percent_encode(function, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut req = r.request(reqwest::Method::POST, &path).query(&q);
    if let Some(u) = callback {
        req = req.header("x-callback-url", u);
    }
    let job: Value = check(req.send().await?).await?.json().await?;
    let id = job["job"].as_str().unwrap_or_default().to_string();
    if follow {
        eprintln!("job {id}");
        return follow_job(r, &id).await;
    }
    println!("{id}");
    eprintln!(
        "status {}; follow it with `ipfaas job {id} --follow`",
        job["status"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Lists jobs, newest first: id, status, function, when accepted, how long it ran.
pub async fn list(
    b: &Backend,
    status: Option<String>,
    function: Option<String>,
    limit: usize,
) -> Result<()> {
    let r = remote(b)?;
    let mut q = vec![("limit".to_string(), limit.to_string())];
    if let Some(s) = status {
        q.push(("status".into(), s));
    }
    if let Some(f) = function {
        q.push(("function".into(), f));
    }
    let v: Value = check(
        r.request(reqwest::Method::GET, "/v1/jobs")
            .query(&q)
            .send()
            .await?,
    )
    .await?
    .json()
    .await?;
    let mut out = std::io::stdout().lock();
    for j in v["jobs"].as_array().into_iter().flatten() {
        let ran = j["run_seconds"]
            .as_f64()
            .map(|s| format!("{s:.3}s"))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{}  {:<11}  {:<24}  {}  {}",
            j["job"].as_str().unwrap_or(""),
            j["status"].as_str().unwrap_or(""),
            j["function"].as_str().unwrap_or(""),
            j["created_at"].as_str().unwrap_or(""),
            ran
        )?;
    }
    Ok(())
}

/// Shows a job (JSON), or cancels, retries or follows it.
pub async fn show(b: &Backend, id: &str, follow: bool, cancel: bool, retry: bool) -> Result<()> {
    let r = remote(b)?;
    let path = format!("/v1/jobs/{id}");
    let v: Value = if cancel {
        check(r.request(reqwest::Method::DELETE, &path).send().await?)
            .await?
            .json()
            .await?
    } else if retry {
        check(
            r.request(reqwest::Method::POST, &format!("{path}/retry"))
                .send()
                .await?,
        )
        .await?
        .json()
        .await?
    } else if follow {
        return follow_job(r, id).await;
    } else {
        check(r.request(reqwest::Method::GET, &path).send().await?)
            .await?
            .json()
            .await?
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    if retry && follow {
        return follow_job(r, id).await;
    }
    Ok(())
}

/// Streams the job's logs to stderr under a live status line until it ends; then prints its
/// output on stdout (done) or fails with its error.
async fn follow_job(r: &Remote, id: &str) -> Result<()> {
    let line = indicatif::ProgressBar::new_spinner();
    line.enable_steady_tick(Duration::from_millis(120));
    let t = Instant::now();
    let status = {
        let r = r.clone();
        let id = id.to_string();
        let line = line.clone();
        // the status line: the job's state and how long it has been following
        tokio::spawn(async move {
            loop {
                if let Ok(resp) = r
                    .request(reqwest::Method::GET, &format!("/v1/jobs/{id}"))
                    .send()
                    .await
                    && let Ok(v) = resp.json::<Value>().await
                {
                    line.set_message(format!(
                        "job {} {} ({:.1} s, attempt {})",
                        &id[..id.len().min(12)],
                        v["status"].as_str().unwrap_or("?"),
                        t.elapsed().as_secs_f64(),
                        v["attempts"]
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let logs = check(
        r.request(reqwest::Method::GET, &format!("/v1/jobs/{id}/logs"))
            .query(&[("follow", "true")])
            .send()
            .await?,
    )
    .await;
    let streamed = match logs {
        Ok(resp) => {
            let mut s = resp.bytes_stream();
            let mut res = Ok(());
            while let Some(chunk) = s.next().await {
                match chunk {
                    Ok(c) => line.suspend(|| {
                        let mut e = std::io::stderr().lock();
                        let _ = e.write_all(&c);
                        let _ = e.flush();
                    }),
                    Err(e) => {
                        res = Err(anyhow::Error::from(e));
                        break;
                    }
                }
            }
            res
        }
        Err(e) => Err(e),
    };
    status.abort();
    line.finish_and_clear();
    streamed?;
    let v: Value = check(
        r.request(reqwest::Method::GET, &format!("/v1/jobs/{id}"))
            .send()
            .await?,
    )
    .await?
    .json()
    .await?;
    match v["status"].as_str() {
        Some("done") => {
            let cid = v["result"]["output_cid"].as_str().unwrap_or_default();
            eprintln!("output {cid}");
            let body = check(
                r.request(reqwest::Method::GET, &format!("/ipfs/{cid}"))
                    .send()
                    .await?,
            )
            .await?
            .bytes()
            .await?;
            std::io::stdout().write_all(&body)?;
            Ok(())
        }
        Some(s) => bail!(
            "job {id} {s}: {}",
            v["error"]["error"]
                .as_str()
                .unwrap_or("(no error recorded)")
        ),
        None => bail!("job {id}: no status in {v}"),
    }
}
