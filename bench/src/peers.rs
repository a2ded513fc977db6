//! `ipfaas-bench peers [--seconds S] [--rounds R] [--ipfaas PATH]`: ipfaas against the servers a
//! user would pick instead, side by side in one interleaved run, at 1, 4 and 16 concurrent
//! keep-alive clients: medians, p99 and throughput, each as a ratio to the warm stdlib server.
//!
//! - **ipfaas `?cid=`**: a fresh, sandboxed instance per request of `return "ok"` on a stored
//!   input; **ipfaas raw body**: the same with the input as the request body (stored, pinned by
//!   the group commit);
//! - **http.server**: a warm, unisolated stdlib `ThreadingHTTPServer` answering `ok`
//!   (HTTP/1.1 keep-alive, `TCP_NODELAY`), run by the resolved interpreter;
//! - **uvicorn**: a minimal ASGI app answering `ok` (uvicorn and h11 pinned, from PyPI, into a
//!   virtualenv of the same interpreter).
//!
//! Each round runs every target for S seconds at each concurrency, in a rotating order, so
//! drifts of the machine fall on all of them alike; latencies and counts add up over rounds.

use super::invoke::{deploy, ipfaas_binary, ms, pct, start, stored_input};
use crate::exe;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRIVIAL: &str = "def main(input, params):\n    return \"ok\"\n";
const UVICORN: [&str; 2] = ["uvicorn==0.32.1", "h11==0.14.0"];

/// The warm stdlib server: `ok` to any POST, keep-alive, Nagle off.
const STDLIB: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// The minimal ASGI app, and uvicorn serving it on a free port it prints first.
const ASGI: &str = r#"
import socket, sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
# proto given, as uvicorn's own bind does: asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets
# (with proto 0, every second response on a connection waits 40 ms for a delayed ACK)
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
cfg = uvicorn.Config(app, log_level="error", access_log=False, http="h11", lifespan="off")
uvicorn.Server(cfg).run(sockets=[sock])
"#;

/// A server process the bench started; killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `python -c script` and reads the port it prints first.
fn spawn_python(python: &Path, script: &str) -> Result<(Proc, u16)> {
    use std::io::BufRead;
    let mut c = Command::new(python)
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let out = c.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line)?;
    let port = line
        .trim()
        .parse()
        .with_context(|| format!("{} printed no port: {line:?}", python.display()))?;
    Ok((Proc(c), port))
}

/// One target: a name, and how to make its request.
struct Target {
    name: &'static str,
    url: String,
    body: Option<&'static [u8]>,
}

/// What one target met at one concurrency, over all rounds.
#[derive(Default)]
struct Tally {
    times: Vec<Duration>,
    requests: u64,
    seconds: f64,
}

