//! `requirements.txt` resolved by the node itself against the real package index (PyPI), by a
//! server whose `PATH` has no Python at all. Checked against references: pip's own resolution
//! of the same file, the distributions the guest's `importlib.metadata` sees, and the guest's
//! own `sys`/`os`/`platform` for the marker environment.

mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// Reports what the guest imports and which distributions it sees installed.
const REPORT: &str = r#"
import importlib, importlib.metadata as md, os, platform, sys

def main(input, params):
    mods = {}
    for m in filter(None, params.get("mods", "").split(",")):
        mods[m] = getattr(importlib.import_module(m), "__version__", "?")
    dists = {d.metadata["Name"].lower().replace("_", "-").replace(".", "-"): d.version
             for d in md.distributions()}
    # the values PEP 508 markers are evaluated on, read as `packaging` reads them
    iv = sys.implementation.version
    env = {
        "implementation_name": sys.implementation.name,
        "implementation_version": "%d.%d.%d" % (iv.major, iv.minor, iv.micro),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }
    return {"mods": mods, "dists": dists, "env": env}
"#;

static SHARED: OnceCell<Mutex<Server>> = OnceCell::const_new();

/// The shared server: its `PATH` names one empty directory, so no `python3` or `pip` can be
/// found by it or anything it runs.
async fn server() -> tokio::sync::MutexGuard<'static, Server> {
    SHARED
        .get_or_init(|| async {
            let empty =
                std::env::temp_dir().join(format!("ipfaas-no-python-{}", std::process::id()));
            std::fs::create_dir_all(&empty).unwrap();
            let path = empty.display().to_string();
            let s = Server::spawn_shared_env(
                Path::new(BIN),
                &["--swarm-listen", "/ip4/127.0.0.1/tcp/0", "--no-examples"],
                &[("PATH", path.as_str())],
            )
            .expect("start the shared server");
            Mutex::new(s)
        })
        .await
        .lock()
        .await
}

/// POSTs a bundle under `name`; (status, answer).
async fn deploy(s: &Server, name: &str, query: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
    deploy_tar(&s.url, &format!("?name={name}{query}"), files).await
}

async fn deploy_ok(s: &Server, name: &str, files: &[(&str, &[u8])]) -> Value {
    let (st, v) = deploy(s, name, "", files).await;
    assert_eq!(st, 201, "{name}: {v}");
    v
}

/// Deploys the report function with `file` (`requirements.txt` or `requirements.lock`)
/// holding `text`; asserts a 400 and returns its error.
async fn refused_with(s: &Server, file: &str, text: &str) -> String {
    let files = [("function.py", REPORT.as_bytes()), (file, text.as_bytes())];
    let (st, v) = deploy(s, "refused", "", &files).await;
    assert_eq!(st, 400, "{file}: {text}: {v}");
    v["error"].as_str().unwrap().to_string()
}

async fn refused(s: &Server, reqs: &str) -> String {
    refused_with(s, "requirements.txt", reqs).await
}

async fn refused_lock(s: &Server, lock: &str) -> String {
    refused_with(s, "requirements.lock", lock).await
}

