//! One invocation in a fresh container: create (isolated, limited, labelled, unprivileged),
//! attach, start, wait with a timeout, collect the output, publish, remove.
//!
//! The container and its slot are tied to the invocation by [`Container`]: however the
//! invocation ends (an answer, an error, or its caller hanging up, which drops this future
//! mid-await), the container is killed and removed, and only then is its slot given back.

use super::engine::{LABEL, engine_err};
use super::{DockerDef, DockerExec, DockerLimits};
use crate::error::{Result, io_err};
use crate::executor::outputs::check_quota;
use crate::executor::{ExecError, Produced, Publish, RunOutput, Timings};
use crate::store::Store;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bytes::Bytes;
use cid::Cid;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a container run produced, before publishing.
#[derive(Debug)]
struct DockerOutcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: i64,
    /// Creating and starting the container.
    start: Duration,
    /// From start to exit.
    run: Duration,
    /// Collecting its output and removing it.
    teardown: Duration,
}

impl DockerExec {
    /// Runs `def` on `input` in a fresh container with a fresh `/outputs`, then `publish`es
    /// what it wrote. Docker functions are not assumed pure: nothing here is cached.
    // each argument comes from a different layer (store, definition, input, limits, logs)
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        store: &Store,
        def: &DockerDef,
        input: Cid,
        params: &BTreeMap<String, String>,
        secrets: Vec<String>,
        publish: Publish,
        logs: Option<crate::executor::LogTap>,
    ) -> Result<RunOutput, ExecError> {
        let (uid, gid) = def.user();
        let outputs = self.inner.outputs.for_user(uid, gid)?;
        let t = Instant::now();
        let (out, outputs) = self
            .run_container(store, def, input, params, secrets, outputs, logs)
            .await?;
        let total = t.elapsed();
        let t = Instant::now();
        let (body, logs) = (Bytes::from(out.stdout), Bytes::from(out.stderr));
        let published = {
            let (body, logs) = (body.clone(), logs.clone());
            tokio::task::spawn_blocking(move || {
                check_quota(outputs.path())?;
                Ok::<_, ExecError>(publish(Produced {
                    body: &body,
                    logs: &logs,
                    content_type: "application/octet-stream",
                    outputs: Some(outputs.path()),
                })?)
            })
            .await
            .map_err(io_err)??
        };
        Ok(RunOutput {
            content_type: "application/octet-stream".into(),
            body,
            logs,
            published,
            fuel_used: 0,
            exit_code: Some(out.exit_code),
            timings: Timings {
                fetch: total.saturating_sub(out.start + out.run + out.teardown),
                instantiate: out.start,
                execute: out.run,
                publish: out.teardown + t.elapsed(),
            },
        })
    }

    /// Runs one invocation in a fresh container.
    #[allow(clippy::too_many_arguments)]
    async fn run_container(
        &self,
        store: &Store,
        def: &DockerDef,
        input: Cid,
        params: &BTreeMap<String, String>,
        secrets: Vec<String>,
        outputs: tempfile::TempDir,
        logs: Option<crate::executor::LogTap>,
    ) -> Result<(DockerOutcome, tempfile::TempDir), ExecError> {
        let inner = &self.inner;
        let permit = match inner.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if inner.waiting.fetch_add(1, Ordering::SeqCst) >= inner.cfg.queue {
                    inner.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(ExecError::Busy);
                }
                // counted as waiting until acquired, or until the caller hangs up
                let _waiting = Waiting(&inner.waiting);
                inner
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| io_err("shutting down"))?
            }
        };
        // held until the container is gone: its input is not evicted under it
        let (_lease, export, inside) = self.export(store, input).await?;

        let mut env: Vec<String> = def.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(secrets);
        env.push(format!("IPFAAS_INPUT={inside}"));
        env.push(format!("IPFAAS_INPUT_CID={input}"));
        for (k, v) in params {
            let k: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            env.push(format!("IPFAAS_PARAM_{k}={v}"));
        }
        let mut labels = HashMap::new();
        labels.insert(LABEL.to_string(), inner.label.clone());
        let l = def.limits;
        let host = HostConfig {
            binds: Some(vec![
                format!("{}:/inputs:ro", export.display()),
                format!("{}:/outputs:rw", outputs.path().display()),
            ]),
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            cap_drop: Some(vec!["ALL".into()]),
            memory: Some(l.memory as i64),
            memory_swap: Some(l.memory as i64),
            nano_cpus: Some((l.cpus * 1e9) as i64),
            pids_limit: Some(l.pids),
            // output is read from the attached stream, never kept by a log driver
            log_config: Some(bollard::models::HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        };
        let (uid, gid) = def.user();
        let body = ContainerCreateBody {
            image: Some(def.image_id.clone()),
            user: Some(format!("{uid}:{gid}")),
            entrypoint: def.entrypoint.clone(),
            cmd: def.cmd.clone(),
            env: Some(env),
            working_dir: def.workdir.clone(),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(host),
            ..Default::default()
        };
        let t0 = Instant::now();
        // Created by a task of its own, which hands the container over as a guard: should this
        // future be dropped meanwhile, the guard is dropped in the channel (or on a failed
        // send) and removes the container; it cannot be left running.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (d, active) = (inner.docker.clone(), inner.metrics.active.clone());
        tokio::spawn(async move {
            let opts = CreateContainerOptionsBuilder::default().build();
            let made = d
                .create_container(Some(opts), body)
                .await
                .map(|c| Container::new(d.clone(), c.id, permit, outputs, &active));
            let _ = tx.send(made);
        });
        let container = rx
            .await
            .map_err(|_| io_err("the container's creation was lost"))?
            .map_err(engine_err)?;
        let r = self
            .run_created(&container.id, container.outputs(), l, t0, logs)
            .await;
        let t = Instant::now();
        let outputs = container.remove().await;
        let teardown_extra = t.elapsed();
        let mut out = r?;
        out.teardown += teardown_extra;
        inner.metrics.teardown.observe(out.teardown.as_secs_f64());
        Ok((out, outputs))
    }

    async fn run_created(
        &self,
        id: &str,
        outputs: std::path::PathBuf,
        l: DockerLimits,
        t0: Instant,
        logs: Option<crate::executor::LogTap>,
    ) -> Result<DockerOutcome, ExecError> {
        let inner = &self.inner;
        let d = &inner.docker;
        // attach before start so no output is missed; the log driver would mangle binary
        let att = d
            .attach_container(
                id,
                Some(
                    AttachContainerOptionsBuilder::default()
                        .stdout(true)
                        .stderr(true)
                        .stream(true)
                        .build(),
                ),
            )
            .await
            .map_err(engine_err)?;
        let collector = tokio::spawn(collect(att.output, l.max_output, logs));
        d.start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(engine_err)?;
        let start = t0.elapsed();
        inner.metrics.start.observe(start.as_secs_f64());
        let t1 = Instant::now();
        let waited = tokio::time::timeout(
            Duration::from_millis(l.timeout_ms),
            d.wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>)
                .collect::<Vec<_>>(),
        );
        // the quotas of `/outputs` hold while the container writes, not only when it is done
        let (timed_out, refused) = tokio::select! {
            w = waited => (w.is_err(), None),
            reason = watch_outputs(outputs) => (false, Some(reason)),
        };
        let run = t1.elapsed();
        inner.metrics.run.observe(run.as_secs_f64());
        let t2 = Instant::now();
        if timed_out || refused.is_some() {
            let _ = d
                .kill_container(
                    id,
                    Some(
                        KillContainerOptionsBuilder::default()
                            .signal("KILL")
                            .build(),
                    ),
                )
                .await;
        }
        let (stdout, stderr, too_large) =
            match tokio::time::timeout(Duration::from_secs(10), collector).await {
                Ok(Ok(r)) => r?,
                _ => {
                    return Err(io_err("the container's output stream did not end").into());
                }
            };
        if let Some(reason) = refused {
            inner.metrics.exits.with_label_values(&["outputs"]).inc();
            return Err(ExecError::OutputsRefused { reason });
        }
        if timed_out {
            inner.metrics.exits.with_label_values(&["timeout"]).inc();
            return Err(ExecError::Timeout {
                limit_ms: l.timeout_ms,
                logs: stderr,
            });
        }
        let state = d
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(engine_err)?
            .state
            .unwrap_or_default();
        let code = state.exit_code.unwrap_or(-1);
        if state.oom_killed == Some(true) {
            inner.metrics.exits.with_label_values(&["oom"]).inc();
            return Err(ExecError::OutOfMemory {
                limit: l.memory,
                logs: stderr,
                killed: true,
            });
        }
        inner
            .metrics
            .exits
            .with_label_values(&[&code.to_string()])
            .inc();
        if code != 0 {
            return Err(ExecError::Exit {
                code,
                stdout,
                logs: stderr,
            });
        }
        if too_large {
            return Err(ExecError::OutputTooLarge {
                size: None,
                limit: l.max_output,
            });
        }
        Ok(DockerOutcome {
            stdout,
            stderr,
            exit_code: code,
            start,
            run,
            teardown: t2.elapsed(),
        })
    }
}

