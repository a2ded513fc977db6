//! Network metrics: peers, bitswap traffic, DHT lookups, forwarded invocations, verifications.

use crate::metrics::register;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Network metrics, registered into the caller's registry.
#[derive(Clone)]
pub struct NetMetrics {
    /// `ipfaas_peers`: connected libp2p peers.
    pub peers: IntGauge,
    /// `ipfaas_bitswap_sent_bytes_total`, from the node's bitswap totals.
    pub bitswap_sent_bytes: IntCounter,
    /// `ipfaas_bitswap_received_bytes_total`, from the node's bitswap totals.
    pub bitswap_received_bytes: IntCounter,
    /// `ipfaas_bitswap_sent_blocks_total`, from the node's bitswap totals.
    pub bitswap_sent_blocks: IntCounter,
    /// `ipfaas_bitswap_received_blocks_total`, from the node's bitswap totals.
    pub bitswap_received_blocks: IntCounter,
    /// `ipfaas_dht_lookups_total{result}`: provider lookups that `found` peers or `none`.
    pub dht_lookups: IntCounterVec,
    /// Invocations sent to (`out`) or run for (`in`) a peer, by outcome.
    pub forwarded: IntCounterVec,
    /// `ipfaas_verifications_total{result}`: verifications across peers (agree, disagree,
    /// incomplete).
    pub verifications: IntCounterVec,
    /// Last bitswap totals seen, so the counters advance by the difference.
    last: Arc<[AtomicU64; 4]>,
}

impl NetMetrics {
    /// Creates the network metrics and registers them in `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            peers: register(r, IntGauge::new("ipfaas_peers", "Connected libp2p peers")?)?,
            bitswap_sent_bytes: register(
                r,
                IntCounter::new(
                    "ipfaas_bitswap_sent_bytes_total",
                    "Block bytes sent to peers over bitswap",
                )?,
            )?,
            bitswap_received_bytes: register(
                r,
                IntCounter::new(
                    "ipfaas_bitswap_received_bytes_total",
                    "Block bytes received from peers over bitswap",
                )?,
            )?,
            bitswap_sent_blocks: register(
                r,
                IntCounter::new(
                    "ipfaas_bitswap_sent_blocks_total",
                    "Blocks sent to peers over bitswap",
                )?,
            )?,
            bitswap_received_blocks: register(
                r,
                IntCounter::new(
                    "ipfaas_bitswap_received_blocks_total",
                    "Blocks received from peers over bitswap",
                )?,
            )?,
            dht_lookups: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ipfaas_dht_lookups_total",
                        "DHT provider lookups made by ipfaas, by result (found/none)",
                    ),
                    &["result"],
                )?,
            )?,
            forwarded: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ipfaas_forwarded_invocations_total",
                        "Invocations forwarded to a peer (out) or run for a peer (in), by outcome (ok/error/refused/failed_over)",
                    ),
                    &["direction", "outcome"],
                )?,
            )?,
            verifications: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ipfaas_verifications_total",
                        "Verifications across peers, by result (agree/disagree/incomplete)",
                    ),
                    &["result"],
                )?,
            )?,
            last: Arc::new(Default::default()),
        };
        crate::metrics::preset(&m.dht_lookups, &[&["found"], &["none"]]);
        let mut forwarded: Vec<[&str; 2]> = vec![];
        for outcome in ["ok", "error", "refused", "failed_over"] {
            forwarded.extend([["out", outcome], ["in", outcome]]);
        }
        let forwarded: Vec<&[&str]> = forwarded.iter().map(|s| &s[..]).collect();
        crate::metrics::preset(&m.forwarded, &forwarded);
        crate::metrics::preset(
            &m.verifications,
            &[&["agree"], &["disagree"], &["incomplete"]],
        );
        Ok(m)
    }

    /// Advances the bitswap counters to the node's running totals.
    pub fn set_bitswap(&self, sent: u64, received: u64, sent_blocks: u64, received_blocks: u64) {
        let counters = [
            &self.bitswap_sent_bytes,
            &self.bitswap_received_bytes,
            &self.bitswap_sent_blocks,
            &self.bitswap_received_blocks,
        ];
        for (i, (c, now)) in counters
            .into_iter()
            .zip([sent, received, sent_blocks, received_blocks])
            .enumerate()
        {
            let before = self.last[i].swap(now, Ordering::Relaxed);
            if now > before {
                c.inc_by(now - before);
            }
        }
    }
}
