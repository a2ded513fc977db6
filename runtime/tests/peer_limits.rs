//! The swarm port is open to anyone: the limits on what libp2p connections may cost, tested
//! with real nodes dialling each other on loopback.

use ipfaas_runtime::store::{Store, StoreConfig};
use rust_ipfs::Multiaddr;
use std::time::{Duration, Instant};

/// A listening node; `max_memory` bounds the memory past which it takes no new connections.
async fn node(dir: &std::path::Path, max_memory: Option<u64>) -> Store {
    let cfg = StoreConfig {
        repo: dir.into(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap: vec![],
        fetch_timeout: Duration::from_secs(2),
        offline: false,
        storage_max: None,
        p2p_max_memory: max_memory,
        protocols: vec![],
    };
    Store::open(cfg, &prometheus::Registry::new())
        .await
        .unwrap()
}

/// The node's listen address with its `/p2p/` id.
async fn addr(s: &Store) -> Multiaddr {
    let t = Instant::now();
    loop {
        if let Some(a) = s.addresses().await.unwrap().into_iter().next() {
            return format!("{a}/p2p/{}", s.peer_id()).parse().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_past_its_memory_bound_takes_no_new_connections() {
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // Any process uses more than one byte: this node is always "past its bound".
    let full = node(d1.path(), Some(1)).await;
    let a = node(d2.path(), None).await;
    let b = node(d3.path(), None).await;
    let (full_addr, b_addr) = (addr(&full).await, addr(&b).await);

    // With the default bound (80% of the machine) two nodes connect: the check can pass.
    a.node().connect(b_addr.clone()).await.expect("a dials b");
    assert!(a.node().is_connected(b.peer_id()).await.unwrap());

    // Inbound: the node refuses a peer that dials it ...
    let r = a.node().connect(full_addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        r.is_err() || !full.node().is_connected(a.peer_id()).await.unwrap(),
        "a node past its memory bound accepted a connection"
    );
    assert!(!full.node().is_connected(a.peer_id()).await.unwrap());
    // ... and outbound: it dials no one either.
    let e = full
        .node()
        .connect(b_addr)
        .await
        .expect_err("a node past its memory bound dialled out");
    assert!(
        format!("{e:#}").to_lowercase().contains("memory")
            || format!("{e:?}").contains("MemoryUsageLimitExceeded"),
        "refused for another reason: {e:#} / {e:?}"
    );
    assert!(full.node().connected().await.unwrap().is_empty());
    // The node itself is fine: it still serves its own data.
    let cid = full
        .add_bytes(bytes::Bytes::from_static(b"still here"))
        .await
        .unwrap();
    assert!(cid.starts_with("Qm") || cid.starts_with("baf"), "{cid}");
    for s in [full, a, b] {
        s.shutdown().await;
    }
}
