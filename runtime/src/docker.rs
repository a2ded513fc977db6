//! The Docker executor: arbitrary images run on CID inputs through the Docker Engine (bollard).
//!
//! Its *mounting mechanism*: the input CID is exported from the backing store into a host cache
//! directory (once per CID, evicted by size) and bind-mounted read-only at `/inputs`; a fresh
//! directory is mounted writable at `/outputs`. Containers run isolated (no network, read-only
//! root, no capabilities, no-new-privileges, memory/CPU/pids limits, a timeout), are labelled with
//! the repo they belong to, and are always removed — leftovers of a crashed gateway are reaped
//! when it starts again.

use crate::error::{Error, Result};
use crate::store::Store;
use crate::unixfs::read::Kind;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use cid::Cid;
use futures::{StreamExt, TryStreamExt};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub const LABEL: &str = "io.ipfaas.repo";

/// Limits of a Docker function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerLimits {
    pub memory: u64,
    pub cpus: f64,
    pub pids: i64,
    pub timeout_ms: u64,
    pub max_output: u64,
}

impl Default for DockerLimits {
    fn default() -> Self {
        Self {
            memory: 256 << 20,
            cpus: 1.0,
            pids: 128,
            timeout_ms: 60_000,
            max_output: 64 << 20,
        }
    }
}

/// What a Docker function's CID names: the image pinned by ID, and how to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockerDef {
    pub ipfaas: u32,
    pub kind: String,
    pub image: String,
    pub image_id: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub limits: DockerLimits,
}

/// The deploy manifest (`POST /v1/functions` JSON body, or `ipfaas.toml` with `kind = "docker"`).
#[derive(Debug, Clone)]
pub struct DockerManifest {
    pub name: Option<String>,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub limits: DockerLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Option<String>,
    kind: String,
    image: String,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    workdir: Option<String>,
    #[serde(default)]
    limits: BTreeMap<String, serde_json::Value>,
}

/// Reads a manifest; errors name the field.
pub fn parse_manifest(v: serde_json::Value) -> Result<DockerManifest> {
    use crate::functions::bundle::{duration_json, size_json};
    let bad = |m: String| Error::InvalidInput(format!("docker manifest: {m}"));
    let raw: RawManifest = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    if raw.kind != "docker" {
        return Err(bad(format!("kind must be \"docker\", not {:?}", raw.kind)));
    }
    if raw.image.trim().is_empty() {
        return Err(bad("image is empty".into()));
    }
    let mut limits = DockerLimits::default();
    for (k, v) in &raw.limits {
        let field =
            |r: std::result::Result<u64, String>| r.map_err(|m| bad(format!("limits.{k}: {m}")));
        match k.as_str() {
            "memory" => limits.memory = field(size_json(v))?,
            "max_output" => limits.max_output = field(size_json(v))?,
            "timeout" => limits.timeout_ms = field(duration_json(v))?,
            "pids" => {
                limits.pids = field(
                    v.as_u64()
                        .filter(|n| *n > 0)
                        .ok_or("a positive integer".into()),
                )? as i64
            }
            "cpus" => {
                limits.cpus = v
                    .as_f64()
                    .filter(|c| *c > 0.0)
                    .ok_or_else(|| bad(format!("limits.cpus: a positive number, got {v}")))?
            }
            other => {
                return Err(bad(format!(
                    "unknown limit {other:?} (memory, cpus, pids, timeout, max_output)"
                )));
            }
        }
    }
    Ok(DockerManifest {
        name: raw.name,
        image: raw.image,
        entrypoint: raw.entrypoint,
        cmd: raw.cmd,
        env: raw.env,
        workdir: raw.workdir,
        limits,
    })
}

