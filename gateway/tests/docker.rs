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
    let t = tag.clone();
    at_exit(move || {
        let _ = Command::new("docker").args(["rmi", "-f", &t]).output();
    });
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

async fn run_dprobe(s: &Server, q: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/functions/dprobe/invoke?{q}", s.url))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
}

/// The `dprobe` manifest for `image`: 64 MiB, 3 s, 32 pids, half a CPU.
fn dprobe_manifest(image: &str) -> Value {
    json!({
        "name": "dprobe", "kind": "docker", "image": image,
        "limits": {"memory": "64MiB", "timeout": "3s", "pids": 32, "cpus": 0.5}
    })
}

fn leftovers(image: &str) -> usize {
    docker(&["ps", "-aq", "--filter", &format!("ancestor={image}")])
        .lines()
        .count()
}

/// What the focused tests below share: the probe image (built once), and a server that runs one
/// container at a time with one waiting, with `dprobe` deployed and a 300 KB file added. Each
/// test holds the lock for its whole run: they see the engine's containers one test at a time.
struct Dprobe {
    s: Server,
    image: String,
    /// The file's CID, and its bytes.
    file: String,
    data: Vec<u8>,
    /// The deploy answer.
    d: Value,
    /// Whether the tests run as root (then containers run as `nobody`, or as asked).
    me_root: bool,
}

static DPROBE: tokio::sync::OnceCell<tokio::sync::Mutex<Dprobe>> =
    tokio::sync::OnceCell::const_new();

