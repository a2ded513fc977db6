//! Docker functions on the real Docker Engine. No image can be pulled here, so the test builds
//! its own: a statically linked C program (`fixtures/probe.c`) in a `FROM scratch` image.
//! Without an engine these tests fail: they never skip.

mod common;

use common::*;
use ipfaas_runtime::invoke::headers;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI");
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Builds the probe image; returns its tag.
fn probe_image(dir: &std::path::Path) -> String {
    docker(&["info", "--format", "{{.ServerVersion}}"]);
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/probe.c");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("probe"))
        .arg(src)
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc -static failed");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n",
    )
    .unwrap();
    let tag = format!("ipfaas-test-probe:{}", std::process::id());
    docker(&["build", "-q", "-t", &tag, dir.to_str().unwrap()]);
    tag
}

async fn deploy(s: &Server, manifest: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/functions", s.url))
        .json(manifest)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap()
}

async fn invoke(s: &Server, q: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/functions/dprobe/invoke?{q}", s.url))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
}

fn leftovers(image: &str) -> usize {
    docker(&["ps", "-aq", "--filter", &format!("ancestor={image}")])
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_functions_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let image = probe_image(&build);
    let repo = tmp.path().join("repo");
    let s = Server::start(&repo, &["--max-containers", "1", "--container-queue", "1"]);

    // deploy: the image is pinned by ID; a missing image is a 400 naming it
    let manifest = json!({
        "name": "dprobe", "kind": "docker", "image": image,
        "limits": {"memory": "64MiB", "timeout": "3s", "pids": 32, "cpus": 0.5}
    });
    let r = deploy(&s, &manifest).await;
    let d: Value = r.json().await.unwrap();
    assert!(d["function_cid"].as_str().is_some(), "{d}");
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    let def: Value = get_json(&format!("{}/v1/functions/dprobe", s.url)).await;
    assert_eq!(def["definition"]["image_id"], id.trim());
    assert_eq!(def["definition"]["kind"], "docker");
    let r = deploy(
        &s,
        &json!({"name": "ghost", "kind": "docker", "image": "ipfaas-no-such-image:1"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("ipfaas-no-such-image:1"),
        "{e}"
    );
    let r = deploy(
        &s,
        &json!({"kind": "docker", "image": image, "limits": {"ram": 1}}),
    )
    .await;
    assert_eq!(r.status(), 400);

    // a file input, read-only at /inputs/<cid>; stdout is the output
    let data = rand_bytes(300_000, 3);
    let file = add_cid(&s, "", &[("f.bin", &data)]).await;
    let r = invoke(&s, &format!("cid={file}&mode=cat")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, headers::EXIT_CODE), "0");
    let out_cid = header(&r, headers::OUTPUT_CID);
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    let stored = client()
        .get(format!("{}/ipfs/{out_cid}", s.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.to_vec(), data, "the output is stored");

    // /inputs holds exactly the input: for a file, the one file named by its CID
    let r = invoke(&s, &format!("cid={file}&mode=ls")).await;
    assert_eq!(
        r.text().await.unwrap(),
        format!("input=/inputs/{file}\n{file} 300000\n")
    );

    // a directory input, as the tree under /inputs: every entry (hidden names, symlinks, empty
    // directories) and nothing else, on the first run and from the export cache
    let (ct, body) = multipart(&[
        ("d", "application/x-directory", b""),
        ("d%2F.complete", "application/octet-stream", b"mine"),
        ("d%2Fa.txt", "application/octet-stream", b"aa"),
        ("d%2Fempty", "application/x-directory", b""),
        ("d%2Flink", "application/symlink", b"a.txt"),
        ("d%2Fsub%2Fb.txt", "application/octet-stream", b"bbb"),
    ]);
    let r = client()
        .post(s.api("add"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dir = ndjson(&r.text().await.unwrap()).last().unwrap()["Hash"]
        .as_str()
        .unwrap()
        .to_string();
    for cache in ["false", "false"] {
        let r = invoke(&s, &format!("cid={dir}&mode=ls&cache={cache}")).await;
        assert_eq!(
            r.text().await.unwrap(),
            "input=/inputs\n.complete 4\na.txt 2\nempty/\nlink -> a.txt\nsub/\nsub/b.txt 3\n"
        );
    }

    // params as environment variables
    let r = invoke(&s, &format!("cid={file}&mode=env&greeting=hello")).await;
    assert_eq!(
        r.text().await.unwrap(),
        format!("greeting=hello cid={file}\n")
    );

    // /outputs becomes a directory in the store
    let r = invoke(&s, &format!("cid={file}&mode=outputs")).await;
    assert_eq!(r.status(), 200);
    let outs = header(&r, headers::OUTPUTS_CID);
    let got = get_text(&format!("{}/ipfs/{outs}/result.txt", s.url)).await;
    assert_eq!(got, "done\n");

    // isolation: no network, read-only input, read-only root
    let r = invoke(&s, &format!("cid={file}&mode=escape")).await;
    assert_eq!(
        r.text().await.unwrap(),
        "net=refused\ninputs=Read-only file system\nroot=Read-only file system\n"
    );

    // Unprivileged by default: the node runs as root here, so the container runs as nobody,
    // and /outputs belongs to it alone. A setuid file or a world-writable drop is not possible.
    let me_root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(tmp.path()).unwrap().uid() == 0
    };
    let r = invoke(&s, &format!("cid={file}&mode=whoami")).await;
    let who = r.text().await.unwrap();
    if me_root {
        assert_eq!(who, "uid=65534 gid=65534 outputs=700 key=-\n");
    } else {
        assert!(who.ends_with("outputs=700 key=-\n"), "{who}");
    }
    // special files and oversized /outputs are refused before publish reads them; a container
    // over the quotas is stopped while it runs (it would sleep into a 504 otherwise): a sparse
    // file's size and disk taken past a file's end both count
    for mode in ["fifo", "sparse", "sparse_wait", "prealloc"] {
        let t = Instant::now();
        let r = invoke(&s, &format!("cid={file}&mode={mode}")).await;
        let st = r.status();
        let e: Value = r.json().await.unwrap();
        assert_eq!(st, 413, "{mode}: {e}");
        assert!(e["error"].as_str().unwrap().contains("/outputs"), "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{mode}: {:?}",
            t.elapsed()
        );
    }

    // failures: non-zero exit (422 + logs), timeout (504), OOM (413)
    let r = invoke(&s, &format!("cid={file}&mode=fail")).await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["exit_code"], 3);
    assert_eq!(e["logs"], "failing on purpose\n");
    let t = Instant::now();
    let r = invoke(&s, &format!("cid={file}&mode=sleep")).await;
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let r = invoke(&s, &format!("cid={file}&mode=oom")).await;
    let st = r.status();
    let e: Value = r.json().await.unwrap();
    assert_eq!(st, 413, "{e}");
    assert_eq!(e["oom_killed"], true);

    // overload: one container, one waiting; the rest get 429 with Retry-After
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = format!("{}/v1/functions/dprobe/invoke?cid={file}&mode=sleep", s.url);
        tasks.push(tokio::spawn(async move {
            let r = client().post(url).send().await.unwrap();
            (r.status().as_u16(), header(&r, "retry-after"))
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let busy = codes.iter().filter(|(c, _)| *c == 429).count();
    assert!(busy >= 3, "{codes:?}");
    assert!(
        codes.iter().all(|(c, ra)| *c != 429 || ra == "1"),
        "{codes:?}"
    );
    assert_eq!(leftovers(&image), 0, "every container is removed");

    // Callers who hang up: their containers are killed and removed, and their slot and
    // queue place given back, long before the 3 s limit; the next call is served, not 429.
    let hangups = (0..2).map(|_| {
        let url = format!("{}/v1/functions/dprobe/invoke?cid={file}&mode=sleep", s.url);
        async move {
            client()
                .post(url)
                .timeout(Duration::from_millis(800))
                .send()
                .await
                .is_err()
        }
    });
    assert!(
        futures::future::join_all(hangups)
            .await
            .into_iter()
            .all(|e| e)
    );
    let t = Instant::now();
    while leftovers(&image) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "containers outlived their callers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = invoke(&s, &format!("cid={file}&mode=env&greeting=after")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(metric(&s, "ipfaas_docker_active_containers").await, 0.0);

    // Secrets: named in the manifest, kept by the node, given at run time; `env` values are
    // shown only to a caller with the token (none is set here: to nobody).
    let r = deploy(
        &s,
        &json!({"name": "dsecret", "kind": "docker", "image": image, "user": "1234:1234",
                "env": {"PUBLIC_NOTE": "deployer-only"}, "secrets": ["API_KEY"],
                "limits": {"memory": "64MiB", "timeout": "3s", "pids": 32}}),
    )
    .await;
    let d: Value = r.json().await.unwrap();
    let fcid = d["function_cid"].as_str().unwrap().to_string();
    let call = |q: String| {
        let url = format!("{}/v1/functions/dsecret/invoke?{q}", s.url);
        async move { client().post(url).send().await.unwrap() }
    };
    let r = call(format!("cid={file}&mode=whoami")).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("API_KEY"));
    let r = client()
        .put(format!("{}/v1/secrets/API_KEY", s.url))
        .body("s3cret-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = call(format!("cid={file}&mode=whoami")).await;
    let who = r.text().await.unwrap();
    if me_root {
        assert_eq!(who, "uid=1234 gid=1234 outputs=700 key=s3cret-value\n");
    }
    let shown = get_text(&format!("{}/v1/functions/dsecret", s.url)).await;
    assert!(!shown.contains("deployer-only"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let raw = get_text(&format!("{}/ipfs/{fcid}", s.url)).await;
    assert!(raw.contains("API_KEY") && !raw.contains("s3cret"), "{raw}");
    let r = deploy(
        &s,
        &json!({"name": "dbad", "kind": "docker", "image": image, "user": "root"}),
    )
    .await;
    assert_eq!(r.status(), 400);

    // a crash mid-invocation leaves a container; the next start removes it
    let pending = tokio::spawn({
        let url = format!("{}/v1/functions/dprobe/invoke?cid={file}&mode=sleep", s.url);
        async move {
            let _ = client().post(url).send().await;
        }
    });
    let t = Instant::now();
    while leftovers(&image) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "container did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.kill9();
    let _ = pending.await;
    assert_eq!(leftovers(&image), 1);
    let s = Server::start(&repo, &[]);
    assert_eq!(leftovers(&image), 0, "leftover reaped on start");
    // and the function survived the restart
    let r = invoke(&s, &format!("cid={file}&mode=env&greeting=again")).await;
    assert_eq!(r.status(), 200);
    let m = get_text(&format!("{}/metrics", s.url)).await;
    for needle in [
        "ipfaas_docker_start_seconds_count",
        "ipfaas_docker_exits_total{code=\"0\"}",
        "ipfaas_docker_export_cache_hits_total",
        "ipfaas_docker_active_containers 0",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}");
    }
    s.stop();
    docker(&["rmi", "-f", &image]);
}
