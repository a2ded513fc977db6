//! A network of real nodes on loopback: three `ipfaas serve` processes joined by a bootstrap
//! node, plus a plain rust-ipfs peer (no ipfaas code) for interop and forged answers.

mod common;

use common::*;
use ipfaas_runtime::invoke::headers;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

const DIGEST_PY: &str = r#"
import hashlib

def main(input, params):
    if params.get("whole"):
        # the unbounded read, in one call
        b = input.read()
        return {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b), "tag": "whole"}
    h = hashlib.sha256()
    n = 0
    while True:
        b = input.read(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    return {"sha256": h.hexdigest(), "bytes": n, "tag": params.get("tag", "")}
"#;

/// Burns CPU for `n` loop turns, then reads the input: long enough to kill its host mid-run.
const SPIN_PY: &str = r#"
def main(input, params):
    x = 0
    for i in range(int(params["n"])):
        x ^= i
    return {"x": x, "bytes": len(input.read())}
"#;

fn hex_sha256(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Invokes and checks success; returns (output JSON, output CID, ran-on header).
async fn invoke_ok(s: &Server, f: &str, query: &str) -> (Value, String, String) {
    let r = invoke(s, f, query).await;
    let status = r.status();
    let cid = header(&r, headers::OUTPUT_CID);
    let ran_on = header(&r, headers::RAN_ON);
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{query}: {text}");
    (serde_json::from_str(&text).unwrap(), cid, ran_on)
}

/// Three nodes on loopback and what the phases below share. B is the bootstrap node, the hub
/// that runs functions for any peer; A and C know only B. A deployed `digest` and added a
/// 200 KiB input (`small`), and ran it once (`here_cid`).
struct Net {
    ra: std::path::PathBuf,
    rb: std::path::PathBuf,
    rc: std::path::PathBuf,
    a: Server,
    b: Server,
    c: Server,
    ida: String,
    idb: String,
    idc: String,
    b_addr: String,
    fcid: String,
    small: Vec<u8>,
    small_cid: String,
    here_cid: String,
}

/// One network, its phases in order: data and functions moving between nodes, computation
/// going to the data, verification and the peer policy, then nodes dying and coming back.
#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_data_and_functions_forward_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let n = three_nodes(dir.path()).await;
    others_run_a_function_deployed_on_one_node(&n).await;
    computation_goes_to_the_node_that_holds_the_data(&n).await;
    verification_agrees_and_the_peer_policy_holds(&n).await;
    let n = a_holder_dying_mid_forward_fails_over_to_the_other(n).await;
    let n = a_read_completes_when_one_source_dies_mid_transfer(n).await;
    the_restarted_bootstrap_node_is_dialled_again(n).await;
}

async fn three_nodes(dir: &std::path::Path) -> Net {
    let (ra, rb, rc) = (dir.join("a"), dir.join("b"), dir.join("c"));
    // Peer invocations: C takes them from its bootstrap peer B only (the default), A from B
    // and, named with --peer-allow, from C.
    let b = start_node(&rb, None, &["--peer-invoke", "any"]);
    let b_addr = swarm_addr(&b).await;
    // C reads its bootstrap list and forwarding threshold from its config file: it forwards
    // invocations on inputs of 1 MiB or more that it does not hold.
    std::fs::create_dir_all(&rc).unwrap();
    std::fs::write(
        rc.join("config.toml"),
        format!("bootstrap = [\"{b_addr}\"]\nforward_threshold = \"1MiB\"\n"),
    )
    .unwrap();
    let c = start_node(&rc, None, &[]);
    let idc = peer_id(&c).await;
    let a = start_node(&ra, Some(&b_addr), &["--peer-allow", &idc]);
    let (ida, idb) = (peer_id(&a).await, peer_id(&b).await);
    wait_connected(&a, &idb).await;
    wait_connected(&c, &idb).await;

    // `ipfaas peers` lists the connection too
    let out = cli_ok(&rb, &["peers"]);
    assert!(out.contains(&ida) && out.contains(&idc), "{out}");
    let kubo_peers = post_json(&b, "swarm/peers").await;
    assert!(
        kubo_peers["Peers"].as_array().unwrap().len() >= 2,
        "{kubo_peers}"
    );

    // A deploys the function and adds the inputs
    let fcid = deploy(
        &a,
        &[
            ("function.py", DIGEST_PY.as_bytes()),
            ("ipfaas.toml", b"name = \"digest\"\n"),
        ],
    )
    .await;
    let small = rand_bytes(200 << 10, 1);
    let small_cid = add_cid(&a, "", &[("small.bin", &small)]).await;
    let (here, here_cid, _) = invoke_ok(&a, "digest", &format!("cid={small_cid}")).await;
    assert_eq!(here["sha256"], hex_sha256(&small));

    Net {
        ra,
        rb,
        rc,
        a,
        b,
        c,
        ida,
        idb,
        idc,
        b_addr,
        fcid,
        small,
        small_cid,
        here_cid,
    }
}

/// Added on A, invoked on C and on B: the same output CID, and nobody but A builds.
async fn others_run_a_function_deployed_on_one_node(n: &Net) {
    let (a, b, c, rb, small) = (&n.a, &n.b, &n.c, &n.rb, &n.small);
    let (fcid, small_cid, here_cid) = (n.fcid.clone(), n.small_cid.clone(), n.here_cid.clone());
    // invoke on C (by function CID: names are per node): C finds A in the DHT,
    // fetches the function's artifacts and the input, and runs it itself.
    let t = Instant::now();
    let (on_c, c_cid, ran_on) = invoke_ok(c, &fcid, &format!("cid={small_cid}")).await;
    eprintln!(
        "first invocation on C (fetch + precompile) took {:?}",
        t.elapsed()
    );
    assert_eq!(on_c["sha256"], hex_sha256(small));
    assert_eq!(on_c["bytes"], small.len());
    assert_eq!(ran_on, "", "a small input runs where it is asked");
    assert_eq!(c_cid, here_cid, "same function + input ⇒ same output CID");

    // deployed on A, invoked on B: the same output CID, and B never built anything
    let (_, b_cid, _) = invoke_ok(b, &fcid, &format!("cid={small_cid}&cache=false")).await;
    assert_eq!(b_cid, here_cid);
    assert_eq!(
        metric(
            b,
            "ipfaas_build_duration_seconds_count{stage=\"component\"}"
        )
        .await,
        0.0
    );
    assert_eq!(
        metric(
            c,
            "ipfaas_build_duration_seconds_count{stage=\"component\"}"
        )
        .await,
        0.0
    );
    assert!(
        metric(
            a,
            "ipfaas_build_duration_seconds_count{stage=\"component\"}"
        )
        .await
            >= 1.0
    );
    // B gives A's function a name of its own, without a build: fetched, pinned, runnable
    let r = client()
        .put(format!("{}/v1/functions/digest-of-a", b.url))
        .json(&serde_json::json!({ "function_cid": fcid }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, named_cid, _) =
        invoke_ok(b, "digest-of-a", &format!("cid={small_cid}&cache=false")).await;
    assert_eq!(named_cid, here_cid);
    assert!(cli_ok(rb, &["pin", "ls"]).contains(&fcid));
    let vs = get_json(&format!("{}/v1/functions/digest-of-a/versions", b.url)).await;
    assert_eq!(vs["versions"][0]["how"], "point", "{vs}");
    assert_eq!(
        metric(
            b,
            "ipfaas_build_duration_seconds_count{stage=\"component\"}"
        )
        .await,
        0.0
    );
    assert!(metric(c, "ipfaas_bitswap_received_bytes_total").await > 1e6);
    assert!(metric(a, "ipfaas_bitswap_sent_bytes_total").await > 1e6);

    // B runs it on 20 MiB that only A holds (under B's forwarding threshold): `input.read()`
    // returns all of it, read through B's store from A over bitswap
    let large = rand_bytes((20 << 20) + 7, 5);
    let large_cid = add_cid(a, "", &[("large.bin", &large)]).await;
    let (whole, _, ran_on) = invoke_ok(b, &fcid, &format!("cid={large_cid}&whole=1")).await;
    assert_eq!(ran_on, "");
    assert_eq!(whole["bytes"], large.len());
    assert_eq!(whole["sha256"], hex_sha256(&large));
}

/// Compute-to-data: C forwards an invocation on a large input that only A holds.
async fn computation_goes_to_the_node_that_holds_the_data(n: &Net) {
    let (a, c) = (&n.a, &n.c);
    let ida = n.ida.clone();
    let fcid = n.fcid.clone();
    // the 3 MiB input is held by A only, so C forwards to A
    let big = rand_bytes(3 << 20, 2);
    let big_cid = add_cid(a, "", &[("big.bin", &big)]).await;
    let fetched_before = metric(c, "ipfaas_store_fetched_blocks_total").await;
    let (fwd, fwd_cid, ran_on) = invoke_ok(c, &fcid, &format!("cid={big_cid}&tag=far")).await;
    assert_eq!(ran_on, ida, "C should have forwarded to the holder A");
    assert_eq!(fwd["sha256"], hex_sha256(&big));
    assert_eq!(fwd["tag"], "far");
    // C fetched the input's root (to learn its size), the output and the logs: not the
    // 13 blocks of the input
    let fetched = metric(c, "ipfaas_store_fetched_blocks_total").await - fetched_before;
    assert!(fetched <= 4.0, "C fetched {fetched} blocks");
    // A ran it and stored the output; C fetched the output by CID
    let (on_a, a_cid, _) = invoke_ok(a, &fcid, &format!("cid={big_cid}&tag=far")).await;
    assert_eq!(on_a, fwd);
    assert_eq!(a_cid, fwd_cid);
    assert!(
        metric(
            c,
            "ipfaas_forwarded_invocations_total{direction=\"out\",outcome=\"ok\"}"
        )
        .await
            >= 1.0
    );
    assert!(metric(a, "ipfaas_forwarded_invocations_total").await >= 1.0);
}

async fn verification_agrees_and_the_peer_policy_holds(n: &Net) {
    let (a, b, c, rc) = (&n.a, &n.b, &n.c, &n.rc);
    let (idb, idc) = (n.idb.clone(), n.idc.clone());
    let (fcid, small_cid, here_cid) = (n.fcid.clone(), n.small_cid.clone(), n.here_cid.clone());
    // C re-executes on both other nodes; all agree
    let v = verify(c, &fcid, &small_cid, 2).await;
    assert_eq!(v["agree"], true, "{v}");
    assert_eq!(v["answered"], 2, "{v}");
    assert_eq!(v["output_cid"], here_cid.as_str(), "{v}");
    let out = cli_ok(rc, &["verify", &fcid, &small_cid, "--peers", "2"]);
    assert_eq!(out.matches("agrees").count(), 2, "{out}");
    assert!(metric(c, "ipfaas_verifications_total{result=\"agree\"}").await >= 2.0);
    // asking for more peers than there are is reported, not faked
    let v = verify(c, &fcid, &small_cid, 5).await;
    assert_eq!(v["agree"], false, "{v}");
    assert_eq!(v["answered"], 2, "{v}");
    // the peer policy: A and C run it for B, their bootstrap peer (which C knows by address
    // only); C refuses A, which is neither its bootstrap peer nor allowed
    let v = verify(b, &fcid, &small_cid, 2).await;
    assert_eq!(v["answered"], 2, "{v}");
    assert_eq!(v["agree"], true, "{v}");
    let refused = "ipfaas_forwarded_invocations_total{direction=\"in\",outcome=\"refused\"}";
    assert_eq!(metric(c, refused).await, 0.0);
    let c_addr = format!("{}/p2p/{idc}", swarm_addr(c).await);
    let r = post(a, &format!("swarm/connect?arg={c_addr}")).await;
    assert_eq!(r.status(), 200);
    wait_connected(a, &idc).await;
    let v = verify(a, &fcid, &small_cid, 2).await;
    assert_eq!(v["answered"], 1, "only B answers A: {v}");
    assert_eq!(v["agree"], false, "{v}");
    assert_eq!(v["peers"][0]["peer"], idb.as_str(), "{v}");
    assert_eq!(metric(c, refused).await, 1.0);
    assert_eq!(metric(a, refused).await, 0.0);
}

/// A holder dies mid-forward: C fails over to the other holder. The killed holder comes back
/// on its repo (same peer id).
async fn a_holder_dying_mid_forward_fails_over_to_the_other(mut n: Net) -> Net {
    let (a, b) = (n.a, n.b);
    let (c, ra, rb) = (&n.c, &n.ra, &n.rb);
    let (ida, idb, idc, b_addr) = (&n.ida, &n.idb, &n.idc, &n.b_addr);
    let small_cid = &n.small_cid;
    let spin_cid = deploy(
        &a,
        &[
            ("function.py", SPIN_PY.as_bytes()),
            (
                "ipfaas.toml",
                b"name = \"spin\"\nfuel = 1000000000000\ntimeout = \"300s\"\n",
            ),
        ],
    )
    .await;
    let dual = rand_bytes(2 << 20, 4);
    let dual_cid = add_cid(&a, "", &[("dual.bin", &dual)]).await;
    assert_eq!(add_cid(&b, "", &[("dual.bin", &dual)]).await, dual_cid);
    // B needs the function's artifacts before the clock starts, so both run equally long
    invoke_ok(&b, &spin_cid, &format!("cid={small_cid}&n=1")).await;
    let query = format!("cid={dual_cid}&n=20000000");
    let call = {
        let (url, spin_cid) = (c.url.clone(), spin_cid.clone());
        tokio::spawn(async move {
            let r = client()
                .post(format!("{url}/v1/functions/{spin_cid}/invoke?{query}"))
                .timeout(Duration::from_secs(300))
                .send()
                .await
                .unwrap();
            let ran_on = header(&r, headers::RAN_ON);
            (r.status().as_u16(), ran_on, r.text().await.unwrap())
        })
    };
    let (mut a_opt, mut b_opt) = (Some(a), Some(b));
    let victim = loop {
        if metric(a_opt.as_ref().unwrap(), "ipfaas_active_instances").await >= 1.0 {
            a_opt.take().unwrap().kill9();
            break ida.clone();
        }
        if metric(b_opt.as_ref().unwrap(), "ipfaas_active_instances").await >= 1.0 {
            b_opt.take().unwrap().kill9();
            break idb.clone();
        }
        assert!(
            !call.is_finished(),
            "the invocation finished before a holder could be killed; raise n"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, ran_on, text) = call.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_ne!(ran_on, victim, "{text}");
    assert!(ran_on == *ida || ran_on == *idb, "ran on {ran_on:?}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["bytes"], dual.len());
    assert!(
        metric(
            c,
            "ipfaas_forwarded_invocations_total{direction=\"out\",outcome=\"failed_over\"}"
        )
        .await
            >= 1.0
    );
    let (a, b) = match (a_opt, b_opt) {
        (None, Some(b)) => (start_node(ra, Some(b_addr), &["--peer-allow", idc]), b),
        (Some(a), None) => {
            let port = b_addr.split('/').nth(4).unwrap().to_string();
            let listen = format!("/ip4/127.0.0.1/tcp/{port}");
            let args = ["--swarm-listen", &listen, "--peer-invoke", "any"];
            (a, start_node(rb, None, &args))
        }
        _ => unreachable!(),
    };
    wait_connected(&a, idb).await;
    wait_connected(c, idb).await;
    n.a = a;
    n.b = b;
    n
}

/// A dies mid-transfer; B holds the same data, so C's read still completes.
async fn a_read_completes_when_one_source_dies_mid_transfer(n: Net) -> Net {
    let Net { a, b, c, .. } = &n;
    let huge = rand_bytes(96 << 20, 3);
    let huge_cid = add_cid(a, "", &[("huge.bin", &huge)]).await;
    assert_eq!(add_cid(b, "", &[("huge.bin", &huge)]).await, huge_cid);
    let mut r = client()
        .get(format!("{}/ipfs/{huge_cid}", c.url))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = Vec::with_capacity(huge.len());
    let mut killed = false;
    while let Some(chunk) = r.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
        if !killed && got.len() >= 4 << 20 {
            a.crash();
            killed = true;
        }
    }
    assert!(killed, "the transfer finished before A could be killed");
    assert_eq!(got.len(), huge.len());
    assert!(got == huge, "C's copy differs");

    n
}

/// The bootstrap node restarts (same repo, so same peer id, same port): C dials it again.
async fn the_restarted_bootstrap_node_is_dialled_again(n: Net) {
    let Net {
        rb,
        a,
        b,
        c,
        idb,
        b_addr,
        ..
    } = n;
    drop(a);
    let port = b_addr.split('/').nth(4).unwrap().to_string();
    b.stop();
    let gone = Instant::now();
    loop {
        let v = get_json(&format!("{}/v1/peers", c.url)).await;
        if !v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer"] == idb.as_str())
        {
            break;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(20),
            "C still lists B: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let b = Server::start(&rb, &["--swarm-listen", &listen]);
    assert_eq!(peer_id(&b).await, idb);
    wait_connected(&c, &idb).await;
}

/// Deploys a bundle of (path, bytes); returns the function CID.
async fn deploy(s: &Server, files: &[(&str, &[u8])]) -> String {
    deploy_files(s, files).await["function_cid"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn verify(s: &Server, function: &str, cid: &str, peers: usize) -> Value {
    let r = client()
        .post(format!("{}/v1/verify", s.url))
        .json(&serde_json::json!({"function": function, "cid": cid, "peers": peers}))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn gateway_status(s: &Server, path: &str) -> u16 {
    client()
        .get(format!("{}/ipfs/{path}", s.url))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A plain rust-ipfs node (not ipfaas): bitswap over tcp + noise + yamux, in memory.
async fn plain_peer() -> (rust_ipfs::Ipfs, String) {
    let node = rust_ipfs::builder::DefaultIpfsBuilder::new()
        .with_bitswap()
        .with_identify(Default::default())
        .enable_tcp()
        .add_listening_addr("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let id = node.keypair().public().to_peer_id();
    let t = Instant::now();
    let addr = loop {
        if let Some(a) = node.listening_addresses().await.unwrap().into_iter().next() {
            break a.with(rust_ipfs::Protocol::P2p(id));
        }
        assert!(t.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (node, addr.to_string())
}

/// A node that crashes and comes back (same repo, peer id and port) is a full bitswap peer
/// again: it serves what it adds and fetches what its peer holds. Upstream rust-ipfs dropped
/// such a peer for good (see `vendor/pollable-map`).
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_peer_serves_and_fetches_again() {
    let dir = tempfile::tempdir().unwrap();
    let (rb, rc) = (dir.path().join("b"), dir.path().join("c"));
    let wait = ["--fetch-timeout", "10s"];
    let b = start_node(&rb, None, &wait);
    let b_addr = swarm_addr(&b).await;
    let idb = peer_id(&b).await;
    let c = start_node(&rc, Some(&b_addr), &wait);
    wait_connected(&c, &idb).await;
    let read = |s: &Server, cid: &str| {
        let url = format!("{}/ipfs/{cid}", s.url);
        async move {
            let r = client().get(url).send().await.unwrap();
            let status = r.status();
            (status, r.bytes().await.unwrap().to_vec())
        }
    };
    let before = rand_bytes(300 << 10, 11);
    let cid = add_cid(&b, "", &[("before.bin", &before)]).await;
    let (status, got) = read(&c, &cid).await;
    assert_eq!(status, 200);
    assert!(got == before);

    b.kill9();
    let listen = format!("/ip4/127.0.0.1/tcp/{}", b_addr.split('/').nth(4).unwrap());
    let b = start_node(
        &rb,
        None,
        &["--fetch-timeout", "10s", "--swarm-listen", &listen],
    );
    wait_connected(&c, &idb).await;
    let after = rand_bytes(300 << 10, 12);
    let cid = add_cid(&b, "", &[("after.bin", &after)]).await;
    let (status, got) = read(&c, &cid).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    assert!(got == after, "C's copy differs");
    let theirs = rand_bytes(200 << 10, 13);
    let cid = add_cid(&c, "", &[("theirs.bin", &theirs)]).await;
    let (status, got) = read(&b, &cid).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    assert!(got == theirs, "B's copy differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn interop_with_a_plain_ipfs_peer_and_forged_blocks_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, plain_addr) = plain_peer().await;
    let plain_id = plain.keypair().public().to_peer_id().to_string();
    let n = start_node(
        &dir.path().join("n"),
        Some(&plain_addr),
        &["--fetch-timeout", "3s"],
    );
    wait_connected(&n, &plain_id).await;

    // the plain peer fetches what ipfaas added ...
    let data = rand_bytes(1 << 20, 7);
    let cid = add_cid(&n, "", &[("f.bin", &data)]).await;
    let c: cid::Cid = cid.parse().unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        plain.cat_unixfs(c).timeout(Duration::from_secs(20)),
    )
    .await
    .expect("plain peer fetch timed out")
    .unwrap();
    assert!(got.as_ref() == data.as_slice());

    // ... and ipfaas fetches what the plain peer added
    let theirs = rand_bytes(700 << 10, 8);
    let added = plain
        .add_unixfs(bytes::Bytes::from(theirs.clone()))
        .await
        .unwrap();
    let theirs_cid = added.root().cid().unwrap().to_string();
    let r = client()
        .get(format!("{}/ipfs/{theirs_cid}", n.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().as_ref() == theirs.as_slice());

    // a peer that answers with bytes that do not match the CID is ignored: not found, and
    // nothing wrong is stored
    let real = b"the real content of this block\n".to_vec();
    let digest: [u8; 32] = Sha256::digest(&real).into();
    let forged_cid = cid::Cid::new_v1(
        0x55,
        cid::multihash::Multihash::wrap(0x12, &digest).unwrap(),
    );
    plain
        .put_block(&rust_ipfs::Block::new_unchecked(
            forged_cid,
            b"forged bytes".to_vec(),
        ))
        .await
        .unwrap();
    let failures = metric(&n, "ipfaas_store_fetch_failures_total").await;
    let status = gateway_status(&n, &forged_cid.to_string()).await;
    assert_eq!(status, 404, "forged bytes must not be accepted");
    assert!(
        metric(&n, "ipfaas_store_fetch_failures_total").await > failures,
        "the failed fetch is counted"
    );
    assert!(
        !n.repo.join("blockstore").exists()
            || !walk_contains(&n.repo.join("blockstore"), b"forged bytes"),
        "forged bytes were stored"
    );
    // once an honest node has it, the same read succeeds
    let honest = start_node(&dir.path().join("h"), None, &[]);
    let hc = add_cid(&honest, "cid-version=1&raw-leaves=true", &[("r", &real)]).await;
    assert_eq!(hc, forged_cid.to_string());
    let h_addr = swarm_addr(&honest).await;
    let r = post(&n, &format!("swarm/connect?arg={h_addr}")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = client()
        .get(format!("{}/ipfs/{forged_cid}", n.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), real.as_slice());
    plain.exit_daemon().await;
}

fn walk_contains(dir: &Path, needle: &[u8]) -> bool {
    for e in walk(dir) {
        if std::fs::read(&e).is_ok_and(|b| b == needle) {
            return true;
        }
    }
    false
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// With a token set, a read without it serves what the node holds and no more: it does not
/// make the node fetch (and keep) a peer's blocks, unless the operator allows it with
/// --fetch-on-read. With the token, the same read fetches.
#[tokio::test(flavor = "multi_thread")]
async fn anonymous_reads_do_not_fetch_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let holder = start_node(&dir.path().join("h"), None, &[]);
    let h_addr = swarm_addr(&holder).await;
    let idh = peer_id(&holder).await;
    let data = rand_bytes(300 << 10, 11);
    let cid = add_cid(&holder, "", &[("data.bin", &data)]).await;
    let closed = start_node(
        &dir.path().join("t"),
        Some(&h_addr),
        &["--api-token", "tok"],
    );
    let open = start_node(
        &dir.path().join("o"),
        Some(&h_addr),
        &["--api-token", "tok", "--fetch-on-read"],
    );
    wait_connected(&closed, &idh).await;
    wait_connected(&open, &idh).await;
    let fetched = "ipfaas_store_fetched_blocks_total";

    for url in [
        format!("{}/ipfs/{cid}", closed.url),
        format!("{}/v1/functions/{cid}", closed.url),
        format!("{}/ipfs/{cid}?format=tar", closed.url),
    ] {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 404, "{url}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("--fetch-on-read"),
            "{v}"
        );
    }
    for cmd in ["cat", "get", "ls"] {
        let r = post(&closed, &format!("{cmd}?arg={cid}")).await;
        assert_eq!(r.status(), 404, "{cmd}");
    }
    assert_eq!(metric(&closed, fetched).await, 0.0, "nothing was fetched");

    // the token holder's read fetches
    let r = client()
        .get(format!("{}/ipfs/{cid}", closed.url))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == data);
    assert!(metric(&closed, fetched).await > 0.0);

    // --fetch-on-read lets anyone's read fetch
    let r = client()
        .get(format!("{}/ipfs/{cid}", open.url))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-security-policy"), "sandbox");
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == data);
}
