//! The Python-in-WebAssembly executor.
//!
//! - [`build`] — deploy time: bundle → pre-initialised component (componentize-py), its
//!   requirements as wheels, the Python standard library for run-time imports.
//! - [`engine`] — run time: one wasmtime engine (pooling allocator, copy-on-write memory images),
//!   components precompiled once and cached on disk, a fresh store and instance per invocation
//!   with fixed clocks, seeded randomness, no network, and memory/fuel/time limits.
//! - [`load`] — a definition made runnable here: build directories and native code.
//! - [`ready`] and `job` — instances made ahead of their requests, and one invocation from
//!   taking an instance to publishing its output.
//! - [`mount`] — the *mounting mechanism* of this executor: the input is not a file on the host
//!   but the `ipfaas:function/input` interface, which the guest reads as a seekable file and the
//!   host answers from the block store, a range at a time.

pub mod build;
pub mod def;
mod detfs;
mod detfs_sync;
pub mod engine;
mod job;
pub mod load;
pub mod mount;
mod quota;
pub mod ready;
mod vclock;

pub use def::PythonDef;
pub use engine::{Instance, Limits, Loaded, RunOutcome, RunRequest, Spent, WasmEngine};

use super::outputs::Outputs;
use super::{ExecError, Publish, RunOutput, Timings};
use crate::error::{Result, io_err};
use crate::metrics::{error as metrics_error, register};
use crate::store::Store;
use bytes::Bytes;
use cid::Cid;
use job::{Active, Answered, Job};
use mount::StoreInput;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The WIT world every component targets.
pub const WIT: &str = include_str!("function.wit");
/// The Python wrapper imported at pre-initialisation; it calls the user's `main`.
pub const GUEST_PY: &str = include_str!("guest.py");
/// The wrapper's module name inside the guest.
pub const GUEST_MODULE: &str = "ipfaas_guest";
/// The WIT world's name.
pub const WORLD: &str = "function";
/// The host interface the guest reads its input through.
pub const INPUT_INTERFACE: &str = "ipfaas:function/input@0.1.0";

/// A guest's random-access view of its input.
pub trait InputReader: Send {
    /// The input's size in bytes.
    fn size(&self) -> u64;
    /// Up to `len` bytes at `offset` (fewer only at the end).
    fn read_at(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, String>;
    /// From now on, reads give up (with an error) once `stop` is due. Readers that never
    /// wait need not care.
    fn bound_by(&mut self, _stop: Stop) {}
}

/// When an invocation must stop: at its wall-clock deadline, or when its caller goes away.
/// The engine checks it every epoch tick while the guest runs; host calls that may wait (input
/// reads that fetch from peers) race it.
#[derive(Clone, Debug)]
pub struct Stop {
    /// The wall-clock deadline.
    pub deadline: std::time::Instant,
    /// Cancelled when the caller has gone.
    pub cancel: CancellationToken,
}

impl Stop {
    /// A stop `limit` from now that nothing else triggers.
    pub fn after(limit: std::time::Duration) -> Self {
        Self::within(limit, CancellationToken::new())
    }

    /// A stop `limit` from now, or when `cancel` is cancelled.
    pub fn within(limit: std::time::Duration, cancel: CancellationToken) -> Self {
        let now = Instant::now();
        Self {
            deadline: now.checked_add(limit).unwrap_or(now + FAR),
            cancel,
        }
    }

    /// Whether the run must stop now.
    pub fn is_due(&self) -> bool {
        self.cancel.is_cancelled() || Instant::now() >= self.deadline
    }

    /// Runs `f` until it ends or this stop is due, whichever comes first.
    pub async fn bound<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::select! {
            r = f => r,
            _ = tokio::time::sleep_until(self.deadline.into()) => Err("the time limit passed".into()),
            _ = self.cancel.cancelled() => Err("the caller went away".into()),
        }
    }
}

