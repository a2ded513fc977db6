//! Talking to a running server: Kubo RPC calls, JSON, metrics, peers. They panic on transport
//! errors (a test's failure) and return statuses for the caller to assert.

use crate::Server;
use crate::data::{multipart, ndjson, tar_of};
use std::time::{Duration, Instant};

/// A fresh HTTP client.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `POST /api/v0/add?{query}` with a multipart body; returns the status and the body text.
pub async fn add(
    s: &Server,
    query: &str,
    parts: &[(&str, &str, &[u8])],
) -> (reqwest::StatusCode, String) {
    let (ct, body) = multipart(parts);
    add_body(s, query, &ct, body).await
}

/// `POST /api/v0/add?{query}` of a ready multipart body with content type `ct`.
pub async fn add_body(
    s: &Server,
    query: &str,
    ct: &str,
    body: Vec<u8>,
) -> (reqwest::StatusCode, String) {
    let r = client()
        .post(format!("{}?{query}", s.api("add")))
        .header("content-type", ct)
        .body(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Adds files (path, bytes) in one request and asserts a 200; returns the last (root) CID.
pub async fn add_cid(s: &Server, query: &str, files: &[(&str, &[u8])]) -> String {
    let escaped: Vec<String> = files.iter().map(|(p, _)| p.replace('/', "%2F")).collect();
    let parts: Vec<(&str, &str, &[u8])> = files
        .iter()
        .zip(&escaped)
        .map(|((_, d), p)| (p.as_str(), "application/octet-stream", *d))
        .collect();
    let (status, text) = add(s, query, &parts).await;
    assert_eq!(status, 200, "{text}");
    ndjson(&text).last().unwrap()["Hash"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `POST /api/v0/{cmd_and_query}`.
pub async fn post(s: &Server, cmd_and_query: &str) -> reqwest::Response {
    client().post(s.api(cmd_and_query)).send().await.unwrap()
}

/// `POST /api/v0/{cmd_and_query}`, answer parsed as JSON.
pub async fn post_json(s: &Server, cmd_and_query: &str) -> serde_json::Value {
    post(s, cmd_and_query).await.json().await.unwrap()
}

/// A response header as a string ("" when absent).
pub fn header(r: &reqwest::Response, k: &str) -> String {
    r.headers()
        .get(k)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `GET url`, body as text.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `GET url`, body as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Deploys a Python bundle of (path, bytes) as a tar to the server at `url`, whatever comes of
/// it: (status, answer). Owns what it needs, so it can be spawned.
pub async fn try_deploy(
    url: String,
    files: Vec<(&'static str, &'static [u8])>,
) -> (u16, serde_json::Value) {
    deploy_tar(&url, "", &files).await
}

/// `POST {url}/v1/functions{query}` with a tar of (path, bytes) (10 min timeout), whatever
/// comes of it: (status, answer).
pub async fn deploy_tar(
    url: &str,
    query: &str,
    files: &[(&str, &[u8])],
) -> (u16, serde_json::Value) {
    let r = client()
        .post(format!("{url}/v1/functions{query}"))
        .header("content-type", "application/x-tar")
        .body(tar_of(files))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Deploys a Python bundle of (path, bytes) as a tar; asserts 201 and returns the answer.
pub async fn deploy_files(s: &Server, files: &[(&str, &[u8])]) -> serde_json::Value {
    let (status, v) = deploy_tar(&s.url, "", files).await;
    assert_eq!(status, 201, "{v}");
    v
}

/// `POST /v1/functions/{f}/invoke?{query}` (5 min timeout), whatever it answers.
pub async fn invoke(s: &Server, f: &str, query: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/functions/{f}/invoke?{query}", s.url))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap()
}

/// [`invoke`], asserting the status and a non-empty JSON `error`; the error answer.
pub async fn error_of(s: &Server, f: &str, query: &str, status: u16) -> serde_json::Value {
    let r = invoke(s, f, query).await;
    let got = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(got, status, "{query}: {v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    v
}

/// `GET /ipfs/{path}`, asserting a 200; the body.
pub async fn gateway_bytes(s: &Server, path: &str) -> Vec<u8> {
    let r = client()
        .get(format!("{}/ipfs/{path}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.bytes().await.unwrap().to_vec()
}

/// A sample in a Prometheus text exposition: the sample named exactly (`name{labels}`), or the
/// sum over every label set of a bare name; 0 when it is not there.
pub fn metric_in(text: &str, sample: &str) -> f64 {
    let labelled = sample.contains('{');
    text.lines()
        .filter(|l| {
            l.strip_prefix(sample)
                .is_some_and(|r| r.starts_with(' ') || (!labelled && r.starts_with('{')))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// [`metric_in`] on the server's `/metrics` page now.
pub async fn metric(s: &Server, sample: &str) -> f64 {
    metric_in(&get_text(&format!("{}/metrics", s.url)).await, sample)
}

/// The node's loopback swarm address with `/p2p/<id>`.
pub async fn swarm_addr(s: &Server) -> String {
    let t = Instant::now();
    loop {
        let id = post_json(s, "id").await;
        if let Some(a) = id["Addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
        {
            return a.to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no listen address: {id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node's peer ID.
pub async fn peer_id(s: &Server) -> String {
    post_json(s, "id").await["ID"].as_str().unwrap().to_string()
}

/// Waits (up to 20 s) until `s` is connected to `peer`.
pub async fn wait_connected(s: &Server, peer: &str) {
    let t = Instant::now();
    loop {
        let v = get_json(&format!("{}/v1/peers", s.url)).await;
        if v["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["peer"] == peer)
        {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{} never connected to {peer}: {v}",
            s.url
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::metric_in;

    #[test]
    fn metric_in_matches_exact_samples_and_sums_bare_names() {
        let text = "# HELP a x\na_total{k=\"1\"} 2\na_total{k=\"2\"} 3\na_total_x 100\nb 1.5\n";
        assert_eq!(metric_in(text, "a_total"), 5.0);
        assert_eq!(metric_in(text, "a_total{k=\"2\"}"), 3.0);
        assert_eq!(metric_in(text, "b"), 1.5);
        assert_eq!(metric_in(text, "c"), 0.0);
    }
}
