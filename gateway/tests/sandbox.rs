//! Hostile functions and hostile callers against the real binary: a function's limits hold
//! however it waits, however much it asks of the host, whatever it leaves in `/outputs` and
//! whatever its module-level code does at deploy; a caller who hangs up frees what it held;
//! the HTTP server times out silent clients, caps its connections and backs off when it runs
//! out of file descriptors; secrets stay out of definitions.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const WAITER: &str = r#"
import os, select, time
from wit_world.imports import input as raw_input

def main(input, params):
    mode = params["mode"]
    if mode == "sleep":
        t0, w0 = time.monotonic(), time.time()
        time.sleep(float(params["s"]))
        return {"mono": time.monotonic() - t0, "wall": time.time() - w0}
    if mode == "select":
        t0 = time.monotonic()
        select.select([], [], [], float(params["s"]))
        return {"mono": time.monotonic() - t0}
    if mode == "spin":
        while True:
            pass
    if mode == "rawread":
        # asks the host for 4 GiB in one call
        return len(raw_input.read(0, 2**32 - 1))
    if mode == "sparse":
        # past the size quota while running: each fails as a full disk would
        got = {}
        with open("/outputs/big", "wb", buffering=0) as f:
            for name, op in [("truncate", lambda: f.truncate(8 << 40)),
                             ("seek_write", lambda: (f.seek(5 << 30), f.write(b"x")))]:
                try:
                    op()
                    got[name] = "ok"
                except OSError as e:
                    got[name] = "refused"
        return got
    if mode == "sparse2":
        # each file is inside the quota, both together are not: refused after the run
        for n in ["a", "b"]:
            with open("/outputs/" + n, "wb", buffering=0) as f:
                f.seek(3 << 30)
                f.write(b"x")
        return "two 3 GiB sparse files"
    if mode == "many":
        for i in range(int(params["n"])):
            open("/outputs/f%d" % i, "wb").close()
        return "many files"
    if mode == "ok":
        return {"ok": True}
"#;

const WAITER_TOML: &str =
    "name = \"waiter\"\ntimeout = \"5s\"\nfuel = 1000000000000\nmemory = \"256MiB\"\n";

async fn call_waiter(
    s: &Server,
    query: &str,
    timeout: Duration,
) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/v1/functions/waiter/invoke?{query}", s.url))
        .timeout(timeout)
        .send()
        .await
}