/// A deadline no invocation reaches (about 30 years).
const FAR: std::time::Duration = std::time::Duration::from_secs(1 << 30);

/// An input held in memory (tests, small raw bodies).
pub struct BytesInput(pub bytes::Bytes);

impl InputReader for BytesInput {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let start = (offset as usize).min(self.0.len());
        let end = start.saturating_add(len as usize).min(self.0.len());
        Ok(self.0[start..end].to_vec())
    }
}

/// Metrics of the WASM executor.
#[derive(Clone)]
pub(crate) struct WasmMetrics {
    /// `ipfaas_invoke_stage_seconds`, shared with the invocation layer.
    pub stage: HistogramVec,
    /// Deploy stages: `resolve` and `download` (requirements), `component` (the build).
    pub build: HistogramVec,
    /// Components compiled to native code.
    pub compiles: IntCounter,
    /// Instances running now.
    pub active: IntGauge,
    /// Instances invocations ran in, by when they were made.
    pub instances: IntCounterVec,
    /// Instances made ahead, waiting.
    pub ready: IntGauge,
}

impl WasmMetrics {
    fn new(r: &prometheus::Registry, stage: HistogramVec) -> prometheus::Result<Self> {
        Ok(Self {
            stage,
            build: {
                let h = register(
                    r,
                    HistogramVec::new(
                        HistogramOpts::new(
                            "ipfaas_build_duration_seconds",
                            "Duration of a deploy's stages: resolving requirements, downloading wheels, building the component (componentize-py pre-initialisation)",
                        )
                        .buckets(prometheus::exponential_buckets(0.05, 2.0, 14)?),
                        &["stage"],
                    )?,
                )?;
                for s in ["resolve", "download", "component"] {
                    h.with_label_values(&[s]);
                }
                h
            },
            compiles: register(
                r,
                IntCounter::new(
                    "ipfaas_component_compiles_total",
                    "Components compiled to native code by this node (once per component)",
                )?,
            )?,
            active: register(
                r,
                IntGauge::new(
                    "ipfaas_active_instances",
                    "WebAssembly instances running now",
                )?,
            )?,
            instances: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ipfaas_wasm_instances_total",
                        "Instances invocations ran in, by when they were made: ahead of the \
                         request (\"ahead\") or while it waited (\"on_request\")",
                    ),
                    &["made"],
                )?,
            )?,
            ready: register(
                r,
                IntGauge::new(
                    "ipfaas_wasm_instances_ready",
                    "Instances made ahead, waiting for an invocation",
                )?,
            )?,
        })
    }
}

/// Component builds that may run at once. Each takes a core for its pre-initialisation and
/// compilation and up to the function's memory limit plus about 1 GiB for the compiler; more
/// would only slow each other down on a small machine.
pub const MAX_BUILDS: usize = 2;

/// The WASM executor: runs Python functions, each invocation in a fresh instance.
#[derive(Clone)]
pub struct WasmExec {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    engine: WasmEngine,
    /// `<repo>/functions`: `builds/`, `cwasm/`, `wheels/`, the standard library.
    dir: PathBuf,
    outputs: Arc<Outputs>,
    /// Builds that may run at once: each takes a core and much memory.
    builds: Arc<Semaphore>,
    /// One build of a build directory at a time, and one export of a peer's function into it.
    build_keys: crate::flight::KeyedLock,
    /// One compilation of a component at a time.
    compiles: crate::flight::KeyedLock,
    /// Instances that may run at once.
    slots: Arc<Semaphore>,
    ready: ready::ReadyPool<Instance>,
    /// Hands spent instances to the refill threads.
    refill: std::sync::mpsc::Sender<job::After>,
    metrics: WasmMetrics,
    /// Installs requirements at deploy.
    packages: crate::pypkg::Installer,
}

