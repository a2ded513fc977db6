//! Asynchronous jobs on the real binary: durable across `kill -9`, cancellable while queued or
//! running, bounded (429), called back, pruned by age and count, listed, paged and followed.

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Hashes its input `n` times (CPU work, which takes time whatever the guest's clock says);
/// with `talk`, prints four lines along the way, flushed.
const CHAIN: &str = r#"
import hashlib

def main(input, params):
    n = int(params.get("n", "1000"))
    h = input.read()
    for i in range(n):
        h = hashlib.sha256(h).digest()
        if params.get("talk") and i % max(1, n // 4) == 0:
            print("step", i, flush=True)
    return h.hex()
"#;
const CHAIN_TOML: &[u8] = b"name = \"chain\"\nfuel = 100000000000000\ntimeout = \"120s\"\n";
/// Iterations that keep a job busy for a good second (and far less than its timeout).
const LONG: usize = 2_000_000;

/// What `chain` answers for `input` and `n`.
fn chain(input: &[u8], n: usize) -> String {
    let mut h = input.to_vec();
    for _ in 0..n {
        h = Sha256::digest(&h).to_vec();
    }
    hex(&h)
}

async fn deploy_chain(s: &Server) {
    deploy_files(
        s,
        &[
            ("function.py", CHAIN.as_bytes()),
            ("ipfaas.toml", CHAIN_TOML),
        ],
    )
    .await;
}

/// Submits `chain` on `cid` as a job: (status, answer, Retry-After).
async fn submit(s: &Server, cid: &str, q: &str, callback: Option<&str>) -> (u16, Value, String) {
    let mut r = client().post(format!(
        "{}/v1/functions/chain/invoke?cid={cid}&async=true&{q}",
        s.url
    ));
    if let Some(u) = callback {
        r = r.header("x-callback-url", u);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let (location, retry) = (header(&r, "location"), header(&r, "retry-after"));
    let v: Value = r.json().await.unwrap();
    if status == 202 {
        assert_eq!(location, format!("/v1/jobs/{}", v["job"].as_str().unwrap()));
        assert!(
            matches!(v["status"].as_str(), Some("queued" | "running")),
            "{v}"
        );
    }
    (status, v, retry)
}

/// Submits and asserts the 202; the job's id.
async fn submit_ok(s: &Server, cid: &str, q: &str) -> String {
    let (status, v, _) = submit(s, cid, q, None).await;
    assert_eq!(status, 202, "{v}");
    v["job"].as_str().unwrap().to_string()
}

/// `DELETE /v1/jobs/{id}`: cancels it.
async fn cancel(s: &Server, id: &str) -> reqwest::Response {
    client()
        .delete(format!("{}/v1/jobs/{id}", s.url))
        .send()
        .await
        .unwrap()
}

/// `POST /v1/jobs/{id}/retry`.
async fn retry(s: &Server, id: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/jobs/{id}/retry", s.url))
        .send()
        .await
        .unwrap()
}

async fn job(s: &Server, id: &str) -> Value {
    get_json(&format!("{}/v1/jobs/{id}", s.url)).await
}

/// Waits until job `id` is in a state `want` accepts; returns it.
async fn wait_job(s: &Server, id: &str, within: Duration, want: impl Fn(&str) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let j = job(s, id).await;
        if want(j["status"].as_str().unwrap_or("")) {
            return j;
        }
        assert!(t.elapsed() < within, "job {id}: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until job `id` has finished.
async fn finished(s: &Server, id: &str) -> Value {
    wait_job(s, id, Duration::from_secs(300), |st| {
        !matches!(st, "queued" | "running")
    })
    .await
}

/// The server the tests below share: `chain` deployed, one job at a time.
static SHARED: tokio::sync::OnceCell<tokio::sync::Mutex<Server>> =
    tokio::sync::OnceCell::const_new();

async fn shared() -> tokio::sync::MutexGuard<'static, Server> {
    SHARED
        .get_or_init(|| async {
            let s = start_shared(&["--job-concurrency", "1"]);
            deploy_chain(&s).await;
            tokio::sync::Mutex::new(s)
        })
        .await
        .lock()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_accepted_before_a_kill_9_all_finish_with_the_right_output() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let s = Server::start(&repo, &["--job-concurrency", "2"]);
    deploy_chain(&s).await;
    let inputs: Vec<Vec<u8>> = (0..12).map(|i| rand_bytes(100 + i, i as u64)).collect();
    let mut jobs = vec![];
    for (i, data) in inputs.iter().enumerate() {
        let cid = add_cid(&s, "", &[("in", data)]).await;
        // the first two (as many as run at once) are long, so the rest are still queued when
        // the node is killed however slowly they were submitted
        let n = if i < 2 { LONG * 3 } else { LONG / 4 + i * 1000 };
        jobs.push((submit_ok(&s, &cid, &format!("n={n}")).await, chain(data, n)));
    }
    // crash while jobs run and others wait
    let t = Instant::now();
    while metric(&s, "ipfaas_jobs{state=\"running\"}").await < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "no job started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Vec<Value> =
        futures::future::join_all(jobs.iter().map(|(id, _)| job(&s, id))).await;
    let unfinished = before
        .iter()
        .filter(|j| matches!(j["status"].as_str(), Some("queued" | "running")))
        .count();
    assert!(
        unfinished >= 8,
        "too few jobs left to test recovery: {before:?}"
    );
    s.kill9();

    // every job accepted finishes, each with its own right output; the ones that were
    // running ran again (pure Python)
    let s = Server::start(&repo, &["--job-concurrency", "2"]);
    let mut reran = 0;
    for (id, want) in &jobs {
        let j = finished(&s, id).await;
        assert_eq!(j["status"], "done", "{j}");
        let out = gateway_bytes(&s, j["result"]["output_cid"].as_str().unwrap()).await;
        assert_eq!(String::from_utf8(out).unwrap(), *want, "{j}");
        if j["attempts"].as_u64().unwrap() >= 2 {
            reran += 1;
        }
        assert!(j["queued_seconds"].as_f64().is_some() && j["run_seconds"].as_f64().is_some());
    }
    assert!(reran >= 1, "no running job was run again");
    assert_eq!(metric(&s, "ipfaas_jobs{state=\"done\"}").await, 12.0);
    assert!(metric(&s, "ipfaas_job_run_seconds_count").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_queued_job_never_runs_and_a_running_one_stops() {
    let s = shared().await;
    let cid = add_cid(&s, "", &[("c", b"cancel me")]).await;
    let running = submit_ok(&s, &cid, &format!("n={}", LONG * 20)).await;
    let queued = submit_ok(&s, &cid, &format!("n={LONG}&queued=1")).await;
    wait_job(&s, &running, Duration::from_secs(60), |st| st == "running").await;
    assert_eq!(job(&s, &queued).await["status"], "queued");

    // queued: cancelled, and never started
    let r = cancel(&s, &queued).await;
    assert_eq!(r.status(), 200);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["status"], "cancelled", "{j}");
    assert_eq!(j["attempts"], 0, "{j}");

    // running: stopped well before its work is done, and its instance let go
    let t = Instant::now();
    let r = cancel(&s, &running).await;
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["status"], "cancelled", "{j}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // the guest stops at its next epoch tick, on its own thread
    while metric(&s, "ipfaas_active_instances").await > 0.0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the instance still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(j.get("result").is_none(), "{j}");

    // a finished job cannot be cancelled; an unknown one is a 404
    let r = cancel(&s, &running).await;
    assert_eq!(r.status(), 409);
    let r = client()
        .delete(format!(
            "{}/v1/jobs/00000000000000000000000000000000",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("no job"), "{v}");

    // the queued one never ran, even later; a retry runs it
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(job(&s, &queued).await["status"], "cancelled");
    let r = retry(&s, &queued).await;
    assert_eq!(r.status(), 202);
    let j = finished(&s, &queued).await;
    assert_eq!(j["status"], "done", "{j}");
    assert_eq!(j["attempts"], 1, "{j}");
    let r = retry(&s, &queued).await;
    assert_eq!(r.status(), 409, "a done job is not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_queue_bound_submissions_get_429_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("repo"),
        &["--job-concurrency", "1", "--job-queue", "2"],
    );
    deploy_chain(&s).await;
    let cid = add_cid(&s, "", &[("q", b"queue")]).await;
    let a = submit_ok(&s, &cid, &format!("n={}", LONG * 20)).await;
    let b = submit_ok(&s, &cid, &format!("n={}&b=1", LONG * 20)).await;
    let (status, v, retry_after) = submit(&s, &cid, "n=1", None).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(retry_after, "1");
    assert!(v["error"].as_str().unwrap().contains("retry later"), "{v}");
    assert_eq!(metric(&s, "ipfaas_jobs_refused_total").await, 1.0);
    // synchronous invocations are not held up by the jobs
    let r = invoke(&s, "chain", &format!("cid={cid}&n=10")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), chain(b"queue", 10));
    // room again once one is cancelled
    for id in [&a, &b] {
        let r = cancel(&s, id).await;
        assert_eq!(r.status(), 200);
    }
    // a retry is a submission too: refused while the queue is full
    let x = submit_ok(&s, &cid, &format!("n={}&x=1", LONG * 20)).await;
    let y = submit_ok(&s, &cid, &format!("n={}&y=1", LONG * 20)).await;
    let r = retry(&s, &a).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), "1");
    assert_eq!(job(&s, &a).await["status"], "cancelled");
    for id in [&x, &y] {
        assert_eq!(cancel(&s, id).await.status(), 200);
    }
    assert_eq!(retry(&s, &a).await.status(), 202);
    // an unknown function or a bad callback is refused before it is queued
    let r = client()
        .post(format!(
            "{}/v1/functions/nosuch/invoke?cid={cid}&async=true",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, v, _) = submit(&s, &cid, "n=1", Some("file:///etc/passwd")).await;
    assert_eq!(status, 400, "{v}");
}

/// A one-shot HTTP receiver on loopback: answers each request `status` and sends what it got
/// (body) on the channel.
async fn receiver(status: u16) -> (String, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = c.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = c.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let _ = tx.send(buf[head_end..].to_vec());
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = c.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_is_posted_to_its_callback_url() {
    let s = shared().await;
    let cid = add_cid(&s, "", &[("cb", b"call me back")]).await;
    let (url, mut got) = receiver(200).await;
    let (status, v, _) = submit(&s, &cid, "n=100", Some(&url)).await;
    assert_eq!(status, 202, "{v}");
    let id = v["job"].as_str().unwrap().to_string();
    let body = tokio::time::timeout(Duration::from_secs(60), got.recv())
        .await
        .expect("no callback")
        .unwrap();
    let posted: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(posted["job"], id.as_str());
    assert_eq!(posted["status"], "done");
    let out = gateway_bytes(&s, posted["result"]["output_cid"].as_str().unwrap()).await;
    assert_eq!(String::from_utf8(out).unwrap(), chain(b"call me back", 100));
    let j = wait_job(&s, &id, Duration::from_secs(10), |_| true).await;
    let t = Instant::now();
    let mut j = j;
    while j.get("callback").is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        j = job(&s, &id).await;
    }
    assert_eq!(j["callback"]["delivered"], true, "{j}");

    // a receiver that fails is tried three times, and the job says so
    let (url, mut got) = receiver(500).await;
    let (_, v, _) = submit(&s, &cid, "n=101", Some(&url)).await;
    let id = v["job"].as_str().unwrap().to_string();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(60), got.recv())
            .await
            .expect("a retry")
            .unwrap();
    }
    let t = Instant::now();
    loop {
        let j = job(&s, &id).await;
        if j.get("callback").is_some() {
            assert_eq!(j["callback"]["delivered"], false, "{j}");
            assert_eq!(j["callback"]["attempts"], 3, "{j}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&s, "ipfaas_job_callbacks_total{result=\"failed\"}").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_list_by_function_and_status_in_pages_and_logs_follow_a_running_job() {
    let s = shared().await;
    let cid = add_cid(&s, "", &[("l", b"list")]).await;
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(submit_ok(&s, &cid, &format!("n=10&i={i}")).await);
    }
    for id in &ids {
        assert_eq!(finished(&s, id).await["status"], "done");
    }
    // newest first, two at a time, through `next`
    let mut seen = vec![];
    let mut before: Option<i64> = None;
    loop {
        let q = match before {
            Some(b) => format!("function=chain&status=done&limit=2&before={b}"),
            None => "function=chain&status=done&limit=2".to_string(),
        };
        let v = get_json(&format!("{}/v1/jobs?{q}", s.url)).await;
        for j in v["jobs"].as_array().unwrap() {
            assert_eq!(j["status"], "done");
            seen.push(j["job"].as_str().unwrap().to_string());
        }
        match v["next"].as_i64() {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen[..5], newest_first[..], "{seen:?}");
    // filters that match nothing, and bad ones
    let v = get_json(&format!("{}/v1/jobs?function=nosuch", s.url)).await;
    assert_eq!(v["jobs"].as_array().unwrap().len(), 0);
    let v = get_json(&format!("{}/v1/jobs?since=2999-01-01T00:00:00Z", s.url)).await;
    assert_eq!(v["jobs"].as_array().unwrap().len(), 0);
    for bad in ["status=sleeping", "limit=0", "since=yesterday"] {
        let r = client()
            .get(format!("{}/v1/jobs?{bad}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }

    // logs stream while the job runs: the first lines arrive before it is done
    let id = submit_ok(&s, &cid, &format!("n={}&talk=1", LONG * 2)).await;
    let mut r = client()
        .get(format!("{}/v1/jobs/{id}/logs?follow=true", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().expect("a first chunk");
    assert!(
        String::from_utf8_lossy(&first).starts_with("step 0\n"),
        "{first:?}"
    );
    assert_eq!(
        job(&s, &id).await["status"],
        "running",
        "the log came while it ran"
    );
    let mut all = first.to_vec();
    while let Some(c) = r.chunk().await.unwrap() {
        all.extend_from_slice(&c);
    }
    let n = LONG * 2;
    let want: String = (0..n)
        .step_by(n / 4)
        .map(|i| format!("step {i}\n"))
        .collect();
    assert_eq!(String::from_utf8(all).unwrap(), want);
    assert_eq!(job(&s, &id).await["status"], "done");
    // and once it is done, the same logs in one piece
    let r = client()
        .get(format!("{}/v1/jobs/{id}/logs", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), want);

    // the CLI: submit, list, follow
    let out = cli_ok(&s.repo, &["invoke", "chain", &cid, "-p", "n=5", "--async"]);
    let cli_id = out.trim().to_string();
    assert_eq!(cli_id.len(), 32, "{out}");
    let out = cli_ok(&s.repo, &["job", &cli_id, "--follow"]);
    assert_eq!(out, chain(b"list", 5));
    let out = cli_ok(
        &s.repo,
        &["jobs", "--status", "done", "--function", "chain"],
    );
    assert!(out.lines().next().unwrap().starts_with(&cli_id), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_jobs_are_deleted_past_their_age_and_count() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("repo"),
        &["--job-retention", "2s", "--job-keep", "3"],
    );
    deploy_chain(&s).await;
    let cid = add_cid(&s, "", &[("r", b"retain")]).await;
    let mut ids = vec![];
    for i in 0..4 {
        let id = submit_ok(&s, &cid, &format!("n=1&i={i}")).await;
        finished(&s, &id).await;
        ids.push(id);
    }
    // by count: three kept, the oldest gone
    let status = |id: String| {
        let url = format!("{}/v1/jobs/{id}", s.url);
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(ids[0].clone()).await, 404);
    for id in &ids[1..] {
        assert_eq!(status(id.clone()).await, 200);
    }
    // by age: once they are older than 2 s, the next job's end deletes them
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let last = submit_ok(&s, &cid, "n=1&i=last").await;
    finished(&s, &last).await;
    for id in &ids[1..] {
        assert_eq!(status(id.clone()).await, 404, "{id}");
    }
    assert_eq!(status(last).await, 200);
}