#[derive(Debug)]
pub struct DockerOutcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i64,
    pub start: Duration,
    pub run: Duration,
    pub teardown: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("the container exited with code {code}")]
    Exit {
        code: i64,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    #[error("the container was killed for exceeding its memory limit of {limit} bytes")]
    OutOfMemory { limit: u64, stderr: Vec<u8> },
    #[error("the container ran past its {0} ms time limit and was killed")]
    Timeout(u64, Vec<u8>),
    #[error("the output is over the function's limit of {0} bytes")]
    OutputTooLarge(u64),
    #[error("too many invocations waiting for a container; retry later")]
    Busy,
    #[error(transparent)]
    Host(#[from] Error),
}

impl DockerError {
    pub fn logs(&self) -> &[u8] {
        match self {
            DockerError::Exit { stderr, .. }
            | DockerError::OutOfMemory { stderr, .. }
            | DockerError::Timeout(_, stderr) => stderr,
            _ => &[],
        }
    }
}

fn engine_err(e: bollard::errors::Error) -> Error {
    Error::Io(std::io::Error::other(format!("Docker Engine: {e}")))
}

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
        let h = |n: &str, d: &str| {
            Histogram::with_opts(
                HistogramOpts::new(n, d).buckets(prometheus::exponential_buckets(0.001, 3.0, 12)?),
            )
        };
        let m = Self {
            start: h("ipfaas_docker_start_seconds", "Container create+start")?,
            run: h("ipfaas_docker_run_seconds", "Container run until exit")?,
            teardown: h(
                "ipfaas_docker_teardown_seconds",
                "Collecting output and removing the container",
            )?,
            export_bytes: IntCounter::new(
                "ipfaas_docker_export_bytes_total",
                "Bytes exported for bind mounts",
            )?,
            export_hits: IntCounter::new(
                "ipfaas_docker_export_cache_hits_total",
                "Inputs already exported",
            )?,
            exits: IntCounterVec::new(
                Opts::new(
                    "ipfaas_docker_exits_total",
                    "Container exits by code (oom, timeout)",
                ),
                &["code"],
            )?,
            active: IntGauge::new("ipfaas_docker_active_containers", "Containers running now")?,
        };
        r.register(Box::new(m.start.clone()))?;
        r.register(Box::new(m.run.clone()))?;
        r.register(Box::new(m.teardown.clone()))?;
        r.register(Box::new(m.export_bytes.clone()))?;
        r.register(Box::new(m.export_hits.clone()))?;
        r.register(Box::new(m.exits.clone()))?;
        r.register(Box::new(m.active.clone()))?;
        Ok(m)
    }
}

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

#[derive(Clone)]
pub struct DockerExec {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    label: String,
    exports: PathBuf,
    tmp: PathBuf,
    cfg: DockerConfig,
    slots: Semaphore,
    waiting: AtomicUsize,
    export_lock: tokio::sync::Mutex<()>,
    metrics: Metrics,
}