async fn dprobe() -> tokio::sync::MutexGuard<'static, Dprobe> {
    DPROBE
        .get_or_init(|| async {
            let build = tempfile::tempdir().unwrap();
            let image = probe_image(build.path());
            let me_root = {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(build.path()).unwrap().uid() == 0
            };
            let s = start_shared(&["--max-containers", "1", "--container-queue", "1"]);
            let r = deploy(&s, &dprobe_manifest(&image)).await;
            assert_eq!(r.status(), 201);
            let d: Value = r.json().await.unwrap();
            let data = rand_bytes(300_000, 3);
            let file = add_cid(&s, "", &[("f.bin", &data)]).await;
            tokio::sync::Mutex::new(Dprobe {
                s,
                image,
                file,
                data,
                d,
                me_root,
            })
        })
        .await
        .lock()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_pins_the_image_by_id_and_names_a_missing_image() {
    let p = dprobe().await;
    let s = &p.s;
    assert!(p.d["function_cid"].as_str().is_some(), "{}", p.d);
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &p.image]);
    let def: Value = get_json(&format!("{}/v1/functions/dprobe", s.url)).await;
    assert_eq!(def["definition"]["image_id"], id.trim());
    assert_eq!(def["definition"]["kind"], "docker");
    let r = deploy(
        s,
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
        s,
        &json!({"kind": "docker", "image": p.image, "limits": {"ram": 1}}),
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_input_is_the_one_file_under_inputs_and_stdout_is_the_stored_output() {
    let p = dprobe().await;
    let (s, file) = (&p.s, &p.file);
    let r = run_dprobe(s, &format!("cid={file}&mode=cat")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, headers::EXIT_CODE), "0");
    let out_cid = header(&r, headers::OUTPUT_CID);
    assert_eq!(r.bytes().await.unwrap().to_vec(), p.data);
    assert_eq!(
        gateway_bytes(s, &out_cid).await,
        p.data,
        "the output is stored"
    );

    // /inputs holds exactly the input: for a file, the one file named by its CID
    let r = run_dprobe(s, &format!("cid={file}&mode=ls")).await;
    assert_eq!(
        r.text().await.unwrap(),
        format!("input=/inputs/{file}\n{file} 300000\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_input_is_exactly_its_tree_under_inputs_first_time_and_cached() {
    let p = dprobe().await;
    let s = &p.s;
    // every entry (hidden names, symlinks, empty directories) and nothing else
    let (ct, body) = multipart(&[
        ("d", "application/x-directory", b""),
        ("d%2F.complete", "application/octet-stream", b"mine"),
        ("d%2Fa.txt", "application/octet-stream", b"aa"),
        ("d%2Fempty", "application/x-directory", b""),
        ("d%2Flink", "application/symlink", b"a.txt"),
        ("d%2Fsub%2Fb.txt", "application/octet-stream", b"bbb"),
    ]);
    let (status, text) = add_body(s, "", &ct, body).await;
    assert_eq!(status, 200);
    let dir = ndjson(&text).last().unwrap()["Hash"]
        .as_str()
        .unwrap()
        .to_string();
    let hits = metric(s, "ipfaas_docker_export_cache_hits_total").await;
    for _ in 0..2 {
        let r = run_dprobe(s, &format!("cid={dir}&mode=ls&cache=false")).await;
        assert_eq!(
            r.text().await.unwrap(),
            "input=/inputs\n.complete 4\na.txt 2\nempty/\nlink -> a.txt\nsub/\nsub/b.txt 3\n"
        );
    }
    assert_eq!(
        metric(s, "ipfaas_docker_export_cache_hits_total").await,
        hits + 1.0,
        "the second run used the export cache"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn params_are_environment_variables_and_outputs_become_a_directory() {
    let p = dprobe().await;
    let (s, file) = (&p.s, &p.file);
    let r = run_dprobe(s, &format!("cid={file}&mode=env&greeting=hello")).await;
    assert_eq!(
        r.text().await.unwrap(),
        format!("greeting=hello cid={file}\n")
    );
    let r = run_dprobe(s, &format!("cid={file}&mode=outputs")).await;
    assert_eq!(r.status(), 200);
    let outs = header(&r, headers::OUTPUTS_CID);
    let got = get_text(&format!("{}/ipfs/{outs}/result.txt", s.url)).await;
    assert_eq!(got, "done\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_have_no_network_a_read_only_root_and_input_and_no_privileges() {
    let p = dprobe().await;
    let (s, file) = (&p.s, &p.file);
    let r = run_dprobe(s, &format!("cid={file}&mode=escape")).await;
    assert_eq!(
        r.text().await.unwrap(),
        "net=refused\ninputs=Read-only file system\nroot=Read-only file system\n"
    );
    // The node runs as root here, so the container runs as nobody, and /outputs belongs to it
    // alone. A setuid file or a world-writable drop is not possible.
    let r = run_dprobe(s, &format!("cid={file}&mode=whoami")).await;
    let who = r.text().await.unwrap();
    if p.me_root {
        assert_eq!(who, "uid=65534 gid=65534 outputs=700 key=-\n");
    } else {
        assert!(who.ends_with("outputs=700 key=-\n"), "{who}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_over_the_quotas_or_with_special_files_are_refused_while_it_runs() {
    let p = dprobe().await;
    // refused before publish reads them; a container over the quotas is stopped while it runs
    // (it would sleep into a 504 otherwise): a sparse file's size and disk taken past a file's
    // end both count
    for mode in ["fifo", "sparse", "sparse_wait", "prealloc"] {
        let t = Instant::now();
        let r = run_dprobe(&p.s, &format!("cid={}&mode={mode}", p.file)).await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_zero_exit_a_timeout_and_an_oom_kill_map_to_statuses() {
    let p = dprobe().await;
    let (s, file) = (&p.s, &p.file);
    let exits = metric(s, "ipfaas_docker_exits_total{code=\"3\"}").await;
    let r = run_dprobe(s, &format!("cid={file}&mode=fail")).await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["exit_code"], 3);
    assert_eq!(e["logs"], "failing on purpose\n");
    assert_eq!(
        metric(s, "ipfaas_docker_exits_total{code=\"3\"}").await,
        exits + 1.0
    );
    let t = Instant::now();
    let r = run_dprobe(s, &format!("cid={file}&mode=sleep")).await;
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let r = run_dprobe(s, &format!("cid={file}&mode=oom")).await;
    let st = r.status();
    let e: Value = r.json().await.unwrap();
    assert_eq!(st, 413, "{e}");
    assert_eq!(e["oom_killed"], true);
    assert_eq!(leftovers(&p.image), 0, "every container is removed");
    assert_eq!(metric(s, "ipfaas_docker_active_containers").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_one_running_and_one_waiting_callers_get_429_with_retry_after() {
    let p = dprobe().await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = format!(
            "{}/v1/functions/dprobe/invoke?cid={}&mode=sleep",
            p.s.url, p.file
        );
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
    assert_eq!(leftovers(&p.image), 0, "every container is removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_who_hang_up_have_their_containers_removed_and_slots_freed() {
    let p = dprobe().await;
    let (s, file) = (&p.s, &p.file);
    // long before the 3 s limit; the next call is served, not 429
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
    while leftovers(&p.image) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "containers outlived their callers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = run_dprobe(s, &format!("cid={file}&mode=env&greeting=after")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(metric(s, "ipfaas_docker_active_containers").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_kept_by_the_node_given_at_run_time_and_never_shown() {
    let p = dprobe().await;
    let (s, file) = (&p.s, &p.file);
    // named in the manifest, kept by the node, given at run time; `env` values are shown only
    // to a caller with the token (none is set here: to nobody)
    let r = deploy(
        s,
        &json!({"name": "dsecret", "kind": "docker", "image": p.image, "user": "1234:1234",
                "env": {"PUBLIC_NOTE": "deployer-only"}, "secrets": ["API_KEY"],
                "limits": {"memory": "64MiB", "timeout": "3s", "pids": 32}}),
    )
    .await;
    let d: Value = r.json().await.unwrap();
    let fcid = d["function_cid"].as_str().unwrap().to_string();
    let r = invoke(s, "dsecret", &format!("cid={file}&mode=whoami")).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("API_KEY"));
    let r = client()
        .put(format!("{}/v1/secrets/API_KEY", s.url))
        .body("s3cret-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = invoke(s, "dsecret", &format!("cid={file}&mode=whoami")).await;
    let who = r.text().await.unwrap();
    if p.me_root {
        assert_eq!(who, "uid=1234 gid=1234 outputs=700 key=s3cret-value\n");
    } else {
        assert!(who.ends_with("key=s3cret-value\n"), "{who}");
    }
    let shown = get_text(&format!("{}/v1/functions/dsecret", s.url)).await;
    assert!(!shown.contains("deployer-only"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let raw = get_text(&format!("{}/ipfs/{fcid}", s.url)).await;
    assert!(raw.contains("API_KEY") && !raw.contains("s3cret"), "{raw}");
    let r = deploy(
        s,
        &json!({"name": "dbad", "kind": "docker", "image": p.image, "user": "root"}),
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_invocation_leaves_a_container_that_the_next_start_removes() {
    // the shared image, and its lock (the containers are counted by image); a server of its own
    let p = dprobe().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let s = Server::start(&repo, &[]);
    assert_eq!(deploy(&s, &dprobe_manifest(&p.image)).await.status(), 201);
    let file = add_cid(&s, "", &[("f.bin", &p.data)]).await;
    let pending = tokio::spawn({
        let url = format!("{}/v1/functions/dprobe/invoke?cid={file}&mode=sleep", s.url);
        async move {
            let _ = client().post(url).send().await;
        }
    });
    let t = Instant::now();
    while leftovers(&p.image) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "container did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.kill9();
    let _ = pending.await;
    assert_eq!(leftovers(&p.image), 1);
    let s = Server::start(&repo, &[]);
    assert_eq!(leftovers(&p.image), 0, "leftover reaped on start");
    // and the function survived the restart
    let r = run_dprobe(&s, &format!("cid={file}&mode=env&greeting=again")).await;
    assert_eq!(r.status(), 200);
    // the restarted node counted that run
    assert_eq!(metric(&s, "ipfaas_docker_start_seconds_count").await, 1.0);
    assert_eq!(
        metric(&s, "ipfaas_docker_exits_total{code=\"0\"}").await,
        1.0
    );
    assert_eq!(metric(&s, "ipfaas_docker_active_containers").await, 0.0);
    s.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_job_running_at_a_crash_is_marked_interrupted_and_runs_again_only_on_retry() {
    // a Docker function may have had effects: it is not run again by itself
    let p = dprobe().await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let s = Server::start(&repo, &[]);
    assert_eq!(deploy(&s, &dprobe_manifest(&p.image)).await.status(), 201);
    let file = add_cid(&s, "", &[("f.bin", &p.data)]).await;
    let r = run_dprobe(&s, &format!("cid={file}&mode=sleep&async=true")).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["job"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Instant::now();
    while leftovers(&p.image) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "container did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.kill9();
    let s = Server::start(&repo, &[]);
    let j = get_json(&format!("{}/v1/jobs/{id}", s.url)).await;
    assert_eq!(j["status"], "interrupted", "{j}");
    assert_eq!(j["pure"], false, "{j}");
    assert!(
        j["error"]["error"].as_str().unwrap().contains("retry"),
        "{j}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get_json(&format!("{}/v1/jobs/{id}", s.url)).await["status"],
        "interrupted"
    );
    let r = client()
        .post(format!("{}/v1/jobs/{id}/retry", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let t = Instant::now();
    let j = loop {
        let j = get_json(&format!("{}/v1/jobs/{id}", s.url)).await;
        if !matches!(j["status"].as_str(), Some("queued" | "running")) {
            break j;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // the probe sleeps past its 3 s limit: the retry ran, and timed out as a call would
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["http_status"], 504, "{j}");
    assert_eq!(j["attempts"], 2, "{j}");
    s.stop();
    assert_eq!(leftovers(&p.image), 0);
}
