//! Invocation metrics: invocations by function and outcome, stage durations, cache hits.

use crate::metrics::register;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Metrics of the invocation layer.
#[derive(Clone)]
pub(crate) struct FnMetrics {
    /// `ipfaas_invocations_total{function, outcome}`.
    pub invocations: IntCounterVec,
    /// `ipfaas_invoke_stage_seconds{stage}`, filled by the executors.
    pub stage: HistogramVec,
    /// Answers from the result cache.
    pub cache_hits: IntCounter,
}

impl FnMetrics {
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let fine = prometheus::exponential_buckets(0.0001, 3.0, 14)?;
        Ok(Self {
            invocations: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ipfaas_invocations_total",
                        "Invocations by function (as named in the request) and outcome",
                    ),
                    &["function", "outcome"],
                )?,
            )?,
            stage: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "ipfaas_invoke_stage_seconds",
                        "Duration of each invocation stage: fetch, instantiate, execute, publish",
                    )
                    .buckets(fine),
                    &["stage"],
                )?,
            )?,
            cache_hits: register(
                r,
                IntCounter::new(
                    "ipfaas_invoke_cache_hits_total",
                    "Invocations answered from the result cache without running",
                )?,
            )?,
        })
    }
}
