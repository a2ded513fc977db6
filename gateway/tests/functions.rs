//! Python functions end to end: the real binary, real componentize-py builds, real wasmtime.

mod common;

use common::*;
use ipfaas_runtime::invoke::headers;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// One function that exercises the whole guest contract, chosen by the `mode` parameter.
const PROBE: &str = r#"
import hashlib, io, json, os, random, sys, tarfile, time, uuid
import tinypkg

_kept = []

def main(input, params):
    mode = params.get("mode", "echo")
    if mode == "state":
        # what an earlier instance left behind would show here; dirty a scattered heap
        before = len(_kept)
        _kept.extend(str(i) * (i % 50) for i in range(20000))
        return {"before": before, "n": params["n"]}
    if mode == "echo":
        return {"params": params, "size": input.seek(0, 2), "tiny": tinypkg.VALUE}
    if mode == "sha":
        input.seek(0)
        h = hashlib.sha256()
        while chunk := input.read(1 << 20):
            h.update(chunk)
        print("hashed", input.tell(), "bytes")
        return h.hexdigest()
    if mode == "hashes":
        h = hashlib.sha256(b"ab")
        c = h.copy()
        c.update(b"c")
        input.seek(0)
        return [hashlib.sha256(b"abc").hexdigest(), hashlib.new("sha256", b"abc").hexdigest(),
                c.hexdigest(), h.hexdigest(), hashlib.sha1(b"abc").hexdigest(),
                hashlib.file_digest(input, "sha256").hexdigest(), "bücher.example".encode("idna").decode()]
    if mode == "mixed":
        # small (buffered) and large reads, interleaved with seeks
        parts, tells = [], []
        def take(n):
            parts.append(input.read(n))
            tells.append(input.tell())
        take(10); take(1 << 20); take(100)
        input.seek(3 << 16); take(1 << 17); take(5)
        input.seek(0); take(1 << 16); take(3)
        input.seek(-20, 2); take(1 << 20); take(1 << 20)
        input.seek(0); take(-1)
        return {"lens": [len(p) for p in parts], "tells": tells,
                "sha": hashlib.sha256(b"".join(parts)).hexdigest()}
    if mode == "seek":
        input.seek(-5, 2)
        tail = input.read()
        input.seek(3)
        return input.read(4) + b"|" + tail
    if mode == "tar":
        with tarfile.open(fileobj=input) as t:
            return {m.name: (t.extractfile(m).read().decode() if m.isfile() else "<dir>") for m in t.getmembers()}
    if mode == "det":
        import fractions  # not imported at deploy time: the stdlib must be mounted
        # written in an order no host directory keeps by itself: it lists back in name order
        for n in ["zeta", "alpha", "mu", "beta", "omega", "kappa", "delta"]:
            with open("/outputs/" + n, "w") as f:
                f.write(n)
        st = os.stat("/outputs/zeta")
        fs = {"ls": os.listdir("/outputs"), "ino": st.st_ino,
              "times": sorted({st.st_mtime, st.st_ctime, st.st_atime,
                               os.stat("/outputs").st_mtime, os.stat("/1").st_mtime,
                               os.stat("/1/function.py").st_mtime})}
        return {"fs": fs,
            "time": time.time(), "mono": time.monotonic(), "random": random.random(),
            "urandom": os.urandom(8).hex(), "hash": hash("abc"), "uuid": str(uuid.uuid4()),
            "frac": str(fractions.Fraction(3, 9)), "env": dict(os.environ), "nan": str(float("nan")),
        }
    if mode == "outputs":
        os.makedirs("/outputs/sub", exist_ok=True)
        with open("/outputs/a.txt", "w") as f:
            f.write("alpha\n")
        with open("/outputs/sub/b.txt", "w") as f:
            f.write("beta\n")
        return "wrote 2 files"
    if mode == "mkdir":
        # creates no file: the host must still see that /outputs is not empty
        os.mkdir("/outputs/empty")
        return "made a directory"
    if mode == "ls_outputs":
        return sorted(os.listdir("/outputs"))
    if mode == "escape":
        found = {}
        for p in ["/etc/passwd", "/", "/outputs/../..", "/python/../.."]:
            try:
                found[p] = sorted(os.listdir(p))[:3] if os.path.isdir(p) else open(p).read(10)
            except Exception as e:
                found[p] = type(e).__name__
        try:
            import socket
            socket.create_connection(("127.0.0.1", 1), timeout=1)
            found["net"] = "connected"
        except Exception as e:
            found["net"] = type(e).__name__
        return found
    if mode == "raise":
        print("about to fail")
        raise ValueError("bad input: " + params.get("why", "?"))
    if mode == "spin":
        while True:
            pass
    if mode == "mem":
        hog = []
        while True:
            hog.append(bytearray(16 << 20))
    if mode == "big":
        return b"x" * (2 << 20)
    return None
