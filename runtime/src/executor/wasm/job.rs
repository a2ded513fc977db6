//! One invocation of a Python function, from taking an instance to publishing the output, and
//! what follows once the answer is out: resetting the spent instance and making the next ones
//! on idle-priority threads.

use super::ready::Ready;
use super::{Inner, Instance, Limits, Loaded, PythonDef, RunOutcome, RunRequest, Spent};
use crate::error::Result;
use crate::executor::{ExecError, Produced, Publish, Published};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One invocation, ready to run on a blocking thread.
pub(super) struct Job {
    pub inner: Arc<Inner>,
    pub loaded: Arc<Loaded>,
    pub def: PythonDef,
    pub run_req: RunRequest,
    pub publish: Publish,
    /// Counted as running until the call returns.
    pub running: Active,
    /// A pooling slot, held until the instance is reset.
    pub permit: tokio::sync::OwnedSemaphorePermit,
}

/// A Python invocation's answer.
pub(super) struct Answered {
    pub out: RunOutcome,
    /// The CIDs of the output, of `/outputs` and of the logs.
    pub published: Result<Published>,
    /// How long publishing took.
    pub publish: Duration,
    /// How long the request waited for its instance: zero when one was made ahead.
    pub waited: Duration,
}

/// What is left to do once the answer has gone out.
pub(super) struct After {
    inner: Arc<Inner>,
    loaded: Arc<Loaded>,
    def: PythonDef,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// The spent instance, its `/outputs` directory and whether that was left empty; `None`
    /// when no instance could be made for the invocation.
    spent: Option<(Spent, tempfile::TempDir, bool)>,
}

impl Job {
    /// Runs the invocation in `ready`, or in an instance made now. Blocking.
    pub fn run(self, ready: Option<Ready<Instance>>) -> (Result<Answered, ExecError>, After) {
        let Job {
            inner,
            loaded,
            def,
            run_req,
            publish,
            running,
            permit,
        } = self;
        let m = &inner.metrics;
        let made = match ready {
            Some(r) => {
                m.instances.with_label_values(&["ahead"]).inc();
                Ok((r.instance, r.outputs, Duration::ZERO))
            }
            None => new_instance(&inner, &loaded, def.limits).map(|(i, d)| {
                m.instances.with_label_values(&["on_request"]).inc();
                let t = i.instantiate_time();
                (i, d, t)
            }),
        };
        let (instance, outputs, waited) = match made {
            Ok(x) => x,
            Err(e) => {
                let after = After {
                    inner,
                    loaded,
                    def,
                    permit,
                    spent: None,
                };
                return (Err(e), after);
            }
        };
        m.stage
            .with_label_values(&["instantiate"])
            .observe(instance.instantiate_time().as_secs_f64());
        let (out, spent) = inner.engine.call(instance, run_req);
        drop(running);
        let mut empty = false;
        let answer = out.and_then(|out| {
            // nothing was created in `/outputs`: no need to list it
            let written = out.created.then(|| outputs.path());
            if let Some(dir) = written {
                crate::executor::outputs::check_quota(dir)?;
            }
            let t = Instant::now();
            let published = publish(Produced {
                body: &out.body,
                logs: &out.logs,
                content_type: &out.content_type,
                outputs: written,
            });
            // no outputs CID: the function left the directory empty
            empty = matches!(&published, Ok(p) if p.outputs.is_none());
            Ok(Answered {
                out,
                published,
                publish: t.elapsed(),
                waited,
            })
        });
        let after = After {
            inner,
            loaded,
            def,
            permit,
            spent: Some((spent, outputs, empty)),
        };
        (answer, after)
    }
}

impl After {
    /// Hands this to a refill thread; never blocks.
    pub fn queue(self) {
        let inner = self.inner.clone();
        // no refill thread left (they only end with the process): finish on the blocking pool
        if let Err(std::sync::mpsc::SendError(after)) = inner.refill.send(self) {
            tokio::task::spawn_blocking(move || after.finish());
        }
    }

    /// Resets the spent instance and makes the next ones of the component. Blocking.
    ///
    /// Runs on a refill thread, at idle priority (see [`refill_threads`]).
    fn finish(self) {
        let After {
            inner,
            loaded,
            def,
            permit,
            spent,
        } = self;
        // no instance could be made for the invocation: making more now would fail alike
        let Some((spent, outputs, empty)) = spent else {
            return;
        };
        drop(spent);
        if empty {
            inner.outputs.spare(outputs);
        }
        drop(permit);
        let limits = def.limits;
        let evicted = inner.ready.refill(
            &def.component,
            |i| i.limits() == limits,
            || new_instance(&inner, &loaded, limits).ok(),
        );
        for r in evicted {
            drop(r.instance);
            inner.outputs.spare(r.outputs);
        }
    }
}

/// Threads that reset spent instances and make the next ones, one per CPU. None of this may
/// slow the invocations running now, so they run at the `SCHED_IDLE` policy: the kernel gives
/// them a CPU only when no other thread wants it, and never preempts a request for them. Under
/// full load they fall behind: a spent instance holds its slot a little longer, and
/// invocations find no instance waiting and make their own, as they would without this.
pub(super) fn refill_threads() -> Result<std::sync::mpsc::Sender<After>> {
    let (tx, rx) = std::sync::mpsc::channel::<After>();
    let rx = Arc::new(Mutex::new(rx));
    let n = std::thread::available_parallelism().map_or(2, |n| n.get());
    // making an instance opens its preopened directories, which may want the runtime
    let rt = tokio::runtime::Handle::current();
    for i in 0..n {
        let (rx, rt) = (rx.clone(), rt.clone());
        std::thread::Builder::new()
            .name(format!("wasm-refill-{i}"))
            .spawn(move || {
                let _rt = rt.enter();
                #[cfg(target_os = "linux")]
                {
                    let p = libc::sched_param { sched_priority: 0 };
                    // SAFETY: pid 0 is the calling thread; `p` is a valid sched_param.
                    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) } != 0 {
                        tracing::warn!(
                            "refill thread stays at normal priority: {}",
                            std::io::Error::last_os_error()
                        );
                    }
                }
                loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    // every sender is gone: the executor was dropped
                    let Ok(after) = next else { return };
                    let finish = std::panic::AssertUnwindSafe(|| after.finish());
                    if std::panic::catch_unwind(finish).is_err() {
                        tracing::error!("making instances ahead panicked");
                    }
                }
            })?;
    }
    Ok(tx)
}

/// A fresh instance of `loaded`, with an `/outputs` directory of its own. Blocking.
fn new_instance(
    inner: &Inner,
    loaded: &Loaded,
    limits: Limits,
) -> Result<(Instance, tempfile::TempDir), ExecError> {
    let outputs = inner.outputs.take()?;
    let instance = inner.engine.instantiate(loaded, outputs.path(), limits)?;
    Ok((instance, outputs))
}

/// Counts an instance in `ipfaas_active_instances` while it lives, even if its thread panics.
pub(super) struct Active(prometheus::IntGauge);

impl Active {
    pub fn new(g: &prometheus::IntGauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}
