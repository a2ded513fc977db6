//! `ipfaas-bench soak [--minutes M] [--workers W] [--no-docker]`: one node under mixed valid and
//! abusive traffic for M minutes (default 30), loopback only, bounded loops. Every 10 s it
//! records the server's resident memory, open files and threads and the containers it has. At
//! the end it compares the peaks of the last quarter of the run with those of its 2nd and 3rd
//! eighths (after a warm-up), and fails if any valid request was answered wrongly, if a peak
//! grew by more than 25%, or if a container is left.
//!
//! Valid traffic: a trivial function (the answer must be exact) and a raw body hashed by a
//! function (the answer must be the body's sha256). Abusive traffic: a spinning function whose
//! caller hangs up, hour-long sleeps, a 4 GiB read asked of the host in one call, an 8 TiB
//! truncate and two 3 GiB sparse files in `/outputs`, bodies over the limit, half-sent request
//! heads, malformed paths, and (with Docker) sleeping containers whose callers hang up.

use super::invoke::{deploy, ipfaas_binary};
use anyhow::{Result, bail};
use ipfaas_runtime::invoke::headers;
use ipfaas_testkit::hex;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ABUSER: &str = r#"
import hashlib, time
from wit_world.imports import input as raw_input

def main(input, params):
    mode = params["mode"]
    if mode == "ok":
        return "ok"
    if mode == "sha":
        return hashlib.sha256(input.read()).hexdigest()
    if mode == "sleep":
        time.sleep(3600)
        return "slept"
    if mode == "spin":
        while True:
            pass
    if mode == "rawread":
        return str(len(raw_input.read(0, 2**32 - 1)))
    if mode == "sparse":
        try:
            with open("/outputs/huge", "wb", buffering=0) as f:
                f.truncate(8 << 40)
        except OSError:
            pass
        for n in ["a", "b"]:
            with open("/outputs/" + n, "wb", buffering=0) as f:
                f.seek(3 << 30)
                f.write(b"x")
        return "sparse"
"#;

/// One sample of the server's resources.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rss_kib: u64,
    fds: u64,
    threads: u64,
    containers: u64,
}

fn sample(pid: u32, docker_label: Option<&str>) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let containers = docker_label.map_or(0, |image| {
        std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("ancestor={image}")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count() as u64)
            .unwrap_or(0)
    });
    Sample {
        rss_kib: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
        containers,
    }
}

#[derive(Default)]
struct Counts {
    valid: AtomicU64,
    wrong: AtomicU64,
    abusive: AtomicU64,
}