"#;

const PROBE_TOML: &str = "name = \"probe\"\nmemory = \"256MiB\"\ntimeout = \"8s\"\nfuel = 1000000000000\nmax_output = \"1MiB\"\n";

/// A one-argument `main` with a small fuel budget.
const BURN: &str = r#"
def main(input):
    n = 0
    while True:
        n += 1
"#;

fn tiny_wheel() -> Vec<u8> {
    let mut z = zip_writer();
    z.file("tinypkg/__init__.py", b"VALUE = 42\n");
    z.file(
        "tinypkg-1.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
    );
    z.file(
        "tinypkg-1.0.dist-info/WHEEL",
        b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    );
    z.finish()
}

/// A minimal stored (uncompressed) zip writer, enough for a wheel.
struct Zip(Vec<u8>, Vec<u8>, u16);
fn zip_writer() -> Zip {
    Zip(Vec::new(), Vec::new(), 0)
}
impl Zip {
    fn file(&mut self, name: &str, data: &[u8]) {
        let crc = crc32(data);
        let off = self.0.len() as u32;
        let mut h = Vec::new();
        h.extend_from_slice(&0x04034b50u32.to_le_bytes());
        h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        let c = &mut self.1;
        c.extend_from_slice(&0x02014b50u32.to_le_bytes());
        c.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 12]);
        c.extend_from_slice(&off.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.2 += 1;
    }
    fn finish(mut self) -> Vec<u8> {
        let cd_off = self.0.len() as u32;
        let cd_len = self.1.len() as u32;
        self.0.extend_from_slice(&self.1);
        self.0.extend_from_slice(&0x06054b50u32.to_le_bytes());
        self.0.extend_from_slice(&[0, 0, 0, 0]);
        self.0.extend_from_slice(&self.2.to_le_bytes());
        self.0.extend_from_slice(&self.2.to_le_bytes());
        self.0.extend_from_slice(&cd_len.to_le_bytes());
        self.0.extend_from_slice(&cd_off.to_le_bytes());
        self.0.extend_from_slice(&[0, 0]);
        self.0
    }
}
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn probe_bundle() -> Vec<u8> {
    let wheel = tiny_wheel();
    tar_of(&[
        ("function.py", PROBE.as_bytes()),
        ("ipfaas.toml", PROBE_TOML.as_bytes()),
        ("requirements.txt", b"tinypkg==1.0\n"),
        ("wheels/tinypkg-1.0-py3-none-any.whl", &wheel),
    ])
}

async fn deploy(s: &Server, query: &str, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(format!("{}/v1/functions{query}", s.url))
        .header("content-type", "application/x-tar")
        .body(body)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap()
}