/// Runs the function `f`; its JSON answer.
async fn report(s: &Server, f: &str, mods: &str) -> Value {
    let cid = add_cid(s, "", &[("x", b"x")]).await;
    let r = invoke(s, f, &format!("cid={cid}&mods={mods}")).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The lock of a deploy answer: name → version.
fn locked(v: &Value) -> BTreeMap<String, String> {
    v["lock"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let sha = w["sha256"].as_str().unwrap();
            assert!(
                sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{w}"
            );
            assert!(w["file"].as_str().unwrap().ends_with(".whl"), "{w}");
            (
                w["name"].as_str().unwrap().to_string(),
                w["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// pip's resolution of `reqs` for CPython 3.14, pure wheels only (`pip install --dry-run
/// --report`, the interpreter found by the test, not the server): name → version.
fn pip_resolves(reqs: &str) -> BTreeMap<String, String> {
    pip_resolves_with(reqs, &[])
}

/// [`pip_resolves`] with more pip options (`--no-index --find-links DIR`).
fn pip_resolves_with(reqs: &str, extra: &[&str]) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), reqs).unwrap();
    let report = dir.path().join("report.json");
    let out = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
        ])
        .args([
            "--only-binary=:all:",
            "--platform",
            "any",
            "--implementation",
            "py",
        ])
        .args(["--abi", "none", "--python-version", "3.14", "--target"])
        .arg(dir.path().join("t"))
        .arg("--report")
        .arg(&report)
        .args(extra)
        .arg("-r")
        .arg(dir.path().join("requirements.txt"))
        .output()
        .expect("python3 -m pip");
    assert!(
        out.status.success(),
        "pip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    v["install"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let m = &i["metadata"];
            (
                m["name"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .replace(['_', '.'], "-"),
                m["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_server_finds_no_python() {
    let s = server().await;
    let environ = std::fs::read(format!("/proc/{}/environ", s.pid())).unwrap();
    let path = environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .expect("PATH is set");
    for dir in path.split(':') {
        for exe in ["python3", "python", "pip", "pip3"] {
            assert!(
                !Path::new(dir).join(exe).exists(),
                "{dir}/{exe} on the server's PATH"
            );
        }
    }
}

/// Ranges with transitive dependencies resolve to what pip resolves, the guest imports them,
/// and the distributions it sees are the lock. A second deploy asks no index.
#[tokio::test]
async fn ranges_resolve_like_pip_and_import() {
    let reqs = "requests>=2.31,<3\npython-dateutil>=2.8\nbeautifulsoup4>=4.12\nattrs>=23\n";
    let want = pip_resolves(reqs);
    let s = server().await;
    let resolves_before =
        metric(&s, "ipfaas_build_duration_seconds_count{stage=\"resolve\"}").await;
    let files = [
        ("function.py", REPORT.as_bytes()),
        ("requirements.txt", reqs.as_bytes()),
    ];
    let v = deploy_ok(&s, "ranges", &files).await;
    let lock = locked(&v);
    assert_eq!(lock, want, "ipfaas (left) and pip (right) disagree");
    for dep in [
        "urllib3",
        "idna",
        "certifi",
        "charset-normalizer",
        "soupsieve",
    ] {
        assert!(lock.contains_key(dep), "{dep} missing from {lock:?}");
    }
    let r = &v["requirements"];
    assert_eq!(r["source"], "resolved", "{v}");
    assert_eq!(r["wheels"].as_u64().unwrap() as usize, lock.len());
    assert!(r["networked"].as_bool().unwrap());
    assert_eq!(
        metric(&s, "ipfaas_build_duration_seconds_count{stage=\"resolve\"}").await,
        resolves_before + 1.0
    );

    let out = report(
        &s,
        "ranges",
        "requests,urllib3,dateutil,bs4,soupsieve,attrs",
    )
    .await;
    assert_eq!(out["mods"]["requests"], lock["requests"].as_str());
    assert_eq!(out["mods"]["bs4"], lock["beautifulsoup4"].as_str());
    assert_eq!(out["mods"]["attrs"], lock["attrs"].as_str());
    let dists: BTreeMap<String, String> = serde_json::from_value(out["dists"].clone()).unwrap();
    assert_eq!(
        dists, lock,
        "the guest's installed distributions are the lock"
    );

    // the definition carries the lock (no URLs: the same wheel may come from any mirror)
    let def = get_json(&format!("{}/v1/functions/ranges", s.url)).await;
    let dl = def["definition"]["lock"].as_array().unwrap();
    assert_eq!(dl.len(), lock.len());
    assert!(dl.iter().all(|w| w.get("url").is_none()), "{def}");

    // unchanged bundle: the same function, no index asked
    let again = deploy_ok(&s, "ranges", &files).await;
    assert_eq!(again["function_cid"], v["function_cid"]);
    assert_eq!(again["requirements"]["source"], "earlier");
    assert_eq!(again["requirements"]["networked"], false, "{again}");
    assert_eq!(again["requirements"]["downloaded_bytes"], 0);
}

/// Extras pull in their requirements; markers are evaluated for the guest, whose environment
/// is what its own `sys`, `os` and `platform` report.
#[tokio::test]
async fn extras_and_markers_follow_the_guest() {
    let s = server().await;
    let v = deploy_ok(&s, "env", &[("function.py", REPORT.as_bytes())]).await;
    assert!(v.get("lock").is_none(), "{v}");
    let env = report(&s, "env", "").await["env"].clone();
    assert_eq!(env["sys_platform"], "wasi", "{env}");
    // a requirement whose marker names every value the guest reported must be installed;
    // one that gets any of them wrong must not be
    let all: Vec<String> = env
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} == {v}"))
        .collect();
    let reqs = format!(
        "requests[socks]==2.32.3\nsix ; {}\nattrs ; sys_platform == \"linux\"\ncolorama ; sys_platform == \"win32\"\ntomli ; python_version < \"3.11\"\n",
        all.join(" and ")
    );
    let v = deploy_ok(
        &s,
        "markers",
        &[
            ("function.py", REPORT.as_bytes()),
            ("requirements.txt", reqs.as_bytes()),
        ],
    )
    .await;
    let lock = locked(&v);
    assert!(lock.contains_key("six"), "{reqs}\n{lock:?}");
    assert!(lock.contains_key("pysocks"), "the socks extra: {lock:?}");
    for absent in ["attrs", "colorama", "tomli"] {
        assert!(!lock.contains_key(absent), "{absent} in {lock:?}");
    }
    let out = report(&s, "markers", "socks,six,requests").await;
    assert_eq!(out["mods"]["requests"], "2.32.3");
}

/// pip's hash-checking mode: the right hash installs, a wrong one is refused, and so is a
/// dependency that has none.
#[tokio::test]
async fn hash_checked_files() {
    // PyPI's digest of six-1.16.0-py2.py3-none-any.whl
    const SIX: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";
    let s = server().await;
    let reqs = format!("six==1.16.0 \\\n    --hash=sha256:{SIX}\n");
    let v = deploy_ok(
        &s,
        "hashed",
        &[
            ("function.py", REPORT.as_bytes()),
            ("requirements.txt", reqs.as_bytes()),
        ],
    )
    .await;
    assert_eq!(v["lock"][0]["sha256"], SIX);

    let wrong = format!("six==1.16.0 --hash=sha256:{}\n", "0".repeat(64));
    let e = refused(&s, &wrong).await;
    assert!(e.contains("six") && e.contains("--hash"), "{e}");

    let missing = format!(
        "python-dateutil==2.9.0.post0 --hash=sha256:{}\n",
        "1".repeat(64)
    );
    let e = refused(&s, &missing).await;
    assert!(e.contains("python-dateutil"), "{e}");
    let e = refused(
        &s,
        "python-dateutil==2.9.0.post0 --hash=sha256:a8b2bc7bffae282281c8140a97d3aa9c14da0b136dfe83f850eea9a5f7470427\n",
    )
    .await;
    assert!(e.contains("six") && e.contains("has no --hash"), "{e}");
}

/// What cannot be installed is refused with the chain that asked for it.
#[tokio::test]
async fn refusals_name_the_chain() {
    let s = server().await;
    let e = refused(&s, "numpy>=2\n").await;
    assert!(
        e.starts_with("numpy>=2: no pure-Python wheel for CPython 3.14/WASI (only native wheels)"),
        "{e}"
    );
    // imageio is pure Python; what it requires is not
    let e = refused(&s, "imageio==2.34.0\n").await;
    assert!(
        e.contains("imageio==2.34.0 → numpy: no pure-Python wheel for CPython 3.14/WASI")
            || e.contains("imageio==2.34.0 → pillow: no pure-Python wheel for CPython 3.14/WASI"),
        "{e}"
    );
    // a conflict, as pubgrub explains it
    let e = refused(&s, "requests==2.32.3\nurllib3<1.21\n").await;
    assert!(
        e.contains("cannot be resolved") && e.contains("urllib3") && e.contains("requests"),
        "{e}"
    );
    let e = refused(&s, "ipfaas-no-such-package-anywhere-7f3a\n").await;
    assert!(e.contains("not found on the package index"), "{e}");
    let e = refused(&s, "six\n--no-binary :all:\n").await;
    assert!(e.contains("requirements.txt line 2"), "{e}");
}

/// `-r` and `-c` files inside the bundle.
#[tokio::test]
async fn includes_and_constraints() {
    let s = server().await;
    let v = deploy_ok(
        &s,
        "includes",
        &[
            ("function.py", REPORT.as_bytes()),
            (
                "requirements.txt",
                b"-r reqs/base.txt\n-c reqs/pins.txt\npython-dateutil\n",
            ),
            ("reqs/base.txt", b"attrs  # and a comment\nsix\n"),
            ("reqs/pins.txt", b"six==1.16.0\nattrs<24\n"),
        ],
    )
    .await;
    let lock = locked(&v);
    assert_eq!(lock.get("six").map(String::as_str), Some("1.16.0"));
    assert!(lock["attrs"].starts_with("23."), "{lock:?}");
}

/// A METADATA file with `Requires-Dist` lines.
fn wheel_requiring(name: &str, version: &str, requires: &[&str], module: &[u8]) -> Vec<u8> {
    let info = format!("{name}-{version}.dist-info");
    let mut meta = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for r in requires {
        meta.push_str(&format!("Requires-Dist: {r}\n"));
    }
    let wheel = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let (m, w, py) = (
        format!("{info}/METADATA"),
        format!("{info}/WHEEL"),
        format!("{name}/__init__.py"),
    );
    zip_of(&[(&py, module), (&m, meta.as_bytes()), (&w, wheel)])
}

/// With no index reachable, the bundle's `wheels/` is enough (transitive dependencies too),
/// and so is the node's wheelhouse (`--find-links DIR`); what they lack is a 503 naming the
/// index.
#[tokio::test]
async fn offline_from_the_bundles_wheels() {
    let tmp = tempfile::tempdir().unwrap();
    // and the node's own wheelhouse (a directory of this host)
    let house = tempfile::tempdir().unwrap();
    std::fs::write(
        house.path().join("housemod-3.1-py3-none-any.whl"),
        wheel_requiring("housemod", "3.1", &[], b"V = 31\n"),
    )
    .unwrap();
    let house_dir = house.path().display().to_string();
    let s = Server::start(
        tmp.path(),
        &[
            "--index-url",
            "http://127.0.0.1:9/simple",
            "--find-links",
            &house_dir,
        ],
    );
    let top = wheel_requiring(
        "topmod",
        "1.2.0",
        &["basemod>=2"],
        b"import basemod\nV = basemod.V + 1\n",
    );
    let base = wheel_requiring("basemod", "2.0.1", &[], b"V = 41\n");
    let old = wheel_requiring("basemod", "1.0", &[], b"V = 0\n");
    let f = "import topmod\ndef main(input, params):\n    return {\"v\": topmod.V}\n";
    let v = deploy_ok(
        &s,
        "offline",
        &[
            ("function.py", f.as_bytes()),
            ("requirements.txt", b"topmod~=1.0\n"),
            ("wheels/topmod-1.2.0-py3-none-any.whl", &top),
            ("wheels/basemod-2.0.1-py3-none-any.whl", &base),
            ("wheels/basemod-1.0-py3-none-any.whl", &old),
        ],
    )
    .await;
    assert_eq!(
        locked(&v).get("basemod").map(String::as_str),
        Some("2.0.1"),
        "{v}"
    );
    assert!(
        v["lock"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w.get("url").is_none())
    );
    let cid = add_cid(&s, "", &[("x", b"x")]).await;
    let r: Value = invoke(&s, "offline", &format!("cid={cid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"v": 42}));

    // pre-releases as PEP 440 (and pip) choose them: only when a specifier names one
    let wheels: Vec<(String, Vec<u8>)> = ["prea-1.0", "prea-2.0rc1", "preb-1.0", "preb-2.0rc1"]
        .iter()
        .map(|nv| {
            let (n, v) = nv.split_once('-').unwrap();
            (
                format!("{nv}-py3-none-any.whl"),
                wheel_requiring(n, v, &[], b"V = 0\n"),
            )
        })
        .collect();
    let reqs = "prea>=1\npreb>=1.0rc1\n";
    let wheeldir = tempfile::tempdir().unwrap();
    for (f, b) in &wheels {
        std::fs::write(wheeldir.path().join(f), b).unwrap();
    }
    let want = pip_resolves_with(
        reqs,
        &[
            "--no-index",
            "--find-links",
            wheeldir.path().to_str().unwrap(),
        ],
    );
    let mut files: Vec<(String, &[u8])> = wheels
        .iter()
        .map(|(f, b)| (format!("wheels/{f}"), b.as_slice()))
        .collect();
    files.push(("function.py".into(), REPORT.as_bytes()));
    files.push(("requirements.txt".into(), reqs.as_bytes()));
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    let v = deploy_ok(&s, "pre", &refs).await;
    assert_eq!(locked(&v), want, "ipfaas (left) and pip (right) disagree");
    assert_eq!(want.get("preb").map(String::as_str), Some("2.0rc1"));

    let h = "import housemod\ndef main(input, params):\n    return {\"v\": housemod.V}\n";
    let v = deploy_ok(
        &s,
        "house",
        &[
            ("function.py", h.as_bytes()),
            ("requirements.txt", b"housemod>=3\n"),
        ],
    )
    .await;
    assert_eq!(
        locked(&v).get("housemod").map(String::as_str),
        Some("3.1"),
        "{v}"
    );
    assert_eq!(v["requirements"]["networked"], false, "{v}");
    let r: Value = invoke(&s, "house", &format!("cid={cid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"v": 31}));

    let (st, v) = deploy(
        &s,
        "unreachable",
        "",
        &[
            ("function.py", f.as_bytes()),
            ("requirements.txt", b"six\n"),
        ],
    )
    .await;
    assert_eq!(st, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("127.0.0.1:9"), "{v}");
}

/// `ipfaas deploy --lock` writes `requirements.lock`; a bundle that carries it is built from it
/// exactly, to the same function CID on another node; a lock whose digest is wrong is refused.
#[tokio::test]
async fn locks_round_trip() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("function.py"), REPORT).unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "attrs>=23,<25\n").unwrap();
    run_ok(
        std::process::Command::new(BIN)
            .args(["deploy", "--lock", "--name", "locked"])
            .arg(dir.path())
            .args(["--api", &s.url]),
    );
    let text = std::fs::read_to_string(dir.path().join("requirements.lock")).unwrap();
    assert!(
        text.contains("name = \"attrs\"") && text.contains("sha256 = "),
        "{text}"
    );
    assert!(text.contains("url = \"https://"), "{text}");

    // the bundle with its lock: built from the lock, here and on a fresh node alike
    let files: Vec<(String, Vec<u8>)> = ["function.py", "requirements.txt", "requirements.lock"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.path().join(f)).unwrap()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_slice()))
        .collect();
    let here = deploy_ok(&s, "locked", &refs).await;
    assert_eq!(here["requirements"]["source"], "requirements.lock");
    let tmp = tempfile::tempdir().unwrap();
    let other = Server::start(tmp.path(), &[]);
    let there = deploy_ok(&other, "locked", &refs).await;
    assert_eq!(there["component_cid"], here["component_cid"]);
    assert_eq!(there["function_cid"], here["function_cid"]);
    assert!(there["requirements"]["networked"].as_bool().unwrap());

    // --upgrade resolves again rather than read the lock
    let (st, up) = deploy(&s, "locked", "&upgrade=true", &refs).await;
    assert_eq!(st, 201, "{up}");
    assert_ne!(up["requirements"]["source"], "requirements.lock");

    // a lock that names the right file with the wrong digest
    let sha = here["lock"][0]["sha256"].as_str().unwrap();
    let bad = String::from_utf8(files[2].1.clone())
        .unwrap()
        .replace(sha, &"e".repeat(64));
    let e = refused_lock(&other, &bad).await;
    assert!(
        e.contains("requirements.lock: attrs") && e.contains(&"e".repeat(64)),
        "{e}"
    );
}

/// An import that fails at deploy shows Python's traceback, not the engine's.
#[tokio::test]
async fn build_errors_are_python_errors() {
    let s = server().await;
    let (st, v) = deploy(
        &s,
        "broken",
        "",
        &[
            (
                "function.py",
                b"import six\nimport not_installed_anywhere\n",
            ),
            ("requirements.txt", b"six==1.16.0\n"),
        ],
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("ModuleNotFoundError") && e.contains("not_installed_anywhere"),
        "{e}"
    );
    assert!(!e.contains("wasm") && !e.contains("backtrace"), "{e}");
}

/// A bundle's own URLs (index options, lock URLs) reach public addresses only; the node's own
/// (`--index-url` in the offline test above) may be anywhere.
#[tokio::test]
async fn a_bundles_urls_reach_public_addresses_only() {
    let s = server().await;
    // something to probe, which must never be asked
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    for reqs in [
        format!("--index-url http://127.0.0.1:{port}/simple\nsix\n"),
        format!("--extra-index-url http://[::1]:{port}/simple\nsix\n"),
        "--index-url http://169.254.169.254/latest/\nsix\n".to_string(),
        format!("--find-links http://localhost:{port}/\n--no-index\nsix\n"),
    ] {
        let e = refused(&s, &reqs).await;
        assert!(e.contains("public address"), "{reqs}: {e}");
    }
    let lock = format!(
        "version = 1\n[[wheel]]\nname = \"nosuchpkg\"\nversion = \"1.0\"\nfile = \"nosuchpkg-1.0-py3-none-any.whl\"\nsha256 = \"{}\"\nurl = \"http://127.0.0.1:{port}/nosuchpkg-1.0-py3-none-any.whl\"\n",
        "a".repeat(64)
    );
    let e = refused_lock(&s, &lock).await;
    assert!(e.contains("public address"), "{e}");
    // nothing connected to the probe
    let accepted = tokio::time::timeout(Duration::from_millis(200), probe.accept()).await;
    assert!(
        accepted.is_err(),
        "the node connected to a loopback address a bundle named"
    );
}