/// Watches a running container's `/outputs` against the quotas (see [`check_quota`]); returns
/// why, once it is over them. It looks every [`WATCH_EVERY`], or less often when a look takes
/// long (a look costs a `stat` per entry), so a container can write only what it writes in
/// that time past a quota before it is killed. Looks that fail (a file removed while listed)
/// are retried.
async fn watch_outputs(dir: std::path::PathBuf) -> String {
    loop {
        let t = Instant::now();
        let d = dir.clone();
        if let Ok(Err(ExecError::OutputsRefused { reason })) =
            tokio::task::spawn_blocking(move || check_quota(&d)).await
        {
            return reason;
        }
        tokio::time::sleep(WATCH_EVERY.max(t.elapsed() * 4)).await;
    }
}

/// How often a running container's `/outputs` is checked against the quotas, at most.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Counts an invocation as waiting for a container while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A created container, the slot it holds and its `/outputs`. [`Container::remove`] removes it
/// and gives `/outputs` back; dropped without that (the invocation's future was dropped because
/// its caller went away), it is killed and removed by a task of its own, which then frees the
/// slot and deletes `/outputs` on a blocking thread.
struct Container {
    docker: bollard::Docker,
    id: String,
    /// The slot and `/outputs`; `None` once removed.
    held: Option<(tokio::sync::OwnedSemaphorePermit, tempfile::TempDir)>,
    active: prometheus::IntGauge,
}

