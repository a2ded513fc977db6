use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Network metrics, registered into the caller's registry.
#[derive(Clone)]
pub struct NetMetrics {
    pub peers: IntGauge,
    pub bitswap_sent_bytes: IntCounter,
    pub bitswap_received_bytes: IntCounter,
    pub bitswap_sent_blocks: IntCounter,
    pub bitswap_received_blocks: IntCounter,
    pub dht_lookups: IntCounterVec,
    /// Invocations sent to (`out`) or run for (`in`) a peer, by outcome.
    pub forwarded: IntCounterVec,
    pub verifications: IntCounterVec,
    /// Last bitswap totals seen, so the counters advance by the difference.
    last: Arc<[AtomicU64; 4]>,
}

impl NetMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            peers: IntGauge::new("ipfaas_peers", "Connected libp2p peers")?,
            bitswap_sent_bytes: IntCounter::new(
                "ipfaas_bitswap_sent_bytes_total",
                "Block bytes sent to peers over bitswap",
            )?,
            bitswap_received_bytes: IntCounter::new(
                "ipfaas_bitswap_received_bytes_total",
                "Block bytes received from peers over bitswap",
            )?,
            bitswap_sent_blocks: IntCounter::new(
                "ipfaas_bitswap_sent_blocks_total",
                "Blocks sent to peers over bitswap",
            )?,
            bitswap_received_blocks: IntCounter::new(
                "ipfaas_bitswap_received_blocks_total",
                "Blocks received from peers over bitswap",
            )?,
            dht_lookups: IntCounterVec::new(
                Opts::new(
                    "ipfaas_dht_lookups_total",
                    "DHT provider lookups made by ipfaas, by result (found/none)",
                ),
                &["result"],
            )?,
            forwarded: IntCounterVec::new(
                Opts::new(
                    "ipfaas_forwarded_invocations_total",
                    "Invocations forwarded to a peer (out) or run for a peer (in), by outcome",
                ),
                &["direction", "outcome"],
            )?,
            verifications: IntCounterVec::new(
                Opts::new(
                    "ipfaas_verifications_total",
                    "Verifications across peers, by result (agree/disagree/incomplete)",
                ),
                &["result"],
            )?,
            last: Arc::new(Default::default()),
        };
        registry.register(Box::new(m.peers.clone()))?;
        registry.register(Box::new(m.bitswap_sent_bytes.clone()))?;
        registry.register(Box::new(m.bitswap_received_bytes.clone()))?;
        registry.register(Box::new(m.bitswap_sent_blocks.clone()))?;
        registry.register(Box::new(m.bitswap_received_blocks.clone()))?;
        registry.register(Box::new(m.dht_lookups.clone()))?;
        registry.register(Box::new(m.forwarded.clone()))?;
        registry.register(Box::new(m.verifications.clone()))?;
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
