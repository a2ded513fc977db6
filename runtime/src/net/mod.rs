//! The network of nodes: staying connected to the bootstrap peers, finding who holds a CID in
//! the DHT, and network metrics. Content itself moves by bitswap inside the embedded node (see
//! [`crate::store`]); invocations move by the request-response protocol in
//! [`crate::invoke::remote`].
//!
//! Everything here is libp2p as rust-ipfs ships it (TCP, noise, yamux, identify, Kademlia on
//! `/ipfs/kad/1.0.0`, bitswap), so a standard IPFS peer interoperates; nothing is a home-made
//! cluster protocol.

mod metrics;

use crate::error::{Error, Result};
use crate::store::Store;
use cid::Cid;
use futures::StreamExt;
pub use metrics::NetMetrics;
pub use rust_ipfs::{Multiaddr, PeerId, Protocol};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the bootstrap peers are checked and re-dialled when the connection was lost.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(2);

/// A connected peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Peer {
    /// Its peer id.
    pub peer: String,
    /// The remote addresses of its connections.
    pub addrs: Vec<String>,
}

/// This node's place in the network: its store's node, the bootstrap peers it keeps dialled and
/// the network metrics. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    bootstrap: Vec<Multiaddr>,
    metrics: NetMetrics,
    /// Bootstrap addresses last seen unreachable, so each loss is logged once.
    down: std::sync::Mutex<HashSet<Multiaddr>>,
    /// Peer ids the bootstrap addresses name (`/p2p/<id>`).
    named_ids: HashSet<PeerId>,
    /// For each bootstrap address that names no id: the peers connected at it when last
    /// checked (replaced at each check, so a peer that leaves the address loses its place).
    learned_ids: std::sync::Mutex<std::collections::HashMap<Multiaddr, HashSet<PeerId>>>,
}