impl Container {
    fn new(
        docker: bollard::Docker,
        id: String,
        slot: tokio::sync::OwnedSemaphorePermit,
        outputs: tempfile::TempDir,
        active: &prometheus::IntGauge,
    ) -> Self {
        active.inc();
        Self {
            docker,
            id,
            held: Some((slot, outputs)),
            active: active.clone(),
        }
    }

    /// Its `/outputs` on the host.
    fn outputs(&self) -> std::path::PathBuf {
        let (_, outputs) = self.held.as_ref().expect("held until removed");
        outputs.path().to_path_buf()
    }

    /// Removes the container; returns its `/outputs`.
    async fn remove(mut self) -> tempfile::TempDir {
        remove(&self.docker, &self.id).await;
        // taken only now: dropped during the removal, Drop still removes it
        let (slot, outputs) = self.held.take().expect("held until removed");
        self.active.dec();
        drop(slot);
        outputs
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let Some((slot, outputs)) = self.held.take() else {
            return;
        };
        let (docker, id, active) = (self.docker.clone(), self.id.clone(), self.active.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    remove(&docker, &id).await;
                    active.dec();
                    drop(slot);
                    let _ = tokio::task::spawn_blocking(move || drop(outputs)).await;
                });
            }
            // no runtime left (shutting down): the next start reaps it by its label
            Err(_) => active.dec(),
        }
    }
}

/// Kills and removes container `id`.
async fn remove(docker: &bollard::Docker, id: &str) {
    let opts = RemoveContainerOptionsBuilder::default().force(true).build();
    if let Err(e) = docker.remove_container(id, Some(opts)).await {
        tracing::warn!("removing container {id}: {e}");
    }
}

/// Stdout (up to `max` bytes) and stderr (up to 1 MiB) from the attached stream; whether stdout
/// was cut. Stderr is the logs: `tap` shows them as they come.
async fn collect(
    mut s: std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = std::result::Result<
                        bollard::container::LogOutput,
                        bollard::errors::Error,
                    >,
                > + Send,
        >,
    >,
    max: u64,
    tap: Option<crate::executor::LogTap>,
) -> Result<(Vec<u8>, Vec<u8>, bool)> {
    let (mut out, mut err, mut cut) = (Vec::new(), Vec::new(), false);
    let live = tap.map(|t| {
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = live.clone();
        t.attach(move || Bytes::copy_from_slice(&seen.lock().unwrap_or_else(|p| p.into_inner())));
        live
    });
    while let Some(item) = s.try_next().await.map_err(engine_err)? {
        match item {
            bollard::container::LogOutput::StdOut { message } => {
                if (out.len() + message.len()) as u64 > max {
                    cut = true;
                } else {
                    out.extend_from_slice(&message);
                }
            }
            bollard::container::LogOutput::StdErr { message }
                if err.len() + message.len() <= 1 << 20 =>
            {
                err.extend_from_slice(&message);
                if let Some(l) = &live {
                    l.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&message);
                }
            }
            _ => {}
        }
    }
    Ok((out, err, cut))
}
