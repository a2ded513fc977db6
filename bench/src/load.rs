//! `ipfaas-bench load [--minutes M] [--clients C] [--ipfaas PATH]`: C clients (default 32) send
//! one node a mix of the same work at once for M minutes (default 5), loopback only: identical
//! and unique adds (small and 1 MiB), invocations (cached, uncached, raw bodies) and deploys (of
//! one bundle again and again, and now and then a new one), while a separate probe reads
//! `/healthz` every 20 ms. It fails on any 5xx, any wrong answer or a probe that got no answer;
//! 429s are counted (the node shedding load is correct) but are not failures. It prints each
//! kind's count and latency (median, p99) and the probe's p99 against the 50 ms target.

use super::invoke::{Server, deploy, ipfaas_binary, start_with};
use anyhow::{Result, bail};
use ipfaas_testkit::{hex, multipart, tar_of};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HASHER: &str = r#"
import hashlib

def main(input, params):
    return hashlib.sha256(input.read()).hexdigest()
"#;

/// What one kind of request met.
#[derive(Default)]
struct Kind {
    times: Vec<Duration>,
    busy: u64,
    failures: Vec<String>,
}

type Tally = Arc<Mutex<BTreeMap<&'static str, Kind>>>;

fn note(t: &Tally, kind: &'static str, took: Duration, outcome: std::result::Result<(), String>) {
    let mut t = t.lock().unwrap();
    let k = t.entry(kind).or_default();
    match outcome {
        Ok(()) => k.times.push(took),
        Err(e) if e == "429" => k.busy += 1,
        Err(e) => {
            if k.failures.len() < 5 {
                k.failures.push(e);
            } else {
                k.failures.push(String::new());
            }
        }
    }
}

