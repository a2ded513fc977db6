//! Job metrics: jobs by state (the queue's depth is `state="queued"`), time queued, time
//! running, refusals, cancellations and callbacks.

use super::JobState;
use crate::metrics::register;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The job system's metrics.
pub struct JobMetrics {
    /// `ipfaas_jobs{state}`: jobs in the table by state.
    pub jobs: IntGaugeVec,
    /// `ipfaas_job_queued_seconds`: from acceptance to start.
    pub queued_seconds: Histogram,
    /// `ipfaas_job_run_seconds`: from start to end.
    pub run_seconds: Histogram,
    /// `ipfaas_jobs_refused_total`: submissions refused because the queue was full.
    pub refused: IntCounter,
    /// `ipfaas_jobs_cancelled_total`: jobs cancelled, queued or running.
    pub cancelled: IntCounter,
    /// `ipfaas_job_callbacks_total{result}`: callbacks `delivered` or `failed`.
    pub callbacks: IntCounterVec,
}

impl JobMetrics {
    /// Registers them in `r`.
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        let buckets = prometheus::exponential_buckets(0.001, 4.0, 12)?;
        Ok(Self {
            jobs: register(
                r,
                IntGaugeVec::new(
                    Opts::new("ipfaas_jobs", "Asynchronous jobs by state"),
                    &["state"],
                )?,
            )?,
            queued_seconds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ipfaas_job_queued_seconds",
                        "Time a job waited in the queue before it started",
                    )
                    .buckets(buckets.clone()),
                )?,
            )?,
            run_seconds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new("ipfaas_job_run_seconds", "Time a job ran").buckets(buckets),
                )?,
            )?,
            refused: register(
                r,
                IntCounter::new(
                    "ipfaas_jobs_refused_total",
                    "Job submissions refused because the queue was full",
                )?,
            )?,
            cancelled: register(
                r,
                IntCounter::new("ipfaas_jobs_cancelled_total", "Jobs cancelled")?,
            )?,
            callbacks: register(
                r,
                IntCounterVec::new(
                    Opts::new("ipfaas_job_callbacks_total", "Job callbacks by result"),
                    &["result"],
                )?,
            )?,
        }
        .preset())
    }

    /// The callback outcomes, at zero until one happens.
    fn preset(self) -> Self {
        crate::metrics::preset(&self.callbacks, &[&["delivered"], &["failed"]]);
        self
    }

    /// Sets the gauges from counts by state (states not listed are zero).
    pub fn set_counts(&self, counts: &[(String, u64)]) {
        for s in JobState::ALL {
            let n = counts
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map_or(0, |(_, n)| *n);
            self.jobs.with_label_values(&[s.as_str()]).set(n as i64);
        }
    }
}
