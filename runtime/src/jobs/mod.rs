//! Asynchronous invocations that a user can trust: durable, bounded, cancellable, followable.
//!
//! A job is committed to `<repo>/jobs.sqlite` (see [`db`]) before its submitter hears of it.
//! One dispatcher takes queued jobs oldest first and runs up to `concurrency` of them at once,
//! in their own slots so that they never starve synchronous invocations of theirs. A job's
//! function is fixed at submission (a name resolves to its function CID then), so a re-run runs
//! the same code.
//!
//! After a crash or a restart, jobs that were running are run again when their function is
//! pure (a Python function: deterministic, the same output CID again), and marked
//! `interrupted` when it is not (a Docker function may have had effects); `retry` queues them
//! again. Nothing accepted is dropped: a job leaves the table only by the retention rules, and
//! only once it has finished.

mod callback;
mod db;
mod metrics;
mod model;

pub use model::{JobError, JobState, JobView, JobsConfig, ListQuery, NewJob};

use crate::Functions;
use crate::error::{Error, Result};
use crate::executor::LogTap;
use crate::invoke::{InvokeError, InvokeRequest};
use db::Db;
use metrics::JobMetrics;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A job running now: how to stop it, and its logs so far.
struct Running {
    cancel: CancellationToken,
    logs: LogTap,
}

struct Inner {
    db: Mutex<Db>,
    functions: Functions,
    cfg: JobsConfig,
    /// Rung when a job is queued.
    wake: tokio::sync::Notify,
    running: Mutex<HashMap<String, Running>>,
    metrics: JobMetrics,
    http: reqwest::Client,
}