async fn ok_json(s: &Server, query: &str) -> Value {
    let r = call_waiter(s, query, Duration::from_secs(60))
        .await
        .unwrap();
    let st = r.status();
    let t = r.text().await.unwrap();
    assert_eq!(st, 200, "{query}: {t}");
    serde_json::from_str(&t).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_reads_outputs_and_hangups_are_bounded() {
    let repo = tempfile::tempdir().unwrap();
    let s = Server::start(repo.path(), &[]);
    deploy_files(
        &s,
        &[
            ("function.py", WAITER.as_bytes()),
            ("ipfaas.toml", WAITER_TOML.as_bytes()),
        ],
    )
    .await;
    // the same code with time enough to make 65,537 files
    deploy_files(
        &s,
        &[
            ("function.py", WAITER.as_bytes()),
            (
                "ipfaas.toml",
                b"name = \"filer\"\ntimeout = \"120s\"\nfuel = 1000000000000\n",
            ),
        ],
    )
    .await;
    let input = add_cid(&s, "", &[("in.bin", &rand_bytes(20 << 20, 9))]).await;

    // Sleeping is virtual: an hour passes on the guest's clocks at once, far inside the
    // function's 5 s limit, and the same on every run.
    let t = Instant::now();
    let v = ok_json(&s, &format!("cid={input}&mode=sleep&s=3600&cache=false")).await;
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let mono = v["mono"].as_f64().unwrap();
    assert!((3600.0..3600.1).contains(&mono), "{v}");
    assert!(
        (3600.0..3600.1).contains(&v["wall"].as_f64().unwrap()),
        "{v}"
    );
    assert_eq!(
        ok_json(&s, &format!("cid={input}&mode=sleep&s=3600&cache=false")).await,
        v,
        "virtual time is deterministic"
    );
    let v = ok_json(&s, &format!("cid={input}&mode=select&s=100&cache=false")).await;
    assert!(v["mono"].as_f64().unwrap() >= 100.0, "{v}");

    // Four hour-long sleeps at once (every instance slot of the node) hold nothing.
    let t = Instant::now();
    let calls = (0..4).map(|i| {
        let q = format!("cid={input}&mode=sleep&s={}&cache=false", 3600 + i);
        let s = &s;
        async move {
            call_waiter(s, &q, Duration::from_secs(60))
                .await
                .unwrap()
                .status()
        }
    });
    for st in futures::future::join_all(calls).await {
        assert_eq!(st, 200);
    }
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // One input read asks for 4 GiB: the host answers at most 16 MiB of it (the guest's own
    // reader loops over such pieces), never allocating what was asked.
    let v = ok_json(&s, &format!("cid={input}&mode=rawread")).await;
    assert_eq!(v, json!(16 << 20));

    // Four spinning functions whose callers hang up after a second: each is stopped within
    // an epoch tick of the hang-up, so its slot is free long before its 5 s limit.
    let t = Instant::now();
    let spins = (0..4).map(|i| {
        let q = format!("cid={input}&mode=spin&n={i}&cache=false");
        let s = &s;
        async move {
            call_waiter(s, &q, Duration::from_millis(700))
                .await
                .is_err()
        }
    });
    assert!(
        futures::future::join_all(spins)
            .await
            .into_iter()
            .all(|hung_up| hung_up)
    );
    let _ = ok_json(&s, &format!("cid={input}&mode=ok&cache=false")).await;
    assert!(
        t.elapsed() < Duration::from_millis(3500),
        "slots were freed only after {:?}",
        t.elapsed()
    );

    // Without a hang-up, the same spin answers 504 at its limit.
    let r = call_waiter(
        &s,
        &format!("cid={input}&mode=spin&cache=false"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 504);

    // /outputs quotas: while running, no file may grow past 4 GiB (a truncate to 8 TiB, a
    // write at 5 GiB fail like a full disk); after the run, two 3 GiB sparse files are
    // refused by their apparent size, without being read (the answer comes at once); more
    // than 65,536 entries are refused too.
    let v = ok_json(&s, &format!("cid={input}&mode=sparse")).await;
    assert_eq!(v, json!({"truncate": "refused", "seek_write": "refused"}));
    let t = Instant::now();
    let r = call_waiter(
        &s,
        &format!("cid={input}&mode=sparse2"),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("/outputs"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let r = client()
        .post(format!(
            "{}/v1/functions/filer/invoke?cid={input}&mode=many&n=65537",
            s.url
        ))
        .timeout(Duration::from_secs(150))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "{}", r.text().await.unwrap());
    assert_eq!(
        metric(
            &s,
            "ipfaas_invocations_total{function=\"waiter\",outcome=\"outputs_refused\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &s,
            "ipfaas_invocations_total{function=\"filer\",outcome=\"outputs_refused\"}"
        )
        .await,
        1.0
    );
    // the node still answers, and nothing it refused is left in its scratch space
    let _ = ok_json(&s, &format!("cid={input}&mode=ok&cache=false")).await;
    let tmp = repo.path().join("functions/tmp");
    let left: u64 = walk_size(&tmp);
    assert!(left < 1 << 20, "{left} bytes left in {}", tmp.display());
    s.stop();
}

/// Apparent bytes of every file under `dir`.
fn walk_size(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            walk_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn import_time_limits() {
    let repo = tempfile::tempdir().unwrap();
    let s = Server::start(repo.path(), &[]);
    let deploy = |files: Vec<(&'static str, &'static [u8])>| try_deploy(s.url.clone(), files);
    // module-level code that never ends is stopped by the function's own fuel budget
    let t = Instant::now();
    let (st, v) = deploy(vec![
        (
            "function.py",
            b"while True:\n    pass\n\ndef main(input):\n    return 1\n",
        ),
        ("ipfaas.toml", b"name = \"forever\"\nfuel = 2000000000\n"),
    ])
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("fuel"), "{v}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    // and more memory than the function may have is a clear 400
    let (st, v) = deploy(vec![
        (
            "function.py",
            b"hog = bytearray(512 << 20)\n\ndef main(input):\n    return 1\n",
        ),
        ("ipfaas.toml", b"name = \"hog\"\nmemory = \"64MiB\"\n"),
    ])
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("MemoryError"), "{v}");
    // a sleep at import takes no real time, and the deploy goes on
    let t = Instant::now();
    let (st, v) = deploy(vec![
        (
            "function.py",
            b"import time\ntime.sleep(3600)\n\ndef main(input):\n    return 'woke'\n",
        ),
        ("ipfaas.toml", b"name = \"sleepy\"\n"),
    ])
    .await;
    assert_eq!(st, 201, "{v}");
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());
    // the node is fine: the next deploy (the build lock is free) and an invocation work
    let f = add_cid(&s, "", &[("x", b"x")]).await;
    let r = client()
        .post(format!("{}/v1/functions/sleepy/invoke?cid={f}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "woke");
    s.stop();
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // the fields after the command name, which is in parentheses and may hold spaces
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_capped_and_accept_errors_back_off() {
    let repo = tempfile::tempdir().unwrap();
    let s = Server::start(repo.path(), &["--max-connections", "4"]);
    let addr = s.url.trim_start_matches("http://").to_string();
    // four idle connections hold every slot ...
    let mut idle: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // ... so a fifth, complete request waits unanswered in the backlog
    let mut fifth = std::net::TcpStream::connect(&addr).unwrap();
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let early = fifth.read(&mut buf);
    assert!(early.is_err(), "served past the cap: {early:?}");
    // one closes: the waiting request is served
    drop(idle.pop());
    fifth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    fifth.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle);
    drop(s);

    // out of file descriptors: accept fails again and again while connections wait; the
    // server backs off instead of spinning on the error, and serves again once fds are free
    let repo = tempfile::tempdir().unwrap();
    let s = Server::start(repo.path(), &[]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let pid = s.child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // only the soft limit changes (lowering the hard one could not be undone without root)
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft: String = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_string();
    let limit = format!("--nofile={}:", open + 8);
    let prlimit = |l: &str| {
        let st = std::process::Command::new("prlimit")
            .args(["--pid", &pid.to_string(), l])
            .status()
            .expect("prlimit (util-linux)");
        assert!(st.success());
    };
    prlimit(&limit);
    let held: Vec<_> = (0..40)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - before;
    // spinning on accept takes a whole core: 300 ticks in 3 s
    assert!(used < 60, "{used} ticks of CPU in 3 s while accept failed");
    drop(held);
    prlimit(&format!("--nofile={soft}:"));
    let t = Instant::now();
    loop {
        let r = client()
            .get(format!("{}/healthz", s.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "not served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_clients_time_out_and_bodies_are_bounded() {
    let repo = tempfile::tempdir().unwrap();
    let s = Server::start(repo.path(), &["--max-body-size", "1MiB"]);
    let addr = s.url.trim_start_matches("http://").to_string();

    // a client that sends half a request head and stops is cut off after 30 s
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let waited = t.elapsed();
    assert!(
        (Duration::from_secs(25)..Duration::from_secs(40)).contains(&waited),
        "closed after {waited:?}"
    );

    // a JSON spec is small: a megabyte of JSON is refused
    let r = client()
        .post(format!("{}/v1/functions/nothing/invoke", s.url))
        .header("content-type", "application/json")
        .body(format!("{{\"cid\": \"{}\"}}", "x".repeat(2 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // A raw body is stored (and pinned) only when the request is sound and within the limit.
    let pins = |s: &Server| {
        let url = s.api("pin/ls");
        async move {
            let v: Value = client()
                .post(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["Keys"].as_object().map_or(0, |k| k.len())
        }
    };
    let target = add_cid(&s, "", &[("t", b"not a definition")]).await;
    let before = pins(&s).await;
    let post = |q: String, body: Vec<u8>| {
        let url = format!("{}/v1/functions/{q}", s.url);
        async move { client().post(url).body(body).send().await.unwrap().status() }
    };
    // the input twice (query and body), an unknown name, one byte over --max-body-size (the
    // body goes to the store as it arrives): nothing kept
    let st = post(format!("{target}/invoke?cid={target}"), vec![1; 1000]).await;
    assert_eq!(st, 400);
    assert_eq!(post("nothing/invoke".into(), vec![1; 1000]).await, 404);
    assert_eq!(
        post(format!("{target}/invoke"), vec![2; (1 << 20) + 1]).await,
        413
    );
    assert_eq!(pins(&s).await, before);
    // exactly at the limit: stored (the call then fails: the CID names no function)
    assert_ne!(
        post(format!("{target}/invoke"), vec![3; 1 << 20]).await,
        413
    );
    // pinned by the group commit it joined, at most COMMIT_INTERVAL after the answer
    let t = Instant::now();
    while pins(&s).await != before + 1 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the body was not pinned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // a client that hangs up halfway through its body leaves nothing pinned either
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/functions/{target}/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 900000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&rand_bytes(300_000, 5)).unwrap();
    drop(c);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pins(&s).await, before + 1);
    assert!(!get_text(&format!("{}/healthz", s.url)).await.is_empty());
    s.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_secrets() {
    // a non-loopback listener without a token does not start
    let repo = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--no-examples",
            "--offline",
            "--listen",
            "0.0.0.0:0",
            "--repo",
        ])
        .arg(repo.path())
        .env("IPFAAS_LOG", "warn")
        .env_remove("IPFAAS_API_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without a token"), "{err}");

    // with --api-token-file it makes a private token, the CLI finds it in the repo, and a
    // request without it is refused
    let token_file = repo.path().join("api-token");
    let s = Server::start(
        repo.path(),
        &["--api-token-file", token_file.to_str().unwrap()],
    );
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64);
    let r = client()
        .put(format!("{}/v1/secrets/API_KEY", s.url))
        .body("s3cret-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .put(format!("{}/v1/secrets/API_KEY", s.url))
        .bearer_auth(&token)
        .body("s3cret-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let out = cli(repo.path(), &["secret", "ls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "API_KEY\n");
    let v: Value = client()
        .get(format!("{}/v1/secrets", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"secrets": ["API_KEY"]}));
    for bad in ["1BAD", "IPFAAS_X", "A-B"] {
        let r = client()
            .put(format!("{}/v1/secrets/{bad}", s.url))
            .bearer_auth(&token)
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // the value is nowhere a reader can reach: not in the listing, not on disk for others
    let meta = std::fs::metadata(repo.path().join("secrets/API_KEY")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o077, 0);
    let r = client()
        .delete(format!("{}/v1/secrets/API_KEY", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client()
        .delete(format!("{}/v1/secrets/API_KEY", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    s.stop();
}
