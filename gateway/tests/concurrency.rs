//! The same work arriving at once, as a load test sends it: identical adds, first invocations
//! of a peer's function, deploys of one bundle, and builds beside huge refused bundles. Every
//! request must succeed (or be refused for its own fault), shared work must be done once, and
//! the node must keep answering meanwhile.

mod common;

use common::*;
use ipfaas_runtime::invoke::headers;
use std::io::Write;
use std::time::{Duration, Instant};

/// Sixty identical adds at once, for a small and a large file, three rounds of fresh content
/// each: every one answers 200 with the same CID, and the root is pinned once.
#[tokio::test(flavor = "multi_thread")]
async fn identical_adds_at_once_all_succeed_with_one_pin() {
    let repo = tempfile::tempdir().unwrap();
    let s = Server::start(repo.path(), &[]);
    for (size, round) in [100 << 10, 4 << 20]
        .into_iter()
        .flat_map(|size| (0..3u64).map(move |r| (size, r)))
    {
        // odd seeds: the generator makes each seed odd, so 2k and 2k+1 would give the same data
        let data = rand_bytes(size, 7001 + 2 * round + size as u64);
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let (url, data) = (s.api("add?pin=true"), data.clone());
                tokio::spawn(async move {
                    let (ct, body) = multipart(&[("same.bin", "application/octet-stream", &data)]);
                    let r = client()
                        .post(url)
                        .header("content-type", ct)
                        .body(body)
                        .timeout(Duration::from_secs(120))
                        .send()
                        .await
                        .unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                })
            })
            .collect();
        let mut cids = std::collections::BTreeSet::new();
        for t in tasks {
            let (st, text) = t.await.unwrap();
            assert_eq!(st, 200, "{size} bytes, round {round}: {text}");
            let last = ndjson(&text).pop().unwrap();
            cids.insert(last["Hash"].as_str().unwrap().to_string());
        }
        assert_eq!(cids.len(), 1, "{size} bytes, round {round}: {cids:?}");
        let cid = cids.pop_first().unwrap();
        let pins = post_json(&s, &format!("pin/ls?arg={cid}")).await;
        assert_eq!(pins["Keys"].as_object().map(|k| k.len()), Some(1), "{pins}");
    }
    // one record per pin, no temp file left behind by the races
    let leftovers: Vec<_> = std::fs::read_dir(repo.path().join("pins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Sixteen first invocations at once of a function deployed on another node: each must wait
/// for the one export and the one compilation, not load another's half-written code.
#[tokio::test(flavor = "multi_thread")]
async fn first_invocations_of_a_peer_function_compile_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), None, &[]);
    let a_addr = swarm_addr(&a).await;
    let b = start_node(&dir.path().join("b"), Some(&a_addr), &[]);
    wait_connected(&b, &peer_id(&a).await).await;
    let d = deploy_files(
        &a,
        &[
            (
                "function.py",
                b"def main(input):\n    return {'n': len(input.read())}\n",
            ),
            ("ipfaas.toml", b"name = \"shared\"\n"),
        ],
    )
    .await;
    let fcid = d["function_cid"].as_str().unwrap().to_string();
    let input = add_cid(&b, "", &[("in.txt", b"twelve bytes")]).await;
    assert_eq!(metric(&b, "ipfaas_component_compiles_total").await, 0.0);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let url = format!("{}/v1/functions/{fcid}/invoke?cid={input}", b.url);
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await
                    .unwrap();
                let cid = header(&r, headers::OUTPUT_CID);
                (r.status().as_u16(), cid, r.text().await.unwrap())
            })
        })
        .collect();
    let mut outputs = std::collections::BTreeSet::new();
    for t in tasks {
        let (st, cid, text) = t.await.unwrap();
        assert_eq!(st, 200, "{text}");
        assert_eq!(text, "{\"n\": 12}");
        outputs.insert(cid);
    }
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(metric(&b, "ipfaas_component_compiles_total").await, 1.0);
}

/// Deploys of one bundle at once share one build; builds of different bundles run side by
/// side (one whose import spins for a minute does not hold up the next); and while builds run
/// and huge bundles are refused, the node answers `/healthz` at once.
#[tokio::test(flavor = "multi_thread")]
async fn deploys_share_builds_and_the_node_stays_responsive() {
    let repo = tempfile::tempdir().unwrap();
    let s = Server::start(repo.path(), &[]);
    let deploy = |files: Vec<(&'static str, &'static [u8])>| try_deploy(s.url.clone(), files);
    // four deploys of one bundle: one build, one function CID
    let builds = metric(
        &s,
        "ipfaas_build_duration_seconds_count{stage=\"component\"}",
    )
    .await;
    let same = || {
        deploy(vec![
            ("function.py", b"def main(input):\n    return 'same'\n"),
            ("ipfaas.toml", b"name = \"same\"\n"),
        ])
    };
    let all = futures::future::join_all((0..4).map(|_| same())).await;
    let mut cids = std::collections::BTreeSet::new();
    let mut reused = 0;
    for (st, v) in &all {
        assert_eq!(*st, 201, "{v}");
        cids.insert(v["function_cid"].as_str().unwrap().to_string());
        reused += v["reused_build"].as_bool().unwrap() as usize;
    }
    assert_eq!(cids.len(), 1, "{cids:?}");
    assert_eq!(reused, 3, "{all:?}");
    assert_eq!(
        metric(
            &s,
            "ipfaas_build_duration_seconds_count{stage=\"component\"}"
        )
        .await,
        builds + 1.0
    );

    // a build that spins until the deploy-time limit (60 s), and beside it a small one, which
    // must finish first; meanwhile four bundles of 100,000 entries are refused and /healthz
    // is sampled
    let spin = tokio::spawn(deploy(vec![
        (
            "function.py",
            b"while True:\n    pass\n\ndef main(input):\n    return 1\n",
        ),
        (
            "ipfaas.toml",
            b"name = \"spin\"\nfuel = 1000000000000\ntimeout = \"1s\"\n",
        ),
    ]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let small = tokio::spawn(deploy(vec![
        ("function.py", b"def main(input):\n    return 'small'\n"),
        ("ipfaas.toml", b"name = \"small\"\n"),
    ]));
    let huge = huge_zip(100_000);
    let refused: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (format!("{}/v1/functions", s.url), huge.clone());
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .header("content-type", "application/zip")
                    .body(body)
                    .timeout(Duration::from_secs(300))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    while !small.is_finished() {
        let t = Instant::now();
        let r = client()
            .get(format!("{}/healthz", s.url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !spin.is_finished(),
        "the small build waited for the spinning one"
    );
    let (st, v) = small.await.unwrap();
    assert_eq!(st, 201, "{v}");
    for t in refused {
        let (st, text) = t.await.unwrap();
        assert_eq!(st, 400, "{text}");
        assert!(text.contains("more than 20000 files"), "{text}");
    }
    let (st, v) = spin.await.unwrap();
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("deploy-time limit"),
        "{v}"
    );
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "/healthz during builds: {} samples, median {:?}, p99 {p99:?}",
        latencies.len(),
        latencies[latencies.len() / 2]
    );
    // the target (measured here at 9 ms in the debug build, with the other tests running)
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    // and the small function runs
    let f = add_cid(&s, "", &[("x", b"x")]).await;
    let r = client()
        .post(format!("{}/v1/functions/small/invoke?cid={f}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "small");
}

/// A zip of `n` one-byte files.
fn huge_zip(n: usize) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..n {
        z.start_file(format!("f{i}.txt"), opts).unwrap();
        z.write_all(b"x").unwrap();
    }
    z.finish().unwrap().into_inner()
}
