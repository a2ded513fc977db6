use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// Store metrics, registered into the caller's registry.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    pub blocks: IntGauge,
    pub bytes: IntGauge,
    pub added_bytes: IntCounter,
    pub read_bytes: IntCounter,
    pub add_seconds: Histogram,
    pub read_seconds: Histogram,
    pub fetched_blocks: IntCounter,
}

fn buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.0005, 4.0, 10).expect("valid buckets")
}

impl StoreMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            blocks: IntGauge::new("ipfaas_store_blocks", "Blocks in the local block store")?,
            bytes: IntGauge::new(
                "ipfaas_store_bytes",
                "Bytes of blocks in the local block store",
            )?,
            added_bytes: IntCounter::new(
                "ipfaas_store_added_bytes_total",
                "Content bytes imported by adds",
            )?,
            read_bytes: IntCounter::new(
                "ipfaas_store_read_bytes_total",
                "Content bytes served by cat/get/gateway reads",
            )?,
            add_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "ipfaas_store_add_duration_seconds",
                    "Duration of an add, from the call (the wait for a blocking thread and the commit included)",
                )
                .buckets(buckets()),
            )?,
            read_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "ipfaas_store_read_duration_seconds",
                    "Duration of a read (cat/get stream)",
                )
                .buckets(buckets()),
            )?,
            fetched_blocks: IntCounter::new(
                "ipfaas_store_fetched_blocks_total",
                "Blocks fetched from peers",
            )?,
        };
        registry.register(Box::new(m.blocks.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.added_bytes.clone()))?;
        registry.register(Box::new(m.read_bytes.clone()))?;
        registry.register(Box::new(m.add_seconds.clone()))?;
        registry.register(Box::new(m.read_seconds.clone()))?;
        registry.register(Box::new(m.fetched_blocks.clone()))?;
        Ok(m)
    }
}