/// `conc` closed-loop clients on `t` for `secs`; every answer must be `ok`.
async fn drive(http: &reqwest::Client, t: &Target, conc: usize, secs: f64) -> Result<Tally> {
    let times = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (http, url, body, times) = (http.clone(), t.url.clone(), t.body, times.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < until {
                let t0 = Instant::now();
                let mut r = http.post(&url);
                if let Some(b) = body {
                    r = r.body(b);
                }
                let r = r.send().await?;
                let status = r.status();
                let b = r.bytes().await?;
                if !status.is_success() || b.as_ref() != b"ok" {
                    bail!("{url}: {status} {b:?}");
                }
                mine.push(t0.elapsed());
            }
            times.lock().unwrap().extend(mine);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let times = std::mem::take(&mut *times.lock().unwrap());
    Ok(Tally {
        requests: times.len() as u64,
        times,
        seconds,
    })
}

pub async fn run(args: &[String]) -> Result<()> {
    let secs: f64 = super::arg(args, "--seconds").unwrap_or(3.0);
    let rounds: usize = super::arg(args, "--rounds").unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let bin = ipfaas_binary(args)?;
    let python = exe::python3()?;
    println!("ipfaas: {}", bin.display());
    println!("python: {python}");
    let s = start(&bin, &dir.path().join("repo"))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()?;
    deploy(&http, &s, "trivial", TRIVIAL, "").await?;
    let input = stored_input(&http, &s, "trivial").await?;
    let (_stdlib, stdlib_port) = spawn_python(&python.path, STDLIB)?;
    // a venv of `python3` (the same interpreter), kept for later runs
    let venv = std::env::temp_dir().join("ipfaas-bench-peers-uvicorn");
    let uv = ipfaas_testkit::python::venv(&venv, &UVICORN);
    println!("uvicorn: {} ({})", uv.display(), UVICORN.join(", "));
    let (_uvicorn, uv_port) = spawn_python(&uv, ASGI)?;
    let targets = [
        Target {
            name: "http.server (warm)",
            url: format!("http://127.0.0.1:{stdlib_port}/"),
            body: None,
        },
        Target {
            name: "uvicorn (warm)",
            url: format!("http://127.0.0.1:{uv_port}/"),
            body: None,
        },
        Target {
            name: "ipfaas ?cid=",
            url: format!(
                "{}/v1/functions/trivial/invoke?cid={input}&cache=false",
                s.url
            ),
            body: None,
        },
        Target {
            name: "ipfaas raw body",
            url: format!("{}/v1/functions/trivial/invoke?cache=false", s.url),
            body: Some(b"x"),
        },
    ];
    let concs = [1usize, 4, 16];
    // warm every target up (connections, instance pools, the interpreter's caches)
    for t in &targets {
        drive(&http, t, 4, 1.0).await?;
    }
    let mut tally: Vec<Vec<Tally>> = targets
        .iter()
        .map(|_| concs.iter().map(|_| Tally::default()).collect())
        .collect();
    for round in 0..rounds {
        for (ci, &c) in concs.iter().enumerate() {
            for k in 0..targets.len() {
                let ti = (k + round) % targets.len();
                let got = drive(&http, &targets[ti], c, secs).await?;
                let t = &mut tally[ti][ci];
                t.times.extend(got.times);
                t.requests += got.requests;
                t.seconds += got.seconds;
            }
        }
    }
    println!(
        "\n{rounds} interleaved rounds of {secs} s per target and concurrency; keep-alive reqwest clients, one process\n"
    );
    println!(
        "| clients | target | median ms | p99 ms | req/s | median / http.server | req/s / http.server |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut by_conc_cid = Vec::new();
    for (ci, &c) in concs.iter().enumerate() {
        let base_med = pct(&mut tally[0][ci].times, 0.5);
        let base_rps = tally[0][ci].requests as f64 / tally[0][ci].seconds;
        for (ti, t) in targets.iter().enumerate() {
            let x = &mut tally[ti][ci];
            let (med, p99) = (pct(&mut x.times, 0.5), pct(&mut x.times, 0.99));
            let rps = x.requests as f64 / x.seconds;
            println!(
                "| {c} | {} | {:.3} | {:.3} | {rps:.0} | {:.2}x | {:.2}x |",
                t.name,
                ms(med),
                ms(p99),
                med.as_secs_f64() / base_med.as_secs_f64(),
                rps / base_rps
            );
            if ti == 2 {
                by_conc_cid.push(med);
            }
        }
    }
    println!();
    for (ci, &c) in concs.iter().enumerate() {
        let raw = pct(&mut tally[3][ci].times, 0.5);
        println!(
            "{c} clients: raw-body invoke median / ?cid= invoke median = {:.2} [target <= 1.3]",
            raw.as_secs_f64() / by_conc_cid[ci].as_secs_f64()
        );
    }
    let base = pct(&mut tally[0][0].times, 0.5);
    println!(
        "1 client: ?cid= invoke median / warm http.server median = {:.2} [target <= 1.5]",
        by_conc_cid[0].as_secs_f64() / base.as_secs_f64()
    );
    println!(
        "not measured here: `wasmtime serve` (needs wasmtime-cli at the project's wasmtime version, built apart)"
    );
    Ok(())
}
