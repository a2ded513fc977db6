//! The Docker executor: arbitrary images run on CID inputs through the Docker Engine (bollard).
//!
//! - [`engine`] — connecting, reaping containers a crashed gateway left, resolving images.
//! - [`def`] — what a Docker function's CID names.
//! - [`mount`] — its *mounting mechanism*: the input CID is exported from the backing store
//!   into a host cache directory (once per CID, evicted by size) and bind-mounted read-only at
//!   `/inputs`; a fresh directory is mounted writable at `/outputs`.
//! - [`run`] — one invocation. Containers run isolated (no network, read-only root, no
//!   capabilities, no-new-privileges, an unprivileged user, memory/CPU/pids limits, a
//!   timeout), are labelled with the repo they belong to, and are always removed, also when
//!   the caller hangs up.

pub mod def;
pub mod engine;
pub mod mount;
pub mod run;

pub use def::{DockerDef, DockerLimits};

use super::outputs::Outputs;
use crate::error::Result;
use crate::metrics::{error as metrics_error, register};
use bollard::Docker;
use engine::engine_err;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use tokio::sync::Semaphore;

/// Metrics of the Docker executor.
#[derive(Clone)]
struct Metrics {
    start: Histogram,
    run: Histogram,
    teardown: Histogram,
    export_bytes: IntCounter,
    export_hits: IntCounter,
    exits: IntCounterVec,
    active: IntGauge,
}

impl Metrics {
    fn new(r: &Registry) -> prometheus::Result<Self> {
        let h = |n: &str, d: &str| -> prometheus::Result<Histogram> {
            register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(n, d)
                        .buckets(prometheus::exponential_buckets(0.001, 3.0, 12)?),
                )?,
            )
        };
        let m = Self {
            start: h("ipfaas_docker_start_seconds", "Container create+start")?,
            run: h("ipfaas_docker_run_seconds", "Container run until exit")?,
            teardown: h(
                "ipfaas_docker_teardown_seconds",
                "Collecting output and removing the container",
            )?,
            export_bytes: register(
                r,
                IntCounter::new(
                    "ipfaas_docker_export_bytes_total",
                    "Bytes exported for bind mounts",
                )?,
            )?,
            export_hits: register(
                r,
                IntCounter::new(
                    "ipfaas_docker_export_cache_hits_total",
                    "Inputs already exported",
                )?,
            )?,
            exits: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ipfaas_docker_exits_total",
                        "Container exits by code (oom, timeout, outputs: stopped over the /outputs quotas)",
                    ),
                    &["code"],
                )?,
            )?,
            active: register(
                r,
                IntGauge::new("ipfaas_docker_active_containers", "Containers running now")?,
            )?,
        };
        crate::metrics::preset(&m.exits, &[&["0"], &["oom"], &["timeout"], &["outputs"]]);
        Ok(m)
    }
}

/// How many containers run and wait, and how much the export cache holds.
pub struct DockerConfig {
    /// Containers at once.
    pub containers: usize,
    /// Invocations allowed to wait for a container; beyond it the answer is 429.
    pub queue: usize,
    /// Size of the export cache.
    pub export_cache: u64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            containers: 4,
            queue: 16,
            export_cache: 4 << 30,
        }
    }
}

/// The Docker executor: runs Docker functions, each invocation in a fresh container.
#[derive(Clone)]
pub struct DockerExec {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    label: String,
    exports: PathBuf,
    outputs: Arc<Outputs>,
    cfg: DockerConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// One export of a CID at a time; exports of different CIDs run side by side.
    export_keys: crate::flight::KeyedLock,
    /// Exports that running containers mount, by CID: never evicted while counted.
    in_use: mount::InUse,
    metrics: Metrics,
}

impl DockerExec {
    /// Connects to the local engine and removes containers a crashed run of this repo left.
    /// Exports live under `<repo>/functions/exports`; `/outputs` directories come from
    /// `outputs`.
    pub async fn connect(
        repo: &Path,
        outputs: Arc<Outputs>,
        registry: &Registry,
        cfg: DockerConfig,
    ) -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(engine_err)?;
        docker.ping().await.map_err(engine_err)?;
        let label = format!(
            "{:016x}",
            fastmurmur3::hash(repo.to_string_lossy().as_bytes()) as u64
        );
        let exports = repo.join("functions").join("exports");
        std::fs::create_dir_all(&exports)?;
        // half-made and half-evicted exports of an earlier run
        for e in std::fs::read_dir(&exports)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with('.') {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let this = Self {
            inner: Arc::new(Inner {
                docker,
                label,
                exports,
                outputs,
                slots: Arc::new(Semaphore::new(cfg.containers)),
                cfg,
                waiting: AtomicUsize::new(0),
                export_keys: Default::default(),
                in_use: Default::default(),
                metrics: Metrics::new(registry).map_err(metrics_error)?,
            }),
        };
        let reaped = this.reap().await?;
        if reaped > 0 {
            tracing::warn!("removed {reaped} container(s) left by an earlier run");
        }
        Ok(this)
    }
}
