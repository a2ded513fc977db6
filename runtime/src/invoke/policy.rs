//! Who may ask this node to run functions over libp2p, and how much at once.
//!
//! The swarm port is open to any peer and needs no token, so running functions for peers is a
//! policy the operator chooses (`--peer-invoke`): `off`, `allowlist` (the default: the
//! bootstrap peers and any peer named with `--peer-allow`) or `any`. Whatever the policy, one
//! peer may have at most [`MAX_PER_PEER`] invocations running here at once; past that it is
//! answered 429 and its caller routes around this node.

use crate::net::{Network, PeerId};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Invocations one peer may have running on this node at once.
pub const MAX_PER_PEER: usize = 4;

/// Which peers may invoke functions on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerInvoke {
    /// No peer.
    Off,
    /// The bootstrap peers and these.
    Allowlist(BTreeSet<PeerId>),
    /// Any peer that connects.
    Any,
}

impl Default for PeerInvoke {
    /// The bootstrap peers only.
    fn default() -> Self {
        PeerInvoke::Allowlist(BTreeSet::new())
    }
}

impl PeerInvoke {
    /// Parses a mode (`off`, `allowlist`, `any`) and the extra allowed peer ids.
    pub fn parse(mode: &str, allow: &[String]) -> Result<Self, String> {
        let allow = allow
            .iter()
            .map(|p| {
                p.trim()
                    .parse::<PeerId>()
                    .map_err(|e| format!("invalid peer id {p:?} to allow: {e}"))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        match mode.trim() {
            "off" if allow.is_empty() => Ok(PeerInvoke::Off),
            "any" if allow.is_empty() => Ok(PeerInvoke::Any),
            "off" | "any" => Err(format!(
                "peers to allow were given, but peer invocations are {mode:?}; use \"allowlist\""
            )),
            "allowlist" => Ok(PeerInvoke::Allowlist(allow)),
            other => Err(format!(
                "peer invocations {other:?}: expected \"off\", \"allowlist\" or \"any\""
            )),
        }
    }
}

/// The policy with its count of what each peer is running here.
pub(crate) struct PeerGate {
    policy: PeerInvoke,
    running: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// One admitted invocation; the peer's count drops when it is dropped.
pub(crate) struct Admitted {
    peer: PeerId,
    running: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut m = self.running.lock().unwrap();
        if let Some(n) = m.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.peer);
            }
        }
    }
}

impl PeerGate {
    /// A gate applying `policy`.
    pub(crate) fn new(policy: PeerInvoke) -> Self {
        Self {
            policy,
            running: Default::default(),
        }
    }

    /// Admits one invocation from `peer`, or says why not: (HTTP status, message).
    pub(crate) fn admit(&self, peer: PeerId, net: &Network) -> Result<Admitted, (u16, String)> {
        let allowed = match &self.policy {
            PeerInvoke::Off => false,
            PeerInvoke::Any => true,
            PeerInvoke::Allowlist(extra) => extra.contains(&peer) || net.is_bootstrap_peer(&peer),
        };
        if !allowed {
            return Err((
                403,
                format!(
                    "this node does not run functions for peer {peer} (its peer invocations are {})",
                    match self.policy {
                        PeerInvoke::Off => "off",
                        _ => "limited to its bootstrap peers and allowlist",
                    }
                ),
            ));
        }
        let mut m = self.running.lock().unwrap();
        let n = m.entry(peer).or_default();
        if *n >= MAX_PER_PEER {
            return Err((
                429,
                format!("peer {peer} already has {MAX_PER_PEER} invocations running here"),
            ));
        }
        *n += 1;
        Ok(Admitted {
            peer,
            running: self.running.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_conflicts_are_refused() {
        let id = PeerId::random().to_string();
        assert_eq!(PeerInvoke::parse("off", &[]).unwrap(), PeerInvoke::Off);
        assert_eq!(PeerInvoke::parse("any", &[]).unwrap(), PeerInvoke::Any);
        match PeerInvoke::parse("allowlist", std::slice::from_ref(&id)).unwrap() {
            PeerInvoke::Allowlist(s) => assert_eq!(s.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(PeerInvoke::parse("any", &[id]).is_err());
        assert!(PeerInvoke::parse("allowlist", &["nope".into()]).is_err());
        assert!(PeerInvoke::parse("some", &[]).is_err());
    }

    #[tokio::test]
    async fn each_peer_has_a_bounded_number_of_invocations_running() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = prometheus::Registry::new();
        let cfg = crate::StoreConfig::offline(tmp.path().join("repo"));
        let store = crate::Store::open(cfg, &reg).await.unwrap();
        let net = Network::start(store, vec![], &reg).unwrap();
        let (a, b) = (PeerId::random(), PeerId::random());
        let gate = PeerGate::new(PeerInvoke::Any);
        let held: Vec<_> = (0..MAX_PER_PEER)
            .map(|_| gate.admit(a, &net).unwrap())
            .collect();
        assert_eq!(gate.admit(a, &net).err().unwrap().0, 429);
        let other = gate.admit(b, &net).unwrap();
        drop(held);
        let again = gate.admit(a, &net).unwrap();
        drop((other, again));
        assert!(
            gate.running.lock().unwrap().is_empty(),
            "counts are released"
        );
        // an allowlist admits the peers on it (and the bootstrap peers: none here)
        let gate = PeerGate::new(PeerInvoke::Allowlist([a].into()));
        gate.admit(a, &net).unwrap();
        let (status, msg) = gate.admit(b, &net).err().unwrap();
        assert_eq!(status, 403);
        assert!(msg.contains(&b.to_string()), "{msg}");
        let gate = PeerGate::new(PeerInvoke::Off);
        assert_eq!(gate.admit(a, &net).err().unwrap().0, 403);
    }
}