impl WasmExec {
    /// Opens the executor over `dir` (`<repo>/functions`); `instances` may run at once.
    /// `stage` is the invocation layer's stage histogram, which this executor fills.
    pub fn open(
        dir: &Path,
        outputs: Arc<Outputs>,
        registry: &prometheus::Registry,
        stage: HistogramVec,
        instances: u32,
        packages: crate::pypkg::Settings,
    ) -> Result<Self> {
        for d in ["builds", "wheels", "cwasm"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        let stdlib = build::stdlib::ensure(dir)?;
        // running instances, and those made ahead of their requests
        let pooled = instances + ready::READY as u32;
        let engine = WasmEngine::new(&dir.join("cwasm"), stdlib, pooled)?;
        let metrics = WasmMetrics::new(registry, stage).map_err(metrics_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                dir: dir.to_path_buf(),
                outputs,
                builds: Arc::new(Semaphore::new(MAX_BUILDS)),
                build_keys: Default::default(),
                compiles: Default::default(),
                slots: Arc::new(Semaphore::new(instances as usize)),
                ready: ready::ReadyPool::new(metrics.ready.clone()),
                refill: job::refill_threads()?,
                metrics,
                packages: crate::pypkg::Installer::new(packages, &dir.join("wheels"))?,
            }),
        })
    }

    /// Drops the native code compiled here for `component` (a purged function's): running
    /// invocations finish with what they hold; a later load compiles it again.
    pub fn forget(&self, component: &str) -> Result<()> {
        self.inner.engine.forget(component)
    }

    /// Runs `def` on `input` in a fresh instance; `seed` seeds the guest's randomness.
    /// `publish` stores what it produced before the instance's `/outputs` is let go.
    // each argument comes from a different layer (store, definition, input, limits, logs)
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        store: &Store,
        def: &PythonDef,
        input: Cid,
        params: &BTreeMap<String, String>,
        seed: [u8; 32],
        publish: Publish,
        logs: Option<crate::executor::LogTap>,
    ) -> Result<RunOutput, ExecError> {
        let inner = &self.inner;
        let m = &inner.metrics;
        // fetch: the input's layout and the runnable component
        let t = Instant::now();
        let input = StoreInput::open(store, input).await?;
        let loaded = self.load(store, def).await?;
        let fetch = t.elapsed();
        m.stage
            .with_label_values(&["fetch"])
            .observe(fetch.as_secs_f64());

        let permit = inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io_err("shutting down"))?;
        let cancel = CancellationToken::new();
        let job = Job {
            inner: inner.clone(),
            loaded,
            def: def.clone(),
            run_req: RunRequest {
                input: Box::new(input),
                params: params.clone().into_iter().collect(),
                seed,
                cancel: cancel.clone(),
                logs,
            },
            publish,
            running: Active::new(&m.active),
            permit,
        };
        let limits = def.limits;
        let ready = inner.ready.take(&def.component, |i| i.limits() == limits);
        // The run happens on a blocking thread while this future waits for it, so that a
        // caller who hangs up (hyper then drops this future) stops the guest within an epoch
        // tick and frees its slot, instead of running it to its time limit for nobody.
        let _stop_if_dropped = cancel.drop_guard();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let (answer, after) = job.run(ready);
            let _ = tx.send(answer);
            after.queue();
        });
        let answer = rx
            .await
            .map_err(|_| io_err("the invocation's thread ended without an answer"))?;
        let Answered {
            out,
            published,
            publish,
            waited,
        } = answer?;
        m.stage
            .with_label_values(&["execute"])
            .observe(out.execute.as_secs_f64());
        let published = published?;
        m.stage
            .with_label_values(&["publish"])
            .observe(publish.as_secs_f64());
        Ok(RunOutput {
            content_type: out.content_type,
            body: Bytes::from(out.body),
            logs: Bytes::from(out.logs),
            published,
            fuel_used: out.fuel_used,
            exit_code: None,
            timings: Timings {
                fetch,
                instantiate: waited,
                execute: out.execute,
                publish,
            },
        })
    }
}
