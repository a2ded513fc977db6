use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Function metrics: invocations by function and outcome, stage durations, builds, the cache.
#[derive(Clone)]
pub struct FnMetrics {
    pub invocations: IntCounterVec,
    pub stage: HistogramVec,
    pub build: Histogram,
    pub cache_hits: IntCounter,
    pub active: IntGauge,
    pub instances: IntCounterVec,
    pub ready: IntGauge,
}

impl FnMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let fine = prometheus::exponential_buckets(0.0001, 3.0, 14)?;
        let m = Self {
            invocations: IntCounterVec::new(
                Opts::new(
                    "ipfaas_invocations_total",
                    "Invocations by function (as named in the request) and outcome",
                ),
                &["function", "outcome"],
            )?,
            stage: HistogramVec::new(
                HistogramOpts::new(
                    "ipfaas_invoke_stage_seconds",
                    "Duration of each invocation stage: fetch, instantiate, execute, publish",
                )
                .buckets(fine),
                &["stage"],
            )?,
            build: Histogram::with_opts(
                HistogramOpts::new(
                    "ipfaas_build_duration_seconds",
                    "Duration of a component build (componentize-py pre-initialisation)",
                )
                .buckets(prometheus::exponential_buckets(0.5, 2.0, 10)?),
            )?,
            cache_hits: IntCounter::new(
                "ipfaas_invoke_cache_hits_total",
                "Invocations answered from the result cache without running",
            )?,
            active: IntGauge::new(
                "ipfaas_active_instances",
                "WebAssembly instances running now",
            )?,
            instances: IntCounterVec::new(
                Opts::new(
                    "ipfaas_wasm_instances_total",
                    "Instances invocations ran in, by when they were made: ahead of the request \
                     (\"ahead\") or while it waited (\"on_request\")",
                ),
                &["made"],
            )?,
            ready: IntGauge::new(
                "ipfaas_wasm_instances_ready",
                "Instances made ahead, waiting for an invocation",
            )?,
        };
        registry.register(Box::new(m.invocations.clone()))?;
        registry.register(Box::new(m.stage.clone()))?;
        registry.register(Box::new(m.build.clone()))?;
        registry.register(Box::new(m.cache_hits.clone()))?;
        registry.register(Box::new(m.active.clone()))?;
        registry.register(Box::new(m.instances.clone()))?;
        registry.register(Box::new(m.ready.clone()))?;
        Ok(m)
    }
}