async fn deploy_ok(s: &Server, query: &str, body: Vec<u8>) -> Value {
    let r = deploy(s, query, body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

async fn invoke(s: &Server, f: &str, query: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/functions/{f}/invoke?{query}", s.url))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap()
}

async fn invoke_json(s: &Server, f: &str, query: &str) -> (Value, String) {
    let r = invoke(s, f, query).await;
    let status = r.status();
    let cid = header(&r, headers::OUTPUT_CID);
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{query}: {text}");
    (serde_json::from_str(&text).unwrap(), cid)
}

async fn error_of(s: &Server, f: &str, query: &str, status: u16) -> Value {
    let r = invoke(s, f, query).await;
    let got = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{query}: {v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    v
}

async fn gateway_bytes(s: &Server, path: &str) -> Vec<u8> {
    let r = client()
        .get(format!("{}/ipfs/{path}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_invoke_limits_cache_and_determinism() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("a");
    let s = Server::start(&repo, &[]);

    let t = Instant::now();
    let d = deploy_ok(&s, "", probe_bundle()).await;
    eprintln!("probe deployed in {:?}: {d}", t.elapsed());
    assert_eq!(d["name"], "probe");
    assert_eq!(d["reused_build"], false);
    let fcid = d["function_cid"].as_str().unwrap().to_string();
    // the function, its component and its bundle are all in the store
    for k in ["function_cid", "component_cid", "bundle_cid"] {
        let c = d[k].as_str().unwrap();
        let r = client()
            .head(format!("{}/ipfs/{c}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{k} {c}");
    }
    let def: Value = serde_json::from_slice(&gateway_bytes(&s, &fcid).await).unwrap();
    assert_eq!(def["component"], d["component_cid"]);
    assert_eq!(def["limits"]["memory"], 256 << 20);

    // file input: bytes, size, seeking, params, a vendored wheel
    let data = rand_bytes(3 << 20 | 12345, 7);
    let file = add_cid(&s, "", &[("data.bin", &data)]).await;
    let (v, _) = invoke_json(&s, "probe", &format!("cid={file}&mode=echo&x=1")).await;
    assert_eq!(v["size"], data.len());
    assert_eq!(v["tiny"], 42);
    assert_eq!(v["params"], serde_json::json!({"mode": "echo", "x": "1"}));

    let r = invoke(&s, "probe", &format!("cid={file}&mode=sha")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, headers::INPUT_CID), file);
    assert_eq!(header(&r, headers::FUNCTION_CID), fcid);
    assert!(header(&r, "server-timing").contains("execute;dur="));
    let logs_cid = header(&r, headers::LOGS_CID);
    let out_cid = header(&r, headers::OUTPUT_CID);
    assert_eq!(r.text().await.unwrap(), hex(&Sha256::digest(&data)));
    let logs = gateway_bytes(&s, &logs_cid).await;
    assert_eq!(
        String::from_utf8(logs).unwrap(),
        format!("hashed {} bytes\n", data.len())
    );
    assert_eq!(
        gateway_bytes(&s, &out_cid).await,
        hex(&Sha256::digest(&data)).into_bytes(),
        "the output is stored under its CID"
    );

    // hashlib (copy, new, file_digest) and the idna codec, imported at run time
    let (v, _) = invoke_json(&s, "probe", &format!("cid={file}&mode=hashes")).await;
    let abc = hex(&Sha256::digest(b"abc"));
    assert_eq!(
        v,
        serde_json::json!([
            abc,
            abc,
            abc,
            hex(&Sha256::digest(b"ab")),
            "a9993e364706816aba3e25717850c26c9cd0d89d",
            hex(&Sha256::digest(&data)),
            "xn--bcher-kva.example"
        ])
    );

    // small (buffered) and large reads interleaved with seeks return the right slices and tell
    let (v, _) = invoke_json(&s, "probe", &format!("cid={file}&mode=mixed")).await;
    let n = data.len();
    let ranges = [
        (0, 10),
        (10, 10 + (1 << 20)),
        (10 + (1 << 20), 110 + (1 << 20)),
        (3 << 16, (3 << 16) + (1 << 17)),
        ((3 << 16) + (1 << 17), (3 << 16) + (1 << 17) + 5),
        (0, 1 << 16),
        (1 << 16, (1 << 16) + 3),
        (n - 20, n),
        (n, n),
        (0, n),
    ];
    let mut all = Vec::new();
    for (a, b) in ranges {
        all.extend_from_slice(&data[a..b]);
    }
    assert_eq!(
        v,
        serde_json::json!({
            "lens": ranges.iter().map(|(a, b)| b - a).collect::<Vec<_>>(),
            "tells": ranges.iter().map(|(_, b)| *b).collect::<Vec<_>>(),
            "sha": hex(&Sha256::digest(&all)),
        })
    );

    let r = invoke(&s, "probe", &format!("cid={file}&mode=seek")).await;
    let mut want = data[3..7].to_vec();
    want.push(b'|');
    want.extend_from_slice(&data[data.len() - 5..]);
    assert_eq!(r.bytes().await.unwrap().to_vec(), want);

    // an input larger than the function's memory (256 MiB) streams through it
    let big = rand_bytes(320 << 20, 11);
    let big_cid = add_cid(&s, "", &[("big.bin", &big)]).await;
    let r = invoke(&s, "probe", &format!("cid={big_cid}&mode=sha")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), hex(&Sha256::digest(&big)));
    drop(big);

    // directory input arrives as tar
    let dir = add_cid(
        &s,
        "wrap-with-directory=true",
        &[("one.txt", b"1"), ("sub/two.txt", b"22")],
    )
    .await;
    let (v, _) = invoke_json(&s, "probe", &format!("cid={dir}&mode=tar")).await;
    assert_eq!(
        v,
        serde_json::json!({"one.txt": "1", "sub": "<dir>", "sub/two.txt": "22"})
    );

    // determinism: clocks, randomness, hash seed; the stdlib imports at run time. This runs in
    // an instance made ahead of the request (seeded only when called); the first invocation
    // after the restart below runs in one made on request, and must give the same answer.
    let t = Instant::now();
    while metric(&s, "ipfaas_wasm_instances_ready").await < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no instance made ahead"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ahead = metric(&s, "ipfaas_wasm_instances_total{made=\"ahead\"}").await;
    let (det, det_cid) =
        invoke_json(&s, "probe", &format!("cid={file}&mode=det&cache=false")).await;
    assert_eq!(
        metric(&s, "ipfaas_wasm_instances_total{made=\"ahead\"}").await,
        ahead + 1.0
    );
    assert_eq!(det["env"], serde_json::json!({}), "no host environment");
    assert_eq!(det["frac"], "1/3");
    assert_eq!(det["time"].as_f64().unwrap().floor(), 1_700_000_000.0);
    // what the guest sees of files: the host's times, inode numbers and directory order would
    // differ between runs and machines
    assert_eq!(
        det["fs"]["ls"],
        serde_json::json!(["alpha", "beta", "delta", "kappa", "mu", "omega", "zeta"])
    );
    assert_eq!(det["fs"]["times"], serde_json::json!([1_700_000_000.0]));
    let (det2, det2_cid) =
        invoke_json(&s, "probe", &format!("cid={file}&mode=det&cache=false")).await;
    assert_eq!(det, det2);
    assert_eq!(det_cid, det2_cid);
    let (det_other, _) = invoke_json(&s, "probe", &format!("cid={dir}&mode=det")).await;
    assert_ne!(
        det["random"], det_other["random"],
        "seeded by the input CID"
    );

    // every invocation starts from the snapshot: nothing an earlier instance wrote survives,
    // and (after the first use of a slot) the heap is reset in place, not faulted in again
    // The median over invocations: an instance made ahead while the spent one still holds its
    // slot goes to a slot never used before, and faults that slot's heap in once.
    let pid = s.child.id();
    let mut deltas = vec![];
    let mut faults = minor_faults(pid);
    for n in 0..24 {
        let q = format!("cid={file}&mode=state&n={n}&cache=false");
        let (v, _) = invoke_json(&s, "probe", &q).await;
        assert_eq!(v, serde_json::json!({"before": 0, "n": n.to_string()}));
        let now = minor_faults(pid);
        if n >= 4 {
            deltas.push(now - faults);
        }
        faults = now;
    }
    deltas.sort();
    let per_invocation = deltas[deltas.len() / 2];
    // wasmtime 46.0.3 as published: 1,339 per invocation of this workload (see vendor/README.md)
    assert!(
        per_invocation < 40,
        "median {per_invocation} page faults per invocation ({deltas:?})"
    );

    // the cache answers repeats without running; cache=false runs again
    let q = format!("cid={file}&mode=echo&y=2");
    let r1 = invoke(&s, "probe", &q).await;
    assert_eq!(header(&r1, headers::CACHE), "miss");
    let r2 = invoke(&s, "probe", &q).await;
    assert_eq!(header(&r2, headers::CACHE), "hit");
    assert_eq!(
        header(&r1, headers::OUTPUT_CID),
        header(&r2, headers::OUTPUT_CID)
    );
    assert_eq!(r2.bytes().await.unwrap(), r1.bytes().await.unwrap());
    let r3 = invoke(&s, "probe", &format!("{q}&cache=false")).await;
    assert_eq!(header(&r3, headers::CACHE), "miss");

    // /outputs becomes a directory in the store; every invocation starts with it empty,
    // whether its directory is new or one an earlier invocation left empty
    let ls = format!("cid={file}&mode=ls_outputs&cache=false");
    assert_eq!(invoke_json(&s, "probe", &ls).await.0, serde_json::json!([]));
    let r = invoke(&s, "probe", &format!("cid={file}&mode=outputs")).await;
    assert_eq!(r.status(), 200);
    let outs = header(&r, headers::OUTPUTS_CID);
    assert_eq!(
        gateway_bytes(&s, &format!("{outs}/a.txt")).await,
        b"alpha\n"
    );
    assert_eq!(
        gateway_bytes(&s, &format!("{outs}/sub/b.txt")).await,
        b"beta\n"
    );
    for _ in 0..3 {
        assert_eq!(invoke_json(&s, "probe", &ls).await.0, serde_json::json!([]));
    }
    // an invocation that writes nothing publishes no `/outputs`; one that only makes a
    // directory does
    let r = invoke(&s, "probe", &ls).await;
    assert_eq!(header(&r, headers::OUTPUTS_CID), "");
    let r = invoke(&s, "probe", &format!("cid={file}&mode=mkdir")).await;
    assert_eq!(r.status(), 200);
    let outs = header(&r, headers::OUTPUTS_CID);
    let v = post_json(&s, &format!("ls?arg={outs}")).await;
    assert_eq!(v["Objects"][0]["Links"][0]["Name"], "empty", "{v}");
    assert_eq!(v["Objects"][0]["Links"].as_array().unwrap().len(), 1, "{v}");

    // sandbox: no host files beyond the mounts, no network
    let (v, _) = invoke_json(&s, "probe", &format!("cid={file}&mode=escape")).await;
    assert_ne!(v["/etc/passwd"].as_str().unwrap_or(""), "root:x:0:", "{v}");
    assert!(v["/etc/passwd"].as_str().unwrap().ends_with("Error"), "{v}");
    let net = v["net"].as_str().unwrap();
    assert!(
        net != "connected" && net.to_lowercase().ends_with("error"),
        "{v}"
    );

    // errors: exception (422 + traceback + logs), timeout (504), memory (413), output (413)
    let e = error_of(&s, "probe", &format!("cid={file}&mode=raise&why=odd"), 422).await;
    assert_eq!(e["type"], "ValueError");
    assert_eq!(e["message"], "bad input: odd");
    assert!(
        e["traceback"].as_str().unwrap().contains("function.py"),
        "{e}"
    );
    assert!(
        !e["traceback"].as_str().unwrap().contains("ipfaas_guest"),
        "{e}"
    );
    assert_eq!(e["logs"], "about to fail\n");
    let t = Instant::now();
    let e = error_of(&s, "probe", &format!("cid={file}&mode=spin"), 504).await;
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "timeout took {:?}",
        t.elapsed()
    );
    assert!(e["error"].as_str().unwrap().contains("8000 ms"), "{e}");
    let e = error_of(&s, "probe", &format!("cid={file}&mode=mem"), 413).await;
    assert!(e["error"].as_str().unwrap().contains("memory"), "{e}");
    error_of(&s, "probe", &format!("cid={file}&mode=big"), 413).await;
    // and the host keeps serving
    let (v, _) = invoke_json(&s, "probe", &format!("cid={file}&mode=echo&after=errors")).await;
    assert_eq!(v["size"], data.len());

    // request errors
    error_of(&s, "nosuch", &format!("cid={file}"), 404).await;
    error_of(&s, "probe", "cid=notacid", 400).await;
    error_of(&s, "probe", "mode=echo", 400).await;

    // a raw body is added and used as the input; a JSON body carries cid and params
    let r = client()
        .post(format!("{}/v1/functions/probe/invoke?mode=sha", s.url))
        .body("raw input")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), hex(&Sha256::digest(b"raw input")));
    let r = client()
        .post(format!("{}/v1/functions/{fcid}/invoke", s.url))
        .json(&serde_json::json!({"cid": file, "params": {"mode": "echo", "n": 5}}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["params"]["n"], "5", "{v}");

    // asynchronous jobs
    let r = invoke(
        &s,
        "probe",
        &format!("cid={file}&mode=sha&async=true&cache=false"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let url = format!("{}{}", s.url, job["url"].as_str().unwrap());
    let done = loop {
        let v: Value = client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] != "running" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"]["output_cid"], out_cid.as_str());
    assert_eq!(
        done["result"]["logs"],
        format!("hashed {} bytes\n", data.len())
    );

    // fuel: a one-argument main with a small budget
    let burn = tar_of(&[
        ("function.py", BURN.as_bytes()),
        ("ipfaas.toml", b"fuel = 300000000\ntimeout = \"60s\"\n"),
    ]);
    let b = deploy_ok(&s, "?name=burn", burn).await;
    let t = Instant::now();
    let e = error_of(&s, "burn", &format!("cid={file}"), 422).await;
    assert!(e["error"].as_str().unwrap().contains("fuel"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(30));

    // redeploy moves the name; the old version stays invocable by CID
    let d2 = deploy_ok(&s, "?name=burn", probe_bundle()).await;
    assert_eq!(d2["reused_build"], true, "same bundle, same build");
    assert_eq!(d2["function_cid"], d["function_cid"]);
    let (v, _) = invoke_json(&s, "burn", &format!("cid={file}&mode=echo")).await;
    assert_eq!(v["tiny"], 42);
    error_of(
        &s,
        b["function_cid"].as_str().unwrap(),
        &format!("cid={file}"),
        422,
    )
    .await;
    let list: Value = get_json(&format!("{}/v1/functions", s.url)).await;
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["burn", "probe"]);

    // metrics for every stage
    let m = get_text(&format!("{}/metrics", s.url)).await;
    for needle in [
        "ipfaas_invocations_total{function=\"probe\",outcome=\"ok\"}",
        "ipfaas_invocations_total{function=\"probe\",outcome=\"timeout\"}",
        "ipfaas_invoke_cache_hits_total",
        "ipfaas_invoke_stage_seconds_count{stage=\"instantiate\"}",
        "ipfaas_invoke_stage_seconds_count{stage=\"publish\"}",
        "ipfaas_build_duration_seconds_count 2",
        "ipfaas_active_instances 0",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}");
    }

    // across a restart: the name, the cache and the output are still there
    s.stop();
    let s = Server::start(&repo, &[]);
    let (again, again_cid) =
        invoke_json(&s, "probe", &format!("cid={file}&mode=det&cache=false")).await;
    assert_eq!(
        metric(&s, "ipfaas_wasm_instances_total{made=\"on_request\"}").await,
        1.0
    );
    assert_eq!(again, det);
    assert_eq!(again_cid, det_cid);
    s.stop();

    // another repo, another process: the same bundle builds the same component (reproducible
    // build) and the same invocation gives the same output CID
    let repo_b = tmp.path().join("b");
    let s = Server::start(&repo_b, &[]);
    let d_b = deploy_ok(&s, "", probe_bundle()).await;
    assert_eq!(
        d_b["component_cid"], d["component_cid"],
        "reproducible build"
    );
    assert_eq!(d_b["function_cid"], d["function_cid"]);
    let file_b = add_cid(&s, "", &[("data.bin", &data)]).await;
    assert_eq!(file_b, file);
    let (det_b, det_b_cid) = invoke_json(&s, "probe", &format!("cid={file}&mode=det")).await;
    assert_eq!(det_b, det);
    assert_eq!(det_b_cid, det_cid);
    s.stop();
}

/// Minor page faults a process has taken so far (`/proc/PID/stat`, field 10).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_errors_name_the_culprit() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "no function.py",
            tar_of(&[("main.py", b"x = 1\n")]),
            "no function.py",
        ),
        (
            "no name",
            tar_of(&[("function.py", b"def main(i): pass\n")]),
            "needs a name",
        ),
        (
            "bad toml",
            tar_of(&[
                ("function.py", b"def main(i): pass\n"),
                ("ipfaas.toml", b"memroy = 1\n"),
            ]),
            "memroy",
        ),
        (
            "unpinned",
            tar_of(&[
                ("function.py", b"def main(i): pass\n"),
                ("requirements.txt", b"six\n"),
            ]),
            "line 1",
        ),
        (
            "binary-only package",
            tar_of(&[
                ("function.py", b"def main(i): pass\n"),
                ("requirements.txt", b"numpy==2.1.0\n"),
            ]),
            "numpy==2.1.0",
        ),
        (
            "syntax error",
            tar_of(&[("function.py", b"def main(i):\n    return (\n")]),
            "syntax error",
        ),
        (
            "no main",
            tar_of(&[("function.py", b"def handler(i):\n    return 1\n")]),
            "no callable `main",
        ),
        (
            "import fails",
            tar_of(&[("function.py", b"import not_a_module_anywhere\n")]),
            "not_a_module_anywhere",
        ),
        ("not an archive", b"hello".to_vec(), "archive"),
    ];
    for (what, body, needle) in cases {
        let q = if what == "no name" { "" } else { "?name=bad" };
        let r = deploy(&s, q, body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{what}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
    }
    // with a token, deploy and invoke need it
    let tmp2 = tempfile::tempdir().unwrap();
    let locked = Server::start(tmp2.path(), &["--api-token", "s3cret"]);
    let r = deploy(
        &locked,
        "?name=x",
        tar_of(&[("function.py", b"def main(i): pass\n")]),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = invoke(
        &locked,
        "x",
        "cid=QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = client()
        .get(format!("{}/v1/functions", locked.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "listing is read-only");
    locked.stop();

    // nothing was registered by the failures
    let list: Value = get_json(&format!("{}/v1/functions", s.url)).await;
    assert_eq!(list["functions"], serde_json::json!([]));
}

/// The bundled examples: deployed by `serve` on first start, each run on real data.
#[tokio::test(flavor = "multi_thread")]
async fn examples_deploy_on_first_start_and_work() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_with_examples(tmp.path());
    let t = Instant::now();
    loop {
        let list: Value = get_json(&format!("{}/v1/functions", s.url)).await;
        if list["functions"].as_array().unwrap().len() == 4 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "examples not deployed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("4 examples deployed in {:?}", t.elapsed());

    let texts = add_cid(
        &s,
        "wrap-with-directory=true",
        &[
            ("a.txt", b"The cat sat. The dog sat!"),
            ("b/c.txt", b"the end, THE END"),
        ],
    )
    .await;
    let (v, _) = invoke_json(&s, "wordcount", &format!("cid={texts}&top=2")).await;
    assert_eq!(v["words"], 10);
    assert_eq!(v["files"], serde_json::json!({"a.txt": 6, "b/c.txt": 4}));
    assert_eq!(v["top"], serde_json::json!([["the", 4], ["end", 2]]));

    let csv = b"city,temp,rain\nOslo,3.5,10\nRome,18,x\nLima,20.5,0\n";
    let csv = add_cid(&s, "", &[("w.csv", csv)]).await;
    let (v, _) = invoke_json(&s, "csv-stats", &format!("cid={csv}")).await;
    assert_eq!(v["rows"], 3);
    assert_eq!(v["columns"]["temp"]["mean"], 14.0);
    assert_eq!(v["columns"]["temp"]["median"], 18.0);
    assert_eq!(v["columns"]["rain"]["count"], 2);
    assert_eq!(v["columns"]["rain"]["skipped"], 1);
    assert_eq!(v["columns"]["city"]["count"], 0);
    let e = error_of(&s, "csv-stats", &format!("cid={csv}&column=nope"), 422).await;
    assert_eq!(e["type"], "KeyError");

    let r = invoke(&s, "csv-table", &format!("cid={csv}")).await;
    assert_eq!(r.status(), 200);
    let table = r.text().await.unwrap();
    assert!(table.starts_with("| city"), "{table}");
    assert!(table.contains("| Rome   |   18   | x      |"), "{table}");

    let r = invoke(&s, "sha256-manifest", &format!("cid={texts}")).await;
    assert_eq!(r.status(), 200);
    let outs = header(&r, headers::OUTPUTS_CID);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"files": 2, "bytes": 41}));
    let sums = String::from_utf8(gateway_bytes(&s, &format!("{outs}/SHA256SUMS")).await).unwrap();
    let want = format!(
        "{}  a.txt\n{}  b/c.txt\n",
        hex(&Sha256::digest(b"The cat sat. The dog sat!")),
        hex(&Sha256::digest(b"the end, THE END"))
    );
    assert_eq!(sums, want);

    // the CLI: list, invoke with params
    let out = cli_ok(&s.repo, &["functions"]);
    for n in ["csv-stats", "csv-table", "sha256-manifest", "wordcount"] {
        assert!(out.contains(n), "{out}");
    }
    let out = cli_ok(&s.repo, &["invoke", "wordcount", &texts, "-p", "top=1"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["top"], serde_json::json!([["the", 4]]));
}
