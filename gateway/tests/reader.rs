//! What a Python function reads is what was stored, checked against CPython itself.
//!
//! - File CIDs: random sequences of file-object operations run in the guest on its `input` and,
//!   on the host, on `io.BufferedReader(io.BytesIO(data), 65536)` by the host's `python3`; the
//!   two reports must be identical. Sizes go from 0 bytes to 300 MiB, around the buffer
//!   (64 KiB), the chunkers (256 KiB, 1 MiB) and the host read piece (16 MiB); the data is added
//!   with both chunking profiles.
//! - Directory CIDs: random trees on disk (nested and empty directories, symlinks, non-ASCII and
//!   long names, empty and multi-MiB files), added with the CLI, read with `tarfile` in the
//!   guest (seekable and streaming), compared with the tree itself.
//!
//! The fixture function, `tests/fixtures/inspect`, holds the one operation interpreter that both
//! sides run.

mod common;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inspect")
}

/// Deploys the fixture; returns its name.
async fn deploy_inspect(s: &Server) -> String {
    let dir = fixture();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (py, toml) = (read("function.py"), read("ipfaas.toml"));
    let v = deploy_files(s, &[("function.py", &py), ("ipfaas.toml", &toml)]).await;
    v["name"].as_str().unwrap().to_string()
}

async fn read_with(s: &Server, f: &str, cid: &str, params: Value) -> Value {
    let r = client()
        .post(format!("{}/v1/functions/{f}/invoke", s.url))
        .json(&json!({"cid": cid, "params": params}))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A small deterministic generator (xorshift64*), so a failing seed can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;

/// Lengths and offsets that sit on the boundaries the reader has: its buffer (64 KiB), the
/// chunkers (256 KiB, 1 MiB), the host read piece (16 MiB), and the input's own size.
fn interesting(rng: &mut Rng, size: i64) -> i64 {
    let fixed = [
        0,
        1,
        2,
        7,
        4095,
        8192,
        64 * KIB - 1,
        64 * KIB,
        64 * KIB + 1,
        256 * KIB - 1,
        256 * KIB + 1,
        MIB - 1,
        MIB,
        MIB + 1,
        16 * MIB - 1,
        16 * MIB,
        16 * MIB + 1,
    ];
    match rng.below(4) {
        0 => rng.pick(&fixed),
        1 => (size + rng.below(5) as i64 - 2).max(0),
        2 => rng.below(size as u64 + 2) as i64,
        _ => rng.below(300) as i64,
    }
}

/// One random operation sequence for an input of `size` bytes.
fn ops(rng: &mut Rng, size: i64, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        let len = interesting(rng, size);
        let op = match rng.below(20) {
            0 | 1 => json!(["read", len]),
            2 => json!(["read", rng.pick(&[-1, -2])]),
            3 => json!(["read"]),
            4 => json!(["read1", len]),
            5 => json!(["read1", -1]),
            6 => json!(["readinto", len]),
            7 => json!(["readinto1", len]),
            8 => json!(["readline"]),
            9 => json!(["readline", rng.pick(&[0, 1, 10, 100, 70000, -1])]),
            10 => json!(["readlines", rng.pick(&[0, 5, 1000, 200_000])]),
            11 => json!(["next", 1 + rng.below(4)]),
            12..=14 => {
                let whence = rng.pick(&[0, 0, 1, 1, 2, 2, 3]);
                let off = match whence {
                    0 => interesting(rng, size) - if rng.below(8) == 0 { 5 } else { 0 },
                    _ => interesting(rng, size) - interesting(rng, size),
                };
                json!(["seek", off, whence])
            }
            15 => json!(["tell"]),
            16 => json!(["peek", rng.pick(&[0, 1, 100, 70000])]),
            17 => json!([rng.pick(&["seekable", "readable", "writable", "closed"])]),
            18 => {
                if rng.below(6) == 0 {
                    json!(["iterate"])
                } else {
                    json!(["tell"])
                }
            }
            _ => json!(["read", rng.below(5000)]),
        };
        out.push(op);
    }
    // the end of a function: a context manager or a close, then use after close
    match rng.below(2) {
        0 => out.push(json!(["with", interesting(rng, size)])),
        _ => out.push(json!(["close"])),
    }
    out.push(json!(["read", 10]));
    out.push(json!(["seek", 0, 0]));
    out.push(json!(["closed"]));
    out
}

