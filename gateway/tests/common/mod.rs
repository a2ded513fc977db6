//! Test harness: runs the real `ipfaas` binary on a temporary repo.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ipfaas");

pub struct Server {
    pub child: Child,
    pub url: String,
    pub repo: PathBuf,
}

impl Server {
    /// Starts `ipfaas serve` on loopback ports chosen by the OS; returns once `/healthz` answers.
    pub fn start(repo: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--no-examples"];
        args.extend_from_slice(extra);
        Self::spawn(repo, &args)
    }

    /// Like `start`, but `serve` deploys the bundled example functions.
    pub fn start_with_examples(repo: &Path) -> Server {
        Self::spawn(repo, &[])
    }

    fn spawn(repo: &Path, extra: &[&str]) -> Server {
        let _ = std::fs::remove_file(repo.join("api"));
        let child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--swarm-listen",
                "/ip4/127.0.0.1/tcp/0",
            ])
            .args(extra)
            .arg("--repo")
            .arg(repo)
            // IPFAAS_TEST_LOG (say `warn,ipfaas_runtime=debug`) turns up the servers' logs
            .env(
                "IPFAAS_LOG",
                std::env::var("IPFAAS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ipfaas serve");
        let t = Instant::now();
        let url = loop {
            if let Ok(s) = std::fs::read_to_string(repo.join("api"))
                && s.ends_with('\n')
            {
                break s.trim().to_string();
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child,
            url,
            repo: repo.to_path_buf(),
        }
    }

    pub fn api(&self, cmd: &str) -> String {
        format!("{}/api/v0/{cmd}", self.url)
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(mut self) {
        unsafe_kill(self.child.id(), "TERM");
        let _ = self.child.wait();
    }

    /// SIGKILL: a crash.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }

    /// SIGKILL without giving the handle up (say, from inside a loop that borrows it).
    #[allow(dead_code)]
    pub fn crash(&self) {
        unsafe_kill(self.child.id(), "KILL");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Runs the CLI with `--repo` after the subcommand (the option is global).
pub fn cli(repo: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--repo")
        .arg(repo)
        .env("IPFAAS_LOG", "warn")
        .output()
        .expect("run ipfaas")
}

pub fn cli_ok(repo: &Path, args: &[&str]) -> String {
    let out = cli(repo, args);
    assert!(
        out.status.success(),
        "ipfaas {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn rand_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A multipart part: (file name, content type, bytes).
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "ipfaas-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, ct, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(format!("Content-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn ndjson(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn client() -> reqwest::Client {
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

/// Adds files (path, bytes) in one request; returns the last (root) CID.
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
    let r = client()
        .post(format!("{url}/v1/functions"))
        .header("content-type", "application/x-tar")
        .body(tar_of(&files))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Deploys a Python bundle of (path, bytes) as a tar; asserts 201 and returns the answer.
pub async fn deploy_files(s: &Server, files: &[(&str, &[u8])]) -> serde_json::Value {
    let r = client()
        .post(format!("{}/v1/functions", s.url))
        .header("content-type", "application/x-tar")
        .body(tar_of(files))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

/// A tar archive of (path, bytes).
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, p, *d).unwrap();
    }
    t.into_inner().unwrap()
}

/// A metric on the server's `/metrics` page: the sample named exactly (`name{labels}`), or
/// the sum over every label set of a bare name; 0 when it is not there (yet).
pub async fn metric(s: &Server, sample: &str) -> f64 {
    let text = get_text(&format!("{}/metrics", s.url)).await;
    let labelled = sample.contains('{');
    text.lines()
        .filter(|l| {
            l.strip_prefix(sample)
                .is_some_and(|r| r.starts_with(' ') || (!labelled && r.starts_with('{')))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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

/// Waits until `s` is connected to `peer`.
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

/// Starts a node with a 20 s fetch timeout (unless `extra` sets one), joined to `bootstrap`.
pub fn start_node(repo: &Path, bootstrap: Option<&str>, extra: &[&str]) -> Server {
    let mut args = vec![];
    if !extra.contains(&"--fetch-timeout") {
        args.extend(["--fetch-timeout", "20s"]);
    }
    if let Some(b) = bootstrap {
        args.extend(["--bootstrap", b]);
    }
    args.extend_from_slice(extra);
    Server::start(repo, &args)
}
