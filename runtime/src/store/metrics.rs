//! Store metrics: block and byte counts, add and read volumes and durations, peer fetches.

use crate::metrics::register;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// Store metrics, registered into the caller's registry.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// `ipfaas_store_blocks`: blocks on disk, counted at open and kept current by adds and fetches.
    pub blocks: IntGauge,
    /// `ipfaas_store_bytes`: bytes of those blocks.
    pub bytes: IntGauge,
    /// `ipfaas_store_added_bytes_total`: file content imported by adds.
    pub added_bytes: IntCounter,
    /// `ipfaas_store_read_bytes_total`: file bytes streamed out by reads.
    pub read_bytes: IntCounter,
    /// `ipfaas_store_add_duration_seconds`: one add, the wait for a blocking thread included.
    pub add_seconds: Histogram,
    /// `ipfaas_store_read_duration_seconds`: one read stream, until it is dropped.
    pub read_seconds: Histogram,
    /// `ipfaas_store_fetched_blocks_total`: blocks fetched from peers over bitswap.
    pub fetched_blocks: IntCounter,
    /// `ipfaas_store_fetch_failures_total`: blocks no peer gave within the fetch timeout.
    pub fetch_failures: IntCounter,
    /// `ipfaas_store_gc_runs_total`: garbage collections.
    pub gc_runs: IntCounter,
    /// `ipfaas_store_gc_removed_bytes_total`: bytes of blocks garbage collections removed.
    pub gc_removed_bytes: IntCounter,
}

fn buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.0005, 4.0, 10).expect("valid buckets")
}

impl StoreMetrics {
    /// Creates the store metrics and registers them in `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            blocks: register(
                r,
                IntGauge::new("ipfaas_store_blocks", "Blocks in the local block store")?,
            )?,
            bytes: register(
                r,
                IntGauge::new(
                    "ipfaas_store_bytes",
                    "Bytes of blocks in the local block store",
                )?,
            )?,
            added_bytes: register(
                r,
                IntCounter::new(
                    "ipfaas_store_added_bytes_total",
                    "Content bytes imported by adds",
                )?,
            )?,
            read_bytes: register(
                r,
                IntCounter::new(
                    "ipfaas_store_read_bytes_total",
                    "Content bytes served by cat/get/gateway reads",
                )?,
            )?,
            add_seconds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ipfaas_store_add_duration_seconds",
                        "Duration of an add, from the call (the wait for a blocking thread and the commit included)",
                    )
                    .buckets(buckets()),
                )?,
            )?,
            read_seconds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ipfaas_store_read_duration_seconds",
                        "Duration of a read (cat/get stream)",
                    )
                    .buckets(buckets()),
                )?,
            )?,
            fetched_blocks: register(
                r,
                IntCounter::new(
                    "ipfaas_store_fetched_blocks_total",
                    "Blocks fetched from peers",
                )?,
            )?,
            fetch_failures: register(
                r,
                IntCounter::new(
                    "ipfaas_store_fetch_failures_total",
                    "Blocks asked of peers that no peer gave within the fetch timeout",
                )?,
            )?,
            gc_runs: register(
                r,
                IntCounter::new("ipfaas_store_gc_runs_total", "Garbage collections")?,
            )?,
            gc_removed_bytes: register(
                r,
                IntCounter::new(
                    "ipfaas_store_gc_removed_bytes_total",
                    "Bytes of unpinned blocks removed by garbage collections",
                )?,
            )?,
        })
    }
}