/// The job system: see the module comment.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// A new job id: 128 bits from the kernel's random source, in hex.
fn new_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Jobs {
    /// Opens the job table at `path`, recovers what a crash left running, and starts the
    /// dispatcher and the retention sweep.
    pub async fn open(
        path: &Path,
        functions: Functions,
        cfg: JobsConfig,
        registry: &prometheus::Registry,
    ) -> Result<Jobs> {
        let path = path.to_path_buf();
        let interrupted = json!({
            "error": "the node stopped while this job ran; its function is not pure (a Docker \
                      function may have had effects), so it is not run again by itself: \
                      POST /v1/jobs/{id}/retry runs it again",
        });
        let (db, requeued, stopped) = tokio::task::spawn_blocking(move || {
            let db = Db::open(&path)?;
            let (r, s) = db.recover(now_ms(), &interrupted)?;
            Ok::<_, Error>((db, r, s))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
        if requeued + stopped > 0 {
            tracing::warn!(
                "jobs running when the node stopped: {requeued} queued again (pure functions), \
                 {stopped} marked interrupted"
            );
        }
        let jobs = Jobs {
            inner: Arc::new(Inner {
                db: Mutex::new(db),
                functions,
                cfg: JobsConfig {
                    concurrency: cfg.concurrency.max(1),
                    ..cfg
                },
                wake: tokio::sync::Notify::new(),
                running: Mutex::new(HashMap::new()),
                metrics: JobMetrics::new(registry).map_err(crate::metrics::error)?,
                http: {
                    crate::pypkg::index::install_crypto_provider();
                    reqwest::Client::builder()
                }
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?,
            }),
        };
        jobs.refresh_gauges().await;
        tokio::spawn(jobs.clone().dispatch());
        tokio::spawn(jobs.clone().sweep());
        Ok(jobs)
    }

    /// Runs `f` on the database off the async workers.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let db = inner.db.lock().unwrap_or_else(|p| p.into_inner());
            f(&db)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
    }

    async fn refresh_gauges(&self) {
        match self.db(|db| db.counts()).await {
            Ok(counts) => self.inner.metrics.set_counts(&counts),
            Err(e) => tracing::warn!("counting jobs: {e}"),
        }
    }

    /// Accepts an invocation as a job: resolves its function (so a re-run runs the same
    /// code), checks the queue's bound, and commits it before returning.
    pub async fn submit(
        &self,
        req: InvokeRequest,
        callback_url: Option<String>,
    ) -> Result<JobView, JobError> {
        if let Some(u) = &callback_url {
            callback::check_url(u).map_err(JobError::BadRequest)?;
        }
        let functions = &self.inner.functions;
        let function_cid = functions
            .resolve_name(&req.function)
            .map_err(InvokeError::from)?;
        let def = functions
            .definition(&function_cid)
            .await
            .map_err(InvokeError::from)?;
        let job = NewJob {
            id: new_id()?,
            function: req.function,
            function_cid,
            input_cid: req.input.to_string(),
            params: req.params,
            use_cache: req.use_cache,
            pure: def.is_pure(),
            callback_url,
        };
        let id = job.id.clone();
        let bound = self.inner.cfg.queue;
        let outcome = self
            .db(move |db| {
                let active = db.active()?;
                if active >= bound {
                    return Ok(Err(active));
                }
                db.insert(&job, now_ms())?;
                Ok(Ok(()))
            })
            .await?;
        if let Err(active) = outcome {
            self.inner.metrics.refused.inc();
            return Err(JobError::Full { active });
        }
        self.inner.wake.notify_one();
        self.refresh_gauges().await;
        self.get(&id).await
    }

    /// One job.
    pub async fn get(&self, id: &str) -> Result<JobView, JobError> {
        let key = id.to_string();
        self.db(move |db| db.get(&key))
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    /// Jobs matching `q`, newest first.
    pub async fn list(&self, q: ListQuery) -> Result<Vec<JobView>, JobError> {
        Ok(self.db(move |db| db.list(&q)).await?)
    }

    /// Cancels a job: a queued one never runs; a running one is stopped (the instance
    /// interrupted, the container killed). Returns it as it ends up.
    pub async fn cancel(&self, id: &str) -> Result<JobView, JobError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let j = self.get(id).await?;
            match j.state {
                JobState::Queued => {
                    let key = id.to_string();
                    let err = json!({"error": "cancelled before it ran"});
                    let done = self
                        .db(move |db| {
                            db.finish(
                                &key,
                                &[JobState::Queued],
                                JobState::Cancelled,
                                now_ms(),
                                None,
                                None,
                                Some(&err),
                            )
                        })
                        .await?;
                    if done {
                        self.inner.metrics.cancelled.inc();
                        self.refresh_gauges().await;
                        let j = self.get(id).await?;
                        self.spawn_callback(&j);
                        return Ok(j);
                    }
                    // it started meanwhile: stop it running
                }
                JobState::Running => {
                    let signalled = {
                        let running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
                        running.get(id).map(|r| r.cancel.cancel()).is_some()
                    };
                    if signalled {
                        // the runner records the cancellation once the run has stopped
                        while self.get(id).await?.state == JobState::Running {
                            if tokio::time::Instant::now() > deadline {
                                return Err(JobError::Host(Error::Io(std::io::Error::other(
                                    "the job did not stop within 30 s",
                                ))));
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        return self.get(id).await;
                    }
                }
                s => {
                    return Err(JobError::Conflict(format!(
                        "job {id} is {} already",
                        s.as_str()
                    )));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(JobError::Host(Error::Io(std::io::Error::other(
                    "the job did not stop within 30 s",
                ))));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Queues a failed, cancelled or interrupted job again.
    pub async fn retry(&self, id: &str) -> Result<JobView, JobError> {
        let key = id.to_string();
        let bound = self.inner.cfg.queue;
        // a retry is a submission: it counts against the queue's bound
        let requeued = self
            .db(move |db| {
                let active = db.active()?;
                if active >= bound {
                    return Ok(Err(active));
                }
                db.requeue(&key).map(Ok)
            })
            .await?;
        let requeued = match requeued {
            Ok(r) => r,
            Err(active) => {
                self.inner.metrics.refused.inc();
                return Err(JobError::Full { active });
            }
        };
        if !requeued {
            let j = self.get(id).await?;
            return Err(JobError::Conflict(format!(
                "job {id} is {}: only failed, cancelled or interrupted jobs can be retried",
                j.state.as_str()
            )));
        }
        self.inner.wake.notify_one();
        self.refresh_gauges().await;
        self.get(id).await
    }

    /// The logs a running job has written so far (`None` when it is not running here).
    pub fn live_logs(&self, id: &str) -> Option<bytes::Bytes> {
        let running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(id).map(|r| r.logs.snapshot())
    }

    /// Takes queued jobs, oldest first, as slots free up.
    async fn dispatch(self) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.inner.cfg.concurrency));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let next = match self.db(|db| db.take_next(now_ms())).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("taking the next job: {e}");
                    None
                }
            };
            let Some(job) = next else {
                drop(permit);
                tokio::select! {
                    _ = self.inner.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            let running = Running {
                cancel: CancellationToken::new(),
                logs: LogTap::default(),
            };
            let (cancel, logs) = (running.cancel.clone(), running.logs.clone());
            self.inner
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(job.id.clone(), running);
            let this = self.clone();
            tokio::spawn(async move {
                this.run(job, cancel, logs).await;
                drop(permit);
            });
        }
    }

    /// Runs one job and records how it ended.
    async fn run(&self, job: JobView, cancel: CancellationToken, logs: LogTap) {
        let m = &self.inner.metrics;
        if let Some(s) = job.started_ms {
            m.queued_seconds
                .observe((s - job.created_ms).max(0) as f64 / 1000.0);
        }
        self.refresh_gauges().await;
        let t = std::time::Instant::now();
        let ended = match self.invoke(&job, logs, &cancel).await {
            None => (
                JobState::Cancelled,
                None,
                None,
                Some(json!({"error": "cancelled while it ran"})),
            ),
            Some(Ok(result)) => (JobState::Done, Some(200), Some(result), None),
            Some(Err(e)) => {
                let (status, v) = e.status_and_json();
                (JobState::Failed, Some(status), None, Some(v))
            }
        };
        m.run_seconds.observe(t.elapsed().as_secs_f64());
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job.id);
        let (state, status, result, error) = ended;
        if state == JobState::Cancelled {
            m.cancelled.inc();
        }
        let key = job.id.clone();
        let recorded = self
            .db(move |db| {
                db.finish(
                    &key,
                    &[JobState::Running],
                    state,
                    now_ms(),
                    status,
                    result.as_ref(),
                    error.as_ref(),
                )
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!("recording the end of job {}: {e}", job.id);
        }
        self.prune().await;
        self.refresh_gauges().await;
        if let Ok(j) = self.get(&job.id).await {
            self.spawn_callback(&j);
        }
    }

    /// The job's invocation; `None` when it was cancelled first.
    async fn invoke(
        &self,
        job: &JobView,
        logs: LogTap,
        cancel: &CancellationToken,
    ) -> Option<std::result::Result<Value, InvokeError>> {
        use futures::FutureExt;
        let functions = &self.inner.functions;
        let input = match job.input_cid.parse() {
            Ok(c) => c,
            Err(e) => {
                return Some(Err(InvokeError::from(Error::InvalidInput(format!(
                    "input CID {:?}: {e}",
                    job.input_cid
                )))));
            }
        };
        // by name while the name still means the same function (its metrics keep the
        // name), else by the function CID it was submitted with
        let function = match functions.resolve_name(&job.function) {
            Ok(c) if c == job.function_cid => job.function.clone(),
            _ => job.function_cid.clone(),
        };
        let req = InvokeRequest {
            function,
            input,
            params: job.params.clone(),
            use_cache: job.use_cache,
            logs: Some(logs),
        };
        // A panic in the invocation still ends the job (else it runs "for ever" and holds
        // one of the slots). Dropping the invocation when cancelled stops it, as a caller's
        // hang-up does.
        let run = std::panic::AssertUnwindSafe(functions.invoke(req)).catch_unwind();
        tokio::select! {
            r = run => Some(match r {
                Ok(Ok(inv)) => Ok(json!({
                    "output_cid": inv.output_cid,
                    "outputs_cid": inv.outputs_cid,
                    "logs_cid": inv.logs_cid,
                    "function_cid": inv.function_cid,
                    "input_cid": inv.input_cid.to_string(),
                    "content_type": inv.content_type,
                    "cached": inv.cached,
                    "ran_on": inv.ran_on,
                    "exit_code": inv.exit_code,
                    "logs": String::from_utf8_lossy(&inv.logs),
                    "output_url": format!("/ipfs/{}", inv.output_cid),
                })),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(InvokeError::from(Error::Io(std::io::Error::other(
                    "the invocation panicked",
                )))),
            }),
            _ = cancel.cancelled() => None,
        }
    }

    /// POSTs a finished job to its callback URL, if it has one, and records how that went.
    fn spawn_callback(&self, j: &JobView) {
        let Some(url) = j.callback_url.clone() else {
            return;
        };
        if !j.state.is_finished() {
            return;
        }
        let this = self.clone();
        let body = j.to_json();
        let id = j.id.clone();
        tokio::spawn(async move {
            let outcome = callback::deliver(&this.inner.http, &url, &body).await;
            this.inner
                .metrics
                .callbacks
                .with_label_values(&[if outcome["delivered"] == true {
                    "delivered"
                } else {
                    "failed"
                }])
                .inc();
            if let Err(e) = this.db(move |db| db.set_callback(&id, &outcome)).await {
                tracing::warn!("recording a callback: {e}");
            }
        });
    }

    /// Deletes finished jobs past the retention rules (by age and by count).
    async fn prune(&self) {
        let (keep_for, keep) = (self.inner.cfg.keep_for, self.inner.cfg.keep);
        let before = now_ms().saturating_sub(keep_for.as_millis().min(i64::MAX as u128) as i64);
        match self.db(move |db| db.prune(before, keep)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!("deleted {n} finished jobs past retention"),
            Err(e) => tracing::warn!("deleting old jobs: {e}"),
        }
    }

    /// Applies the retention rules now and every minute (besides at each job's end).
    async fn sweep(self) {
        loop {
            self.prune().await;
            self.refresh_gauges().await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}