impl Network {
    /// Starts the bootstrap keeper and the metrics poller. With an offline store this is a
    /// network of one: no peers, no lookups.
    pub fn start(
        store: Store,
        bootstrap: Vec<Multiaddr>,
        registry: &prometheus::Registry,
    ) -> Result<Self> {
        let metrics = NetMetrics::new(registry).map_err(|e| Error::Node(e.to_string()))?;
        let named = bootstrap.iter().filter_map(peer_of).collect();
        let net = Network {
            inner: Arc::new(Inner {
                store,
                bootstrap,
                metrics,
                down: Default::default(),
                named_ids: named,
                learned_ids: Default::default(),
            }),
        };
        if !net.inner.store.is_offline() {
            // The task holds only a weak handle, so dropping the network stops it.
            let weak = Arc::downgrade(&net.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REDIAL_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_kad_bootstrap: Option<Instant> = None;
                let mut had_peers = 0usize;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    let net = Network { inner };
                    let peers = net.keep_bootstrap_connected().await;
                    // Refresh the DHT's routing table when peers change and every few minutes.
                    let stale =
                        last_kad_bootstrap.is_none_or(|t| t.elapsed() > Duration::from_secs(300));
                    if peers > 0 && (peers != had_peers || stale) {
                        let _ = net.inner.store.node().bootstrap().await;
                        last_kad_bootstrap = Some(Instant::now());
                    }
                    had_peers = peers;
                    net.poll_metrics(peers).await;
                }
            });
        }
        Ok(net)
    }

    /// The store whose embedded node this network runs on.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The network metrics, also updated by invocation forwarding and verification.
    pub fn metrics(&self) -> &NetMetrics {
        &self.inner.metrics
    }

    /// The bootstrap addresses this node keeps connected.
    pub fn bootstrap_list(&self) -> &[Multiaddr] {
        &self.inner.bootstrap
    }

    /// Whether `peer` is one of the bootstrap peers (see `--bootstrap`): named by id in its
    /// address (the sure form), or connected at an address that names none when it was last
    /// checked (every [`REDIAL_INTERVAL`]).
    pub fn is_bootstrap_peer(&self, peer: &PeerId) -> bool {
        self.inner.named_ids.contains(peer)
            || self
                .inner
                .learned_ids
                .lock()
                .unwrap()
                .values()
                .any(|ids| ids.contains(peer))
    }

    /// Dials every bootstrap peer that is not connected; returns the number of connected peers.
    async fn keep_bootstrap_connected(&self) -> usize {
        let node = self.inner.store.node();
        let connected = node.addrs().await.unwrap_or_default();
        for addr in &self.inner.bootstrap {
            let up = match peer_of(addr) {
                Some(id) => connected.iter().any(|(p, _)| *p == id),
                // Without /p2p/ the peer is known only by the address we dialled; whoever
                // answers there is the bootstrap peer the operator meant.
                None => {
                    let resolved = resolve(addr).await.unwrap_or_default();
                    let at: HashSet<PeerId> = connected
                        .iter()
                        .filter(|(_, addrs)| {
                            addrs
                                .iter()
                                .any(|a| resolved.iter().any(|r| same_transport(a, r)))
                        })
                        .map(|(p, _)| *p)
                        .collect();
                    let up = !at.is_empty();
                    self.inner
                        .learned_ids
                        .lock()
                        .unwrap()
                        .insert(addr.clone(), at);
                    up
                }
            };
            if up {
                if self.inner.down.lock().unwrap().remove(addr) {
                    tracing::info!("bootstrap peer {addr} is connected again");
                }
                continue;
            }
            let failure = match resolve(addr).await {
                Ok(targets) => {
                    let mut last = None;
                    for t in targets {
                        match node.connect(t.clone()).await {
                            Ok(_) => {
                                last = None;
                                break;
                            }
                            Err(e) => last = Some(format!("{e:#}")),
                        }
                    }
                    last
                }
                Err(e) => Some(e),
            };
            match failure {
                Some(e) => {
                    if self.inner.down.lock().unwrap().insert(addr.clone()) {
                        tracing::warn!(
                            "bootstrap peer {addr} is unreachable ({e}); re-dialling every {REDIAL_INTERVAL:?}"
                        );
                    }
                }
                None => {
                    if self.inner.down.lock().unwrap().remove(addr) {
                        tracing::info!("bootstrap peer {addr} is connected again");
                    }
                }
            }
        }
        connected.len()
    }

    async fn poll_metrics(&self, peers: usize) {
        let m = &self.inner.metrics;
        m.peers.set(peers as i64);
        if let Ok(s) = self.inner.store.node().bitswap_stats().await {
            m.set_bitswap(
                s.bytes_sent,
                s.bytes_received,
                s.blocks_sent,
                s.blocks_received,
            );
        }
    }

    /// Connected peers with the addresses of their connections.
    pub async fn peers(&self) -> Result<Vec<Peer>> {
        if self.inner.store.is_offline() {
            return Ok(vec![]);
        }
        let mut out: Vec<Peer> = self
            .inner
            .store
            .node()
            .addrs()
            .await
            .map_err(|e| Error::Node(e.to_string()))?
            .into_iter()
            .map(|(p, addrs)| Peer {
                peer: p.to_string(),
                addrs: addrs.iter().map(|a| a.to_string()).collect(),
            })
            .collect();
        out.sort_by(|a, b| a.peer.cmp(&b.peer));
        self.inner.metrics.peers.set(out.len() as i64);
        Ok(out)
    }

    /// Ids of the connected peers, sorted; none when offline.
    pub async fn connected(&self) -> Vec<PeerId> {
        if self.inner.store.is_offline() {
            return vec![];
        }
        let mut v = self
            .inner
            .store
            .node()
            .connected()
            .await
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Peers that announced `cid` in the DHT (never this node), at most `max`, waiting at most
    /// `wait`.
    pub async fn providers(&self, cid: Cid, max: usize, wait: Duration) -> Vec<PeerId> {
        if self.inner.store.is_offline() {
            return vec![];
        }
        let me = self.inner.store.peer_id();
        let m = &self.inner.metrics;
        let mut found: Vec<PeerId> = vec![];
        let mut seen = HashSet::new();
        let lookup = async {
            let mut s = match self.inner.store.node().get_providers(cid).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("DHT lookup of {cid}: {e:#}");
                    return;
                }
            };
            while let Some(item) = s.next().await {
                let Ok(set) = item else { continue };
                for p in set {
                    if p != me && seen.insert(p) {
                        found.push(p);
                    }
                }
                if found.len() >= max {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(wait, lookup).await;
        m.dht_lookups
            .with_label_values(&[if found.is_empty() { "none" } else { "found" }])
            .inc();
        found.truncate(max);
        found
    }
}

/// The peer id an address names (`/p2p/<id>`), if any.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Turns `/dns4|dns6|dns/<host>/...` into `/ip4|ip6/<addr>/...` with the system resolver (the
/// node is built without libp2p's DNS transport); other addresses pass through.
pub async fn resolve(addr: &Multiaddr) -> std::result::Result<Vec<Multiaddr>, String> {
    let mut parts = addr.iter();
    let (host, v4_only, v6_only) = match parts.next() {
        Some(Protocol::Dns(h)) => (h.to_string(), false, false),
        Some(Protocol::Dns4(h)) => (h.to_string(), true, false),
        Some(Protocol::Dns6(h)) => (h.to_string(), false, true),
        _ => return Ok(vec![addr.clone()]),
    };
    let rest: Vec<Protocol> = parts.collect();
    let ips = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let mut out = vec![];
    for sa in ips {
        let ip = sa.ip();
        if (v4_only && !ip.is_ipv4()) || (v6_only && !ip.is_ipv6()) {
            continue;
        }
        let mut a = Multiaddr::empty();
        a.push(match ip {
            std::net::IpAddr::V4(v4) => Protocol::Ip4(v4),
            std::net::IpAddr::V6(v6) => Protocol::Ip6(v6),
        });
        for p in &rest {
            a.push(p.clone());
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(out)
}

/// Same IP and TCP port, ignoring any `/p2p/` suffix.
fn same_transport(a: &Multiaddr, b: &Multiaddr) -> bool {
    let strip = |m: &Multiaddr| -> Vec<String> {
        m.iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .map(|p| p.to_string())
            .collect()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_dns_addresses_and_passes_ip_ones_through() {
        let ip: Multiaddr = "/ip4/10.0.0.1/tcp/4001".parse().unwrap();
        assert_eq!(resolve(&ip).await.unwrap(), vec![ip.clone()]);
        let dns: Multiaddr = "/dns4/localhost/tcp/4001".parse().unwrap();
        let got = resolve(&dns).await.unwrap();
        assert!(
            got.contains(&"/ip4/127.0.0.1/tcp/4001".parse().unwrap()),
            "{got:?}"
        );
        let bad: Multiaddr = "/dns4/no-such-host.invalid/tcp/1".parse().unwrap();
        assert!(resolve(&bad).await.is_err());
    }

    #[test]
    fn compares_transport_addresses_without_peer_ids() {
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let b: Multiaddr =
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                .parse()
                .unwrap();
        let c: Multiaddr = "/ip4/127.0.0.1/tcp/4002".parse().unwrap();
        assert!(same_transport(&a, &b));
        assert!(!same_transport(&a, &c));
    }
}