impl DockerExec {
    /// Connects to the local engine and removes containers a crashed run of this repo left.
    pub async fn connect(repo: &Path, registry: &Registry, cfg: DockerConfig) -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(engine_err)?;
        docker.ping().await.map_err(engine_err)?;
        let label = format!(
            "{:016x}",
            fastmurmur3::hash(repo.to_string_lossy().as_bytes()) as u64
        );
        let dir = repo.join("functions");
        let exports = dir.join("exports");
        std::fs::create_dir_all(&exports)?;
        let this = Self {
            inner: Arc::new(Inner {
                docker,
                label,
                exports,
                tmp: dir.join("tmp"),
                slots: Semaphore::new(cfg.containers),
                cfg,
                waiting: AtomicUsize::new(0),
                export_lock: tokio::sync::Mutex::new(()),
                metrics: Metrics::new(registry)
                    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?,
            }),
        };
        let reaped = this.reap().await?;
        if reaped > 0 {
            tracing::warn!("removed {reaped} container(s) left by an earlier run");
        }
        Ok(this)
    }

    /// Removes every container labelled with this repo.
    pub async fn reap(&self) -> Result<usize> {
        let d = &self.inner.docker;
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{LABEL}={}", self.inner.label)],
        );
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = d.list_containers(Some(opts)).await.map_err(engine_err)?;
        for c in &list {
            if let Some(id) = &c.id {
                let _ = d
                    .remove_container(
                        id,
                        Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                    )
                    .await;
            }
        }
        Ok(list.len())
    }

    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The image's ID; pulls it when missing and a registry answers.
    pub async fn resolve_image(&self, image: &str) -> Result<String> {
        let d = &self.inner.docker;
        if let Ok(i) = d.inspect_image(image).await
            && let Some(id) = i.id
        {
            return Ok(id);
        }
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let pull = async {
            let mut s = d.create_image(Some(opts), None, None);
            while let Some(r) = s.next().await {
                r?;
            }
            Ok::<_, bollard::errors::Error>(())
        };
        let why = match tokio::time::timeout(Duration::from_secs(60), pull).await {
            Ok(Ok(())) => match d.inspect_image(image).await {
                Ok(i) => {
                    return i
                        .id
                        .ok_or_else(|| Error::InvalidInput(format!("image {image:?} has no ID")));
                }
                Err(e) => e.to_string(),
            },
            Ok(Err(e)) => e.to_string(),
            Err(_) => "pull timed out".into(),
        };
        Err(Error::InvalidInput(format!(
            "image {image:?} is neither present in the local Docker Engine nor pullable ({why})"
        )))
    }

    /// Exports `cid` under the cache (once); returns the directory to mount and the path of the
    /// input inside the container.
    ///
    /// Layout: `exports/<cid>/tree/` is what the container sees, exactly the input; the cache's
    /// own bookkeeping (`exports/<cid>/complete`, whose mtime is the last use) sits beside it,
    /// never inside what is mounted.
    async fn export(&self, store: &Store, cid: Cid) -> Result<(PathBuf, String)> {
        let _g = self.inner.export_lock.lock().await;
        let key = cid.to_string();
        let dir = self.inner.exports.join(&key);
        let kind = store.stat(&cid).await?;
        let inside = match &kind {
            Kind::File { .. } => format!("/inputs/{key}"),
            Kind::Directory => "/inputs".to_string(),
            Kind::Symlink { target } => {
                return Err(Error::InvalidInput(format!(
                    "input {cid} is a symlink to {target:?}"
                )));
            }
        };
        let marker = dir.join(EXPORT_MARKER);
        if marker.is_file() {
            self.inner.metrics.export_hits.inc();
            // mark as recently used for eviction
            let _ = std::fs::File::open(&marker)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Ok((dir.join(EXPORT_TREE), inside));
        }
        let staging = self
            .inner
            .exports
            .join(format!(".{key}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let tree = staging.join(EXPORT_TREE);
        std::fs::create_dir_all(&tree)?;
        let bytes = match kind {
            Kind::File { .. } => crate::mount::write_file(store, cid, &tree.join(&key)).await?,
            _ => crate::mount::export_tree(store, cid, &tree).await?,
        };
        std::fs::write(staging.join(EXPORT_MARKER), b"")?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir)?;
        self.inner.metrics.export_bytes.inc_by(bytes);
        self.evict(&key)?;
        Ok((dir.join(EXPORT_TREE), inside))
    }

    /// Drops least recently used exports until the cache fits its size (never `keep`).
    fn evict(&self, keep: &str) -> Result<()> {
        let mut entries = Vec::new();
        let mut total = 0u64;
        for e in std::fs::read_dir(&self.inner.exports)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let size = dir_size(&e.path());
            let used = std::fs::metadata(e.path().join(EXPORT_MARKER))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            total += size;
            entries.push((used, size, name, e.path()));
        }
        entries.sort();
        for (_, size, name, path) in entries {
            if total <= self.inner.cfg.export_cache {
                break;
            }
            if name != keep {
                let _ = std::fs::remove_dir_all(path);
                total -= size;
            }
        }
        Ok(())
    }

    /// Runs one invocation in a fresh container.
    pub async fn run(
        &self,
        store: &Store,
        def: &DockerDef,
        input: Cid,
        params: &BTreeMap<String, String>,
        outputs: &Path,
    ) -> Result<DockerOutcome, DockerError> {
        let inner = &self.inner;
        let _permit = match inner.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if inner.waiting.fetch_add(1, Ordering::SeqCst) >= inner.cfg.queue {
                    inner.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(DockerError::Busy);
                }
                let p = inner.slots.acquire().await;
                inner.waiting.fetch_sub(1, Ordering::SeqCst);
                p.map_err(|_| Error::Io(std::io::Error::other("shutting down")))?
            }
        };
        let (export, inside) = self.export(store, input).await?;

        let mut env: Vec<String> = def.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
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
                format!("{}:/outputs:rw", outputs.display()),
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
        let body = ContainerCreateBody {
            image: Some(def.image_id.clone()),
            entrypoint: def.entrypoint.clone(),
            cmd: def.cmd.clone(),
            env: Some(env),
            working_dir: def.workdir.clone(),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(host),
            ..Default::default()
        };
        let d = &inner.docker;
        let t0 = Instant::now();
        let created = d
            .create_container(Some(CreateContainerOptionsBuilder::default().build()), body)
            .await
            .map_err(engine_err)?;
        let id = created.id;
        inner.metrics.active.inc();
        let r = self.run_created(&id, l, t0).await;
        inner.metrics.active.dec();
        let t = Instant::now();
        let _ = d
            .remove_container(
                &id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
        let teardown_extra = t.elapsed();
        let mut out = r?;
        out.teardown += teardown_extra;
        inner.metrics.teardown.observe(out.teardown.as_secs_f64());
        Ok(out)
    }

    async fn run_created(
        &self,
        id: &str,
        l: DockerLimits,
        t0: Instant,
    ) -> Result<DockerOutcome, DockerError> {
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
        let collector = tokio::spawn(collect(att.output, l.max_output));
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
        )
        .await;
        let run = t1.elapsed();
        inner.metrics.run.observe(run.as_secs_f64());
        let t2 = Instant::now();
        let timed_out = waited.is_err();
        if timed_out {
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
                    return Err(Error::Io(std::io::Error::other(
                        "the container's output stream did not end",
                    ))
                    .into());
                }
            };
        if timed_out {
            inner.metrics.exits.with_label_values(&["timeout"]).inc();
            return Err(DockerError::Timeout(l.timeout_ms, stderr));
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
            return Err(DockerError::OutOfMemory {
                limit: l.memory,
                stderr,
            });
        }
        inner
            .metrics
            .exits
            .with_label_values(&[&code.to_string()])
            .inc();
        if code != 0 {
            return Err(DockerError::Exit {
                code,
                stdout,
                stderr,
            });
        }
        if too_large {
            return Err(DockerError::OutputTooLarge(l.max_output));
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

    /// A fresh `/outputs` directory the container can write.
    pub fn outputs_dir(&self) -> Result<tempfile::TempDir> {
        let t = tempfile::tempdir_in(&self.inner.tmp)?;
        // the container may run as any user
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777))?;
        Ok(t)
    }
}

/// Stdout (up to `max` bytes) and stderr (up to 1 MiB) from the attached stream; whether stdout
/// was cut.
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
) -> Result<(Vec<u8>, Vec<u8>, bool)> {
    let (mut out, mut err, mut cut) = (Vec::new(), Vec::new(), false);
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
            }
            _ => {}
        }
    }
    Ok((out, err, cut))
}

/// In an export cache entry: the exported input, mounted at `/inputs`.
const EXPORT_TREE: &str = "tree";
/// In an export cache entry, beside the tree: written last, so its presence means complete.
const EXPORT_MARKER: &str = "complete";

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => n += m.len(),
                    Err(_) => {}
                }
            }
        }
    }
    n
}