/// A request over a raw TCP connection that sends half a head and goes away.
fn half_head(addr: &str) {
    if let Ok(mut c) = std::net::TcpStream::connect(addr) {
        let _ = c.write_all(b"POST /v1/functions/abuser/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn run(args: &[String]) -> Result<()> {
    let minutes: f64 = super::arg(args, "--minutes").unwrap_or(30.0);
    let workers: usize = super::arg(args, "--workers").unwrap_or(6);
    let with_docker = !args.iter().any(|a| a == "--no-docker");
    let bin = ipfaas_binary(args)?;
    let dir = tempfile::tempdir()?;
    let image = "ipfaas-bench-probe:latest";
    if with_docker {
        super::docker::probe_image(dir.path(), image)?;
    }
    let repo = dir.path().join("repo");
    let s = super::invoke::start_with(&bin, &repo, &["--max-body-size", "4MiB"])?;
    let http = reqwest::Client::new();
    deploy(
        &http,
        &s,
        "abuser",
        ABUSER,
        "timeout = \"5s\"\nfuel = 1000000000000\nmemory = \"256MiB\"\n",
    )
    .await?;
    if with_docker {
        let r = http
            .post(format!("{}/v1/functions", s.url))
            .json(
                &serde_json::json!({"name": "dsleep", "kind": "docker", "image": image,
                "limits": {"memory": "32MiB", "timeout": "3s", "pids": 16}}),
            )
            .send()
            .await?;
        if r.status() != 201 {
            bail!("deploy dsleep: {}", r.text().await?);
        }
    }
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    // the input every call names: the payload, stored by an invocation that sends it raw
    let r = http
        .post(format!("{}/v1/functions/abuser/invoke?mode=ok", s.url))
        .body(payload.clone())
        .send()
        .await?;
    let Some(input) = r
        .headers()
        .get(headers::INPUT_CID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        bail!("the invocation gave no {} header", headers::INPUT_CID);
    };
    let want_sha = hex(&Sha256::digest(&payload));

    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, url, counts, input, payload, want_sha, addr) = (
            http.clone(),
            s.url.clone(),
            counts.clone(),
            input.clone(),
            payload.clone(),
            want_sha.clone(),
            addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64;
            while Instant::now() < deadline {
                i += workers as u64;
                let f = format!("{url}/v1/functions/abuser/invoke");
                let kind = i % 12;
                let valid = match kind {
                    0..=2 => Some(
                        expect(
                            http.post(format!("{f}?cid={input}&mode=ok&cache=false")),
                            "ok",
                        )
                        .await,
                    ),
                    3 => Some(
                        expect(
                            http.post(format!("{f}?mode=sha&cache=false"))
                                .body(payload.clone()),
                            &want_sha,
                        )
                        .await,
                    ),
                    _ => None,
                };
                if let Some(ok) = valid {
                    counts.valid.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        counts.wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                counts.abusive.fetch_add(1, Ordering::Relaxed);
                let hang_up = |q: String, ms: u64| {
                    let http = http.clone();
                    async move {
                        let _ = http.post(q).timeout(Duration::from_millis(ms)).send().await;
                    }
                };
                match kind {
                    4 => hang_up(format!("{f}?cid={input}&mode=spin&cache=false"), 300).await,
                    5 => hang_up(format!("{f}?cid={input}&mode=sleep&cache=false"), 5000).await,
                    6 => hang_up(format!("{f}?cid={input}&mode=rawread&cache=false"), 5000).await,
                    7 => hang_up(format!("{f}?cid={input}&mode=sparse&cache=false"), 5000).await,
                    8 => {
                        let _ = http
                            .post(format!("{f}?mode=ok"))
                            .body(vec![0u8; 5 << 20])
                            .send()
                            .await;
                    }
                    9 => {
                        let a = addr.clone();
                        let _ = tokio::task::spawn_blocking(move || half_head(&a)).await;
                    }
                    10 => {
                        let _ = http
                            .get(format!("{url}/ipfs/not-a-cid/../../etc/passwd"))
                            .send()
                            .await;
                    }
                    _ => {
                        if with_docker {
                            hang_up(
                                format!("{url}/v1/functions/dsleep/invoke?cid={input}&mode=sleep"),
                                500,
                            )
                            .await;
                        } else {
                            hang_up(format!("{f}?cid={input}&mode=spin&cache=false"), 300).await;
                        }
                    }
                }
            }
        }));
    }

    println!(
        "soak: {minutes} min, {workers} workers, docker {with_docker}, server pid {}",
        s.pid()
    );
    println!(
        "{:>6} {:>10} {:>6} {:>8} {:>10} {:>8} {:>8} {:>6}",
        "t_s", "rss_MiB", "fds", "threads", "containers", "valid", "abusive", "wrong"
    );
    let label = with_docker.then_some(image);
    let mut samples = Vec::new();
    let t0 = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let x = sample(s.pid(), label);
        samples.push(x);
        println!(
            "{:>6} {:>10.1} {:>6} {:>8} {:>10} {:>8} {:>8} {:>6}",
            t0.elapsed().as_secs(),
            x.rss_kib as f64 / 1024.0,
            x.fds,
            x.threads,
            x.containers,
            counts.valid.load(Ordering::Relaxed),
            counts.abusive.load(Ordering::Relaxed),
            counts.wrong.load(Ordering::Relaxed)
        );
    }
    for t in tasks {
        let _ = t.await;
    }
    // let the last hang-ups settle, then one last sample
    tokio::time::sleep(Duration::from_secs(6)).await;
    let end = sample(s.pid(), label);
    println!("after the traffic stopped: {end:?}");
    let health = http
        .get(format!("{}/healthz", s.url))
        .send()
        .await?
        .status();
    let n = samples.len();
    if n < 8 {
        bail!("too short a run to judge ({n} samples)");
    }
    let quarter = |xs: &[Sample], f: fn(&Sample) -> u64| xs.iter().map(f).max().unwrap_or(0) as f64;
    let (first, last) = (&samples[n / 8..n / 8 + n / 4], &samples[n - n / 4..]);
    let mut grew = Vec::new();
    for (name, f) in [
        ("rss", (|s: &Sample| s.rss_kib) as fn(&Sample) -> u64),
        ("fds", |s: &Sample| s.fds),
        ("threads", |s: &Sample| s.threads),
    ] {
        let (a, b) = (quarter(first, f), quarter(last, f));
        let ratio = b / a.max(1.0);
        println!("{name}: peak in the 2nd eighth..3rd {a}, in the last quarter {b}: {ratio:.2}x");
        if ratio > 1.25 {
            grew.push(name);
        }
    }
    let wrong = counts.wrong.load(Ordering::Relaxed);
    println!(
        "valid requests {} (wrong {wrong}), abusive {}, containers left after the run {}, /healthz {health}",
        counts.valid.load(Ordering::Relaxed),
        counts.abusive.load(Ordering::Relaxed),
        end.containers
    );
    if wrong > 0 || !grew.is_empty() || end.containers > 0 || !health.is_success() {
        bail!(
            "soak failed: wrong {wrong}, grew {grew:?}, containers {}",
            end.containers
        );
    }
    println!("soak passed");
    Ok(())
}

/// Whether `req` answers 200 with exactly `want`.
async fn expect(req: reqwest::RequestBuilder, want: &str) -> bool {
    match req.send().await {
        Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|t| t == want),
        _ => false,
    }
}