/// Sends `req`; Ok when it answers `want_status` with a body `check` accepts.
async fn call(
    req: reqwest::RequestBuilder,
    want_status: u16,
    check: impl FnOnce(&str) -> bool,
) -> std::result::Result<(), String> {
    let r = req
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let st = r.status().as_u16();
    let text = r.text().await.map_err(|e| format!("body: {e}"))?;
    if st == 429 {
        return Err("429".into());
    }
    if st != want_status {
        return Err(format!(
            "{st}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    if !check(&text) {
        return Err(format!(
            "wrong answer: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    Ok(())
}

/// `POST /api/v0/add?pin=true` of one file.
fn add_request(http: &reqwest::Client, s: &Server, data: &[u8]) -> reqwest::RequestBuilder {
    let (ct, body) = multipart(&[("f.bin", "application/octet-stream", data)]);
    http.post(format!("{}/api/v0/add?pin=true", s.url))
        .header("content-type", ct)
        .body(body)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs the load; see the module comment.
pub async fn run(args: &[String]) -> Result<()> {
    let minutes: f64 = super::arg(args, "--minutes").unwrap_or(5.0);
    let clients: usize = super::arg(args, "--clients").unwrap_or(32);
    let bin = ipfaas_binary(args)?;
    let dir = tempfile::tempdir()?;
    let s = start_with(&bin, &dir.path().join("repo"), &[])?;
    let http = reqwest::Client::new();
    deploy(&http, &s, "hasher", HASHER, "").await?;
    println!(
        "load: {minutes} min, {clients} clients, {} (server pid {})",
        bin.display(),
        s.pid()
    );
    let small: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let large: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 253) as u8).collect();
    let tally: Tally = Default::default();
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let s = Arc::new(s);

    // the probe: /healthz every 20 ms from its own connection
    let probe = {
        let (s, tally) = (s.clone(), tally.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = call(
                    http.get(format!("{}/healthz", s.url))
                        .timeout(Duration::from_secs(5)),
                    200,
                    |_| true,
                )
                .await;
                note(&tally, "healthz", t.elapsed(), r);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, s, tally, small, large) = (
            http.clone(),
            s.clone(),
            tally.clone(),
            small.clone(),
            large.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = c as u64;
            while Instant::now() < deadline {
                i += clients as u64;
                let t = Instant::now();
                let (kind, r) = match i % 20 {
                    // the same small and large files added by many clients at once
                    0..=3 => {
                        let data = if i.is_multiple_of(2) { &small } else { &large };
                        let r = call(add_request(&http, &s, data), 200, |t| {
                            t.contains("\"Hash\"")
                        })
                        .await;
                        ("add same", r)
                    }
                    // a file nobody else adds
                    4 => {
                        let mut data = small.clone();
                        data.extend_from_slice(&i.to_le_bytes());
                        let r = call(add_request(&http, &s, &data), 200, |t| {
                            t.contains("\"Hash\"")
                        })
                        .await;
                        ("add unique", r)
                    }
                    // the same input hashed, answered from the cache after the first
                    5..=9 => {
                        let want = hex(&Sha256::digest(&small));
                        let r = call(
                            http.post(format!("{}/v1/functions/hasher/invoke", s.url))
                                .body(small.clone()),
                            200,
                            |t| t == want,
                        )
                        .await;
                        ("invoke cached", r)
                    }
                    // a body nobody else sends, run fresh
                    10..=15 => {
                        let mut data = small.clone();
                        data.extend_from_slice(&i.to_le_bytes());
                        let want = hex(&Sha256::digest(&data));
                        let r = call(
                            http.post(format!("{}/v1/functions/hasher/invoke?cache=false", s.url))
                                .body(data),
                            200,
                            |t| t == want,
                        )
                        .await;
                        ("invoke fresh", r)
                    }
                    // the same bundle deployed again (one build, then reuse)
                    16..=18 => {
                        let r = deploy_once(&http, &s, "again", "'again'").await;
                        ("deploy same", r)
                    }
                    // now and then a new bundle: a real build
                    _ if i % 100 == 19 => {
                        let r = deploy_once(&http, &s, "fresh", &format!("{i}")).await;
                        ("deploy new", r)
                    }
                    _ => {
                        let r = deploy_once(&http, &s, "again", "'again'").await;
                        ("deploy same", r)
                    }
                };
                note(&tally, kind, t.elapsed(), r);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    probe.await?;
    let health = reqwest::get(format!("{}/healthz", s.url)).await?.status();

    println!(
        "{:<14} {:>7} {:>6} {:>9} {:>11} {:>11}",
        "kind", "ok", "429", "failed", "median_ms", "p99_ms"
    );
    let tally = tally.lock().unwrap();
    let mut failed = 0;
    for (kind, k) in tally.iter() {
        let mut times = k.times.clone();
        times.sort();
        failed += k.failures.len();
        println!(
            "{kind:<14} {:>7} {:>6} {:>9} {:>11.2} {:>11.2}",
            times.len(),
            k.busy,
            k.failures.len(),
            quantile(&times, 0.5).as_secs_f64() * 1e3,
            quantile(&times, 0.99).as_secs_f64() * 1e3
        );
        for f in k.failures.iter().filter(|f| !f.is_empty()) {
            println!("    {kind}: {f}");
        }
    }
    let mut probe_times = tally
        .get("healthz")
        .map(|k| k.times.clone())
        .unwrap_or_default();
    probe_times.sort();
    let p99 = quantile(&probe_times, 0.99);
    println!(
        "/healthz p99 {:.2} ms: target <= 50 ms {}",
        p99.as_secs_f64() * 1e3,
        if p99 <= Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    if failed > 0 || !health.is_success() {
        bail!("load failed: {failed} failed requests, /healthz {health} at the end");
    }
    println!("load passed: no 5xx, no wrong answer");
    Ok(())
}

/// Deploys a one-line function returning `expr` under `name`; Ok on 201.
async fn deploy_once(
    http: &reqwest::Client,
    s: &Server,
    name: &str,
    expr: &str,
) -> std::result::Result<(), String> {
    let code = format!("def main(input):\n    return {expr}\n");
    let body = tar_of(&[("function.py", code.as_bytes())]);
    call(
        http.post(format!("{}/v1/functions?name={name}", s.url))
            .header("content-type", "application/x-tar")
            .body(body),
        201,
        |t| t.contains("function_cid"),
    )
    .await
}