/// `size` bytes from `seed`, with newlines about every `line` bytes (never when 0).
fn data(size: usize, seed: u64, line: u64) -> Vec<u8> {
    let mut d = rand_bytes(size, seed);
    let mut rng = Rng(seed.wrapping_mul(31) | 1);
    for b in d.iter_mut() {
        if *b == b'\n' {
            *b = b'x';
        }
        if line > 0 && rng.below(line) == 0 {
            *b = b'\n';
        }
    }
    d
}

/// The host's `python3` runs the fixture's `replay` on CPython's reader over the same bytes.
fn reference(data_file: &Path, ops: &[Value]) -> Value {
    let ops_file = data_file.with_extension("ops.json");
    std::fs::write(&ops_file, serde_json::to_vec(ops).unwrap()).unwrap();
    let script = r#"
import importlib.util, io, json, sys
spec = importlib.util.spec_from_file_location("inspect_fixture", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
data = open(sys.argv[2], "rb").read()
ops = json.load(open(sys.argv[3]))
print(json.dumps(m.replay(io.BufferedReader(io.BytesIO(data), 65536), ops)))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(fixture().join("function.py"))
        .arg(data_file)
        .arg(&ops_file)
        .output()
        .expect("python3 runs the reference");
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn file_input_reads_like_cpythons_buffered_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("repo"), &[]);
    let f = deploy_inspect(&s).await;
    // (size, newline every n bytes)
    let cases: &[(i64, u64)] = &[
        (0, 0),
        (1, 0),
        (511, 40),
        (64 * KIB - 1, 80),
        (64 * KIB, 0),
        (64 * KIB + 1, 3000),
        (256 * KIB + 1, 80),
        (MIB + 1, 100_000),
        (16 * MIB - 1, 0),
        (16 * MIB, 500_000),
        (16 * MIB + 1, 80),
        (20 * MIB + 3, 2_000_000),
        (40 * MIB, 0),
        (64 * MIB + 123, 5_000_000),
        // several hundred MiB: one round, so the test stays short
        (300 * MIB + 5, 20_000_000),
    ];
    for (i, &(size, line)) in cases.iter().enumerate() {
        let seed = 0x5eed_0000 + i as u64;
        let bytes = data(size as usize, seed, line);
        let path = tmp.path().join(format!("in-{i}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        // both chunking profiles: 256 KiB dag-pb leaves, and 1 MiB raw leaves
        let profile = if i % 2 == 0 {
            ""
        } else {
            "profile=unixfs-v1-2025"
        };
        let cid = add_cid(&s, profile, &[("in.bin", &bytes)]).await;
        let mut rng = Rng(seed);
        let rounds = if size > 64 * MIB { 1 } else { 2 };
        for round in 0..rounds {
            let seq = ops(&mut rng, size, 40);
            let params = json!({"ops": serde_json::to_string(&seq).unwrap()});
            let got = read_with(&s, &f, &cid, params).await;
            let want = reference(&path, &seq);
            if got != want {
                let (g, w) = (got.as_array().unwrap(), want.as_array().unwrap());
                let at = (0..g.len().min(w.len())).find(|&k| g[k] != w[k]);
                panic!(
                    "size {size}, seed {seed:#x}, round {round}: first difference at op {at:?}: {}\nguest: {}\ncpython: {}",
                    at.map(|k| seq[k].to_string()).unwrap_or_default(),
                    at.map(|k| g[k].to_string()).unwrap_or_default(),
                    at.map(|k| w[k].to_string()).unwrap_or_default(),
                );
            }
        }
        // the unbounded read a user writes first: `hashlib.sha256(input.read())`
        let whole = read_with(&s, &f, &cid, json!({"ops": r#"[["read"]]"#})).await;
        assert_eq!(
            whole[0][1],
            json!([size, hex(&Sha256::digest(&bytes))]),
            "read() of {size} bytes"
        );
        std::fs::remove_file(&path).unwrap();
    }
}

/// Names that have broken tar writers and readers: non-ASCII, spaces, and past tar's 100-byte
/// name field.
fn name(rng: &mut Rng, taken: &mut Vec<String>) -> String {
    loop {
        let n = match rng.below(7) {
            0 => format!("f{}", rng.below(1000)),
            1 => format!("données-{}", rng.below(100)),
            2 => format!("日本語 {}", rng.below(100)),
            3 => format!("{}-{}", "long".repeat(30), rng.below(100)),
            4 => format!("sp ace {}.txt", rng.below(100)),
            5 => format!(
                "ünï-{}-{}",
                "ω".repeat(1 + rng.below(60) as usize),
                rng.below(10)
            ),
            _ => format!("d{}", rng.below(1000)),
        };
        if !taken.contains(&n) {
            taken.push(n.clone());
            return n;
        }
    }
}

/// A random tree under `dir`; `big` bounds the number of multi-MiB files.
fn tree(rng: &mut Rng, dir: &Path, depth: u32, big: &mut u32) {
    let mut taken = Vec::new();
    for _ in 0..rng.below(6) {
        let n = name(rng, &mut taken);
        let p = dir.join(&n);
        match rng.below(10) {
            0..=4 => {
                let size = match rng.below(6) {
                    0 => 0,
                    1 if *big > 0 => {
                        *big -= 1;
                        (2 << 20) + rng.below(3 << 20) as usize
                    }
                    _ => rng.below(70_000) as usize,
                };
                std::fs::write(&p, rand_bytes(size, rng.next())).unwrap();
            }
            5 | 6 if depth < 4 => {
                std::fs::create_dir(&p).unwrap();
                tree(rng, &p, depth + 1, big);
            }
            7 => std::fs::create_dir(&p).unwrap(), // empty
            _ => {
                let target = match rng.below(3) {
                    0 => "../elsewhere".to_string(),
                    1 => format!("{}/target-{}", "deep".repeat(30), rng.below(10)),
                    _ => "/etc/hostname".to_string(),
                };
                std::os::unix::fs::symlink(target, &p).unwrap();
            }
        }
    }
}

/// The tree on disk, as the fixture's `tar_listing` reports a tar of it (sorted by name).
fn listing(root: &Path) -> Vec<Value> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Value>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push(json!([rel, "symlink", t.to_str().unwrap()]));
            } else if meta.is_dir() {
                out.push(json!([rel, "dir"]));
                walk(root, &p, out);
            } else {
                let d = std::fs::read(&p).unwrap();
                out.push(json!([rel, "file", [d.len(), hex(&Sha256::digest(&d))]]));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    sort(&mut out);
    out
}

fn sort(v: &mut [Value]) {
    v.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_input_reads_like_the_tree_through_tarfile() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let s = Server::start(&repo, &[]);
    let f = deploy_inspect(&s).await;
    for seed in 1..=6u64 {
        let mut rng = Rng(0x7a4_0000 + seed);
        let root = tmp.path().join(format!("tree-{seed}"));
        std::fs::create_dir(&root).unwrap();
        let mut big = if seed % 3 == 0 { 2 } else { 0 };
        tree(&mut rng, &root, 0, &mut big);
        // at least one entry, so the add has something to name
        std::fs::write(root.join("last"), b"x").unwrap();
        let out = cli_ok(&repo, &["add", "-r", "-Q", root.to_str().unwrap()]);
        let cid = out.trim();
        let want = listing(&root);
        for mode in ["r:", "r|"] {
            let mut got: Vec<Value> =
                read_with(&s, &f, cid, json!({"mode": "tar", "tarmode": mode}))
                    .await
                    .as_array()
                    .unwrap()
                    .clone();
            sort(&mut got);
            assert_eq!(got, want, "tree seed {seed}, tarfile mode {mode}");
        }
    }
}
