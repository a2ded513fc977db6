//! Deployed functions: deploy (bundle → stored, built, precompiled, named), invoke (input CID →
//! output CID, with a persistent result cache), and the registry of names.
//!
//! Everything a function is made of lives in the backing store: the bundle (a directory), the
//! unpacked wheels (a directory), the component (a file) and a definition that names them (a
//! JSON file whose CID is the *function CID*). Only the name → function CID map, the result
//! cache and the local build directories are kept beside the store, under `<repo>/functions`.

pub mod bundle;
mod metrics;
mod ready;
pub mod remote;
pub mod wheels;

use crate::docker::{DockerConfig, DockerDef, DockerError, DockerExec};
use crate::error::{Error, Result, parse_cid};
use crate::mount::{StoreInput, export_tree};
use crate::net::{NetMetrics, Network};
use crate::store::Store;
use crate::store::add::AddOptions;
use crate::wasm::{self, Limits, RunError, RunRequest, WasmEngine, builder};
pub use bundle::Bundle;
use bytes::Bytes;
use cid::Cid;
use futures::{StreamExt, TryStreamExt};
use metrics::FnMetrics;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What a function CID names. Field order is fixed so the same function always serialises to
/// the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDef {
    pub ipfaas: u32,
    pub kind: String,
    pub bundle: String,
    pub site: String,
    pub component: String,
    pub limits: Limits,
    /// Which wrapper and toolchain built the component.
    pub builder: String,
}

impl FunctionDef {
    /// A definition read from the store may come from anyone: its references must be CIDs,
    /// written canonically, before any of them names a path or a cache entry here.
    fn check_references(&self) -> std::result::Result<(), String> {
        for (field, v) in [
            ("bundle", &self.bundle),
            ("site", &self.site),
            ("component", &self.component),
        ] {
            match cid::Cid::try_from(v.as_str()) {
                Ok(c) if c.to_string() == *v => {}
                _ => return Err(format!("`{field}` is not a CID: {v:?}")),
            }
        }
        Ok(())
    }
}

/// Either kind of function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Def {
    Python(FunctionDef),
    Docker(DockerDef),
}

impl Def {
    pub fn kind(&self) -> &str {
        match self {
            Def::Python(_) => "python",
            Def::Docker(_) => "docker",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub name: String,
    pub function_cid: String,
    pub component_cid: String,
    pub bundle_cid: String,
    pub build_ms: u64,
    /// The component came from an earlier identical build.
    pub reused_build: bool,
    pub limits: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub function_cid: String,
    pub kind: String,
    pub component_cid: String,
    pub bundle_cid: String,
}

pub struct InvokeRequest {
    /// A name or a function CID.
    pub function: String,
    pub input: Cid,
    pub params: BTreeMap<String, String>,
    pub use_cache: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub fetch: Duration,
    pub instantiate: Duration,
    pub execute: Duration,
    pub publish: Duration,
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub function_cid: String,
    pub input_cid: Cid,
    pub output_cid: String,
    pub outputs_cid: Option<String>,
    pub logs_cid: Option<String>,
    pub content_type: String,
    pub body: Bytes,
    pub logs: Bytes,
    pub cached: bool,
    pub fuel_used: u64,
    /// Docker functions: the container's exit code.
    pub exit_code: Option<i64>,
    pub timings: Timings,
    /// The peer that ran it, when it was forwarded (compute-to-data).
    pub ran_on: Option<String>,
}

/// What [`Functions::verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub function_cid: String,
    pub input_cid: String,
    /// This node's output CID.
    pub output_cid: String,
    /// Peers asked for.
    pub requested: usize,
    /// Peers that answered with an output.
    pub answered: usize,
    /// Every answering peer gave `output_cid`, and as many answered as were asked for.
    pub agree: bool,
    pub peers: Vec<PeerVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerVerdict {
    pub peer: String,
    pub output_cid: Option<String>,
    pub agrees: bool,
    pub error: Option<String>,
}

/// How this node takes part in the network of nodes.
pub struct NetworkConfig {
    /// Forward an invocation to a peer holding the input when the input is not local and at
    /// least this large; `None` never forwards.
    pub forward_threshold: Option<u64>,
}

struct Attached {
    net: Network,
    forward_threshold: Option<u64>,
}

/// A result cache record: enough to answer a repeat invocation without running it.
#[derive(Clone, Serialize, Deserialize)]
struct CacheRecord {
    output: String,
    content_type: String,
    outputs: Option<String>,
    logs: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Host(#[from] Error),
    /// The invocation ran on a peer and failed there; `body` is the peer's JSON answer.
    #[error("on peer {peer}: {}", body["error"].as_str().unwrap_or("failed"))]
    Remote {
        peer: String,
        status: u16,
        body: serde_json::Value,
    },
}

impl InvokeError {
    /// The HTTP status and JSON body a failed invocation answers with.
    pub fn status_and_json(&self) -> (u16, serde_json::Value) {
        use serde_json::json;
        let logs = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
        match self {
            InvokeError::Host(e) => (e.http_status(), json!({ "error": e.to_string() })),
            InvokeError::Remote { peer, status, body } => {
                let mut v = body.clone();
                if let Some(o) = v.as_object_mut() {
                    o.insert("ran_on".into(), json!(peer));
                }
                (*status, v)
            }
            InvokeError::Docker(d) => {
                let status = match d {
                    DockerError::Exit { .. } => 422,
                    DockerError::OutOfMemory { .. } | DockerError::OutputTooLarge(_) => 413,
                    DockerError::Timeout(..) => 504,
                    DockerError::Busy => 429,
                    DockerError::Host(e) => e.http_status(),
                };
                let mut v = json!({ "error": d.to_string(), "logs": logs(d.logs()) });
                if let DockerError::Exit { code, stdout, .. } = d {
                    v["exit_code"] = json!(code);
                    v["stdout"] = json!(String::from_utf8_lossy(stdout));
                }
                if matches!(d, DockerError::OutOfMemory { .. }) {
                    v["oom_killed"] = json!(true);
                }
                (status, v)
            }
            InvokeError::Run(r) => {
                let status = match r {
                    RunError::Exception { .. } | RunError::OutOfFuel(..) | RunError::Trap(..) => {
                        422
                    }
                    RunError::Timeout(..) => 504,
                    RunError::Memory(..) | RunError::OutputTooLarge { .. } => 413,
                    RunError::Host(e) => e.http_status(),
                };
                let mut v = json!({ "error": r.to_string(), "logs": logs(r.logs()) });
                if let RunError::Exception {
                    kind,
                    message,
                    traceback,
                    ..
                } = r
                {
                    v["type"] = json!(kind);
                    v["message"] = json!(message);
                    v["traceback"] = json!(traceback);
                }
                (status, v)
            }
        }
    }
}

pub struct FunctionsConfig {
    /// Instances that may run at once.
    pub instances: u32,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        Self {
            instances: (cores * 2).max(4),
        }
    }
}

#[derive(Clone)]
pub struct Functions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: WasmEngine,
    dir: PathBuf,
    names: Mutex<BTreeMap<String, String>>,
    defs: Mutex<HashMap<String, Arc<Def>>>,
    docker: std::sync::OnceLock<DockerExec>,
    network: std::sync::OnceLock<Attached>,
    pending: Mutex<Vec<Pending>>,
    /// Empty `/outputs` directories left by earlier invocations, ready for the next ones.
    spare_outputs: Mutex<Vec<tempfile::TempDir>>,
    flush_now: Arc<tokio::sync::Notify>,
    builds: tokio::sync::Mutex<()>,
    slots: Arc<Semaphore>,
    ready: ready::ReadyPool<wasm::Instance>,
    /// Hands spent instances to the refill threads.
    refill: std::sync::mpsc::Sender<After>,
    metrics: FnMetrics,
}

/// Empty `/outputs` directories kept for reuse: most functions write none, and making and
/// removing a directory per invocation allocates and frees an inode each time (on a journal-less
/// ext4, each allocation scans the inodes freed in the last minutes).
const SPARE_OUTPUTS: usize = 64;

impl Inner {
    fn outputs_dir(&self) -> Result<tempfile::TempDir> {
        if let Some(d) = self.spare_outputs.lock().unwrap().pop() {
            return Ok(d);
        }
        Ok(tempfile::tempdir_in(self.dir.join("tmp"))?)
    }

    /// Keeps an `/outputs` directory that [`publish`] found empty for another invocation
    /// (up to [`SPARE_OUTPUTS`]); a directory not kept is removed on drop.
    fn spare_outputs_dir(&self, dir: tempfile::TempDir) {
        let mut spare = self.spare_outputs.lock().unwrap();
        if spare.len() < SPARE_OUTPUTS {
            spare.push(dir);
        }
    }
}

impl Drop for Inner {
    /// Lets the group committer see that it is the last one left, and stop.
    fn drop(&mut self) {
        self.flush_now.notify_one();
    }
}

fn builder_tag() -> String {
    let mut h = Sha256::new();
    h.update(b"componentize-py 0.25.1\0wasmtime 46\0");
    h.update(wasm::WIT);
    h.update(wasm::GUEST_PY);
    hex(&h.finalize()[..8])
}

/// Names the local build directory of (builder, bundle, wheels): one build per triple.
fn build_key(builder: &str, bundle: &str, site: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("{builder}\0{bundle}\0{site}"));
    hex(&h.finalize()[..16])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn io_err(what: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(what.to_string()))
}

/// Writes `bytes` to `path` atomically (unique temp file, rename); `durable` fsyncs it first.
fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    use std::io::Write;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}.{seq}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    if durable {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

impl Functions {
    pub fn open(
        store: Store,
        registry: &prometheus::Registry,
        cfg: FunctionsConfig,
    ) -> Result<Self> {
        let dir = store.repo().join("functions");
        for d in ["builds", "results", "wheels", "tmp", "cwasm"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        // invocations that were running when the process died leave their /outputs behind
        for e in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_dir_all(e?.path());
        }
        let stdlib = wasm::stdlib::ensure(&dir)?;
        // running instances, and those made ahead of their requests
        let pooled = cfg.instances + ready::READY as u32;
        let engine = WasmEngine::new(&dir.join("cwasm"), stdlib, pooled)?;
        let names = match std::fs::read(dir.join("names.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| io_err(format!("{}/names.json is corrupt: {e}", dir.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let metrics = FnMetrics::new(registry).map_err(io_err)?;
        let this = Self {
            inner: Arc::new(Inner {
                store,
                engine,
                dir,
                names: Mutex::new(names),
                defs: Mutex::new(HashMap::new()),
                docker: std::sync::OnceLock::new(),
                network: std::sync::OnceLock::new(),
                pending: Mutex::new(Vec::new()),
                spare_outputs: Mutex::new(Vec::new()),
                flush_now: Arc::new(tokio::sync::Notify::new()),
                builds: tokio::sync::Mutex::new(()),
                slots: Arc::new(Semaphore::new(cfg.instances as usize)),
                ready: ready::ReadyPool::new(metrics.ready.clone()),
                refill: refill_threads()?,
                metrics,
            }),
        };
        // the group committer: wakes on new outputs, commits at most every COMMIT_INTERVAL
        let weak = Arc::downgrade(&this.inner);
        let wake = this.inner.flush_now.clone();
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                tokio::time::sleep(COMMIT_INTERVAL).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = commit_pending(&inner).await {
                    tracing::error!("group commit of invocation outputs failed: {e}");
                }
            }
        });
        Ok(this)
    }

    /// The cache record at `path`: one waiting for its group commit, or one on disk.
    fn cached(&self, path: &Path) -> Option<CacheRecord> {
        let pending = self.inner.pending.lock().unwrap();
        if let Some((_, rec)) = pending
            .iter()
            .rev()
            .filter_map(|p| p.record.as_ref())
            .find(|(p, _)| p == path)
        {
            return Some(rec.clone());
        }
        drop(pending);
        let b = std::fs::read(path).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Makes every published output durable now (call before shutting down).
    pub async fn flush(&self) -> Result<()> {
        commit_pending(&self.inner).await
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Deploys a bundle under `name` (or the name in its `ipfaas.toml`).
    /// Connects the Docker executor (once); without it Docker functions answer 503.
    pub async fn connect_docker(
        &self,
        registry: &prometheus::Registry,
        cfg: DockerConfig,
    ) -> Result<()> {
        let d = DockerExec::connect(self.inner.store.repo(), registry, cfg).await?;
        let _ = self.inner.docker.set(d);
        Ok(())
    }

    fn docker(&self) -> Result<&DockerExec> {
        self.inner.docker.get().ok_or_else(|| Error::Unavailable(
            "Docker functions need a Docker Engine, and none was reachable when the gateway started".into(),
        ))
    }

    /// Deploys a Docker function from its manifest (JSON, or `ipfaas.toml` read as JSON).
    pub async fn deploy_docker(
        &self,
        name: Option<String>,
        manifest: serde_json::Value,
    ) -> Result<Deployed> {
        let t = Instant::now();
        let m = crate::docker::parse_manifest(manifest)?;
        let name = name.or(m.name.clone()).ok_or_else(|| {
            Error::InvalidInput("the function needs a name: pass ?name= or set `name`".into())
        })?;
        bundle::check_name(&name)?;
        let image_id = self.docker()?.resolve_image(&m.image).await?;
        let def = DockerDef {
            ipfaas: 1,
            kind: "docker".into(),
            image: m.image,
            image_id,
            entrypoint: m.entrypoint,
            cmd: m.cmd,
            env: m.env,
            workdir: m.workdir,
            limits: m.limits,
        };
        let limits = serde_json::to_value(def.limits).map_err(io_err)?;
        let function_cid = self.register(&name, Def::Docker(def)).await?;
        Ok(Deployed {
            name,
            function_cid,
            component_cid: String::new(),
            bundle_cid: String::new(),
            build_ms: t.elapsed().as_millis() as u64,
            reused_build: false,
            limits,
        })
    }

    /// Deploys a bundle under `name` (or the name in its `ipfaas.toml`).
    pub async fn deploy(&self, name: Option<String>, bundle: Bundle) -> Result<Deployed> {
        if let Some(v) = bundle.docker_manifest()? {
            return self.deploy_docker(name, v).await;
        }
        let t = Instant::now();
        let manifest = bundle.manifest()?;
        let name = name.or(manifest.name.clone()).ok_or_else(|| {
            Error::InvalidInput(
                "the function needs a name: pass ?name= or set `name` in ipfaas.toml".into(),
            )
        })?;
        bundle::check_name(&name)?;
        if !bundle.files.contains_key("function.py") {
            return Err(Error::InvalidInput(
                "the bundle has no function.py at its top level".into(),
            ));
        }
        let reqs = match bundle.files.get("requirements.txt") {
            Some(b) => wheels::parse(&String::from_utf8_lossy(b))?,
            None => Vec::new(),
        };
        let store = &self.inner.store;

        // 1. the bundle itself
        let files = bundle.files.clone();
        let bundle_cid = add_tree(store, "bundle", move |a| {
            for (path, data) in &files {
                a.bytes(&format!("bundle/{path}"), data)?;
            }
            Ok(())
        })
        .await?;

        // 2. its requirements, unpacked
        let tmp = tempfile::tempdir_in(self.inner.dir.join("tmp"))?;
        let site = tmp.path().join("site");
        std::fs::create_dir_all(&site)?;
        {
            let (site, cache, bundle) =
                (site.clone(), self.inner.dir.join("wheels"), bundle.clone());
            tokio::task::spawn_blocking(move || -> Result<()> {
                for wheel in wheels::resolve(&reqs, &bundle, &cache)? {
                    wheels::unpack(&wheel, &site)?;
                }
                Ok(())
            })
            .await
            .map_err(io_err)??;
        }
        let site_dir = site.clone();
        let site_cid = add_tree(store, "site", move |a| {
            a.dir("site")?;
            a.local(&site_dir, "site", true, true, &mut |_, _| {})
        })
        .await?;

        // 3. the component: built once per (bundle, site, builder)
        let tag = builder_tag();
        let key = build_key(&tag, &bundle_cid, &site_cid);
        let build_dir = self.inner.dir.join("builds").join(&key);
        let _guard = self.inner.builds.lock().await;
        let (component_cid, reused) = match std::fs::read_to_string(build_dir.join("component.cid"))
        {
            Ok(c) => (c.trim().to_string(), true),
            Err(_) => {
                let staging = tmp.path().join("build");
                let dirs = builder::BuildDirs {
                    support: staging.join("support"),
                    bundle: staging.join("bundle"),
                    site: staging.join("site"),
                };
                builder::write_support(&dirs.support)?;
                write_files(&dirs.bundle, &bundle)?;
                std::fs::rename(&site, &dirs.site)?;
                let out = staging.join("component.wasm");
                let tb = Instant::now();
                run_build(&dirs, &out).await?;
                self.inner.metrics.build.observe(tb.elapsed().as_secs_f64());
                let component = std::fs::read(&out)?;
                std::fs::remove_file(&out)?;
                let component_cid = add_bytes(store, Bytes::from(component.clone())).await?;
                let engine_cid = component_cid.clone();
                let this = self.clone();
                tokio::task::spawn_blocking(move || {
                    this.inner.engine.precompile(&engine_cid, &component)
                })
                .await
                .map_err(io_err)??;
                std::fs::write(staging.join("component.cid"), &component_cid)?;
                let _ = std::fs::remove_dir_all(&build_dir);
                std::fs::rename(&staging, &build_dir)?;
                (component_cid, false)
            }
        };
        drop(_guard);

        // 4. the definition, and the name
        let def = FunctionDef {
            ipfaas: 1,
            kind: "python".into(),
            bundle: bundle_cid.clone(),
            site: site_cid,
            component: component_cid.clone(),
            limits: manifest.limits,
            builder: tag,
        };
        let function_cid = self.register(&name, Def::Python(def)).await?;
        Ok(Deployed {
            name,
            function_cid,
            component_cid,
            bundle_cid,
            build_ms: t.elapsed().as_millis() as u64,
            reused_build: reused,
            limits: serde_json::to_value(manifest.limits).map_err(io_err)?,
        })
    }

    /// Stores a definition (its CID is the function CID) and points `name` at it.
    async fn register(&self, name: &str, def: Def) -> Result<String> {
        let json = serde_json::to_vec_pretty(&def).map_err(io_err)?;
        let function_cid = add_bytes(&self.inner.store, Bytes::from(json)).await?;
        self.inner
            .defs
            .lock()
            .unwrap()
            .insert(function_cid.clone(), Arc::new(def));
        self.set_name(name, &function_cid)?;
        Ok(function_cid)
    }

    fn set_name(&self, name: &str, function_cid: &str) -> Result<()> {
        let mut names = self.inner.names.lock().unwrap();
        let mut next = names.clone();
        next.insert(name.to_string(), function_cid.to_string());
        let bytes = serde_json::to_vec_pretty(&next).map_err(io_err)?;
        write_atomic(&self.inner.dir.join("names.json"), &bytes, true)?;
        *names = next;
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<Listed>> {
        let names = self.inner.names.lock().unwrap().clone();
        let mut out = Vec::new();
        for (name, cid) in names {
            let def = self.definition(&cid).await?;
            let (component_cid, bundle_cid) = match &*def {
                Def::Python(p) => (p.component.clone(), p.bundle.clone()),
                Def::Docker(d) => (d.image_id.clone(), String::new()),
            };
            out.push(Listed {
                name,
                function_cid: cid,
                kind: def.kind().to_string(),
                component_cid,
                bundle_cid,
            });
        }
        Ok(out)
    }

    /// Whether some name on this node points to `function_cid` (it was deployed here).
    pub fn is_named_here(&self, function_cid: &str) -> bool {
        self.inner
            .names
            .lock()
            .unwrap()
            .values()
            .any(|c| c == function_cid)
    }

    /// A name's current function CID, or the CID itself.
    pub fn resolve_name(&self, function: &str) -> Result<String> {
        if let Some(c) = self.inner.names.lock().unwrap().get(function) {
            return Ok(c.clone());
        }
        match parse_cid(function) {
            Ok(c) => Ok(c.to_string()),
            Err(_) => Err(Error::UnknownFunction(function.to_string())),
        }
    }

    /// Reads (and caches) a function definition from the store.
    pub async fn definition(&self, function_cid: &str) -> Result<Arc<Def>> {
        if let Some(d) = self.inner.defs.lock().unwrap().get(function_cid) {
            return Ok(d.clone());
        }
        let cid = parse_cid(function_cid)?;
        let bytes = cat_all(&self.inner.store, cid, 1 << 20).await?;
        let not_def = |e: String| {
            Error::InvalidInput(format!(
                "{function_cid} is not an ipfaas function definition ({e})"
            ))
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| not_def(e.to_string()))?;
        let def = match (v["ipfaas"].as_u64(), v["kind"].as_str()) {
            (Some(1), Some("python")) => {
                let d: FunctionDef =
                    serde_json::from_value(v).map_err(|e| not_def(e.to_string()))?;
                d.check_references().map_err(not_def)?;
                Def::Python(d)
            }
            (Some(1), Some("docker")) => {
                Def::Docker(serde_json::from_value(v).map_err(|e| not_def(e.to_string()))?)
            }
            (_, kind) => return Err(not_def(format!("unsupported kind {kind:?}"))),
        };
        let def = Arc::new(def);
        self.inner
            .defs
            .lock()
            .unwrap()
            .insert(function_cid.to_string(), def.clone());
        Ok(def)
    }

    /// Makes the component runnable here: build directories on disk, native code compiled.
    async fn load(&self, def: &FunctionDef) -> Result<Arc<wasm::Loaded>> {
        if let Some(l) = self.inner.engine.loaded(&def.component) {
            return Ok(l);
        }
        let key = build_key(&def.builder, &def.bundle, &def.site);
        let build_dir = self.inner.dir.join("builds").join(&key);
        if !build_dir.join("component.cid").is_file() {
            // a function deployed elsewhere: materialise its directories from the store
            let tmp = tempfile::tempdir_in(self.inner.dir.join("tmp"))?;
            builder::write_support(&tmp.path().join("support"))?;
            export_tree(
                &self.inner.store,
                parse_cid(&def.bundle)?,
                &tmp.path().join("bundle"),
            )
            .await?;
            export_tree(
                &self.inner.store,
                parse_cid(&def.site)?,
                &tmp.path().join("site"),
            )
            .await?;
            std::fs::write(tmp.path().join("component.cid"), &def.component)?;
            let staged = tmp.keep();
            if std::fs::rename(&staged, &build_dir).is_err() {
                let _ = std::fs::remove_dir_all(&staged);
            }
        }
        if !self.inner.engine.is_cached(&def.component) {
            let bytes = cat_all(&self.inner.store, parse_cid(&def.component)?, 1 << 30).await?;
            let (this, cid) = (self.clone(), def.component.clone());
            tokio::task::spawn_blocking(move || this.inner.engine.precompile(&cid, &bytes))
                .await
                .map_err(io_err)??;
        }
        let mounts = vec![
            build_dir.join("support"),
            build_dir.join("bundle"),
            build_dir.join("site"),
        ];
        self.inner.engine.load(&def.component, mounts)
    }

    /// Joins the network: answers invocations from peers, and forwards large inputs held
    /// elsewhere (see [`NetworkConfig`]).
    pub fn attach_network(&self, net: Network, cfg: NetworkConfig) {
        let fresh = self
            .inner
            .network
            .set(Attached {
                net,
                forward_threshold: cfg.forward_threshold,
            })
            .is_ok();
        if fresh && !self.inner.store.is_offline() {
            remote::serve(self.clone());
        }
    }

    pub fn net_metrics(&self) -> Option<&NetMetrics> {
        self.inner.network.get().map(|a| a.net.metrics())
    }

    /// Invokes a function, here or — compute-to-data — on a peer that holds a large input.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        self.invoke_counted(req, true).await
    }

    /// Invokes a function on this node, never forwarding it.
    pub async fn invoke_here(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        self.invoke_counted(req, false).await
    }

    async fn invoke_counted(
        &self,
        req: InvokeRequest,
        may_forward: bool,
    ) -> Result<Invocation, InvokeError> {
        let m = &self.inner.metrics;
        let label = req.function.clone();
        let r = if may_forward {
            self.invoke_routed(req).await
        } else {
            self.invoke_inner(req).await
        };
        let outcome = match &r {
            Ok(i) if i.cached => "cached",
            Ok(_) => "ok",
            Err(InvokeError::Run(RunError::Exception { .. })) => "exception",
            Err(InvokeError::Run(RunError::OutOfFuel(..))) => "out_of_fuel",
            Err(InvokeError::Run(RunError::Timeout(..))) => "timeout",
            Err(InvokeError::Run(RunError::Memory(..))) => "out_of_memory",
            Err(InvokeError::Run(RunError::OutputTooLarge { .. })) => "output_too_large",
            Err(InvokeError::Run(_)) => "trap",
            Err(InvokeError::Docker(DockerError::Exit { .. })) => "exit_nonzero",
            Err(InvokeError::Docker(DockerError::OutOfMemory { .. })) => "out_of_memory",
            Err(InvokeError::Docker(DockerError::Timeout(..))) => "timeout",
            Err(InvokeError::Docker(DockerError::Busy)) => "busy",
            Err(InvokeError::Docker(DockerError::OutputTooLarge(_))) => "output_too_large",
            Err(InvokeError::Docker(DockerError::Host(_))) => "error",
            Err(InvokeError::Host(_)) => "error",
            Err(InvokeError::Remote { .. }) => "remote_error",
        };
        m.invocations.with_label_values(&[&label, outcome]).inc();
        r
    }

    /// Forwards to a peer holding the input when the input is large and not here; when no
    /// such peer can do it, runs here (fetching the input).
    async fn invoke_routed(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        let Some(att) = self.inner.network.get() else {
            return self.invoke_inner(req).await;
        };
        let Some(threshold) = att.forward_threshold else {
            return self.invoke_inner(req).await;
        };
        let store = &self.inner.store;
        if store.is_offline() || store.has_local_root(&req.input) {
            return self.invoke_inner(req).await;
        }
        let function_cid = self.resolve_name(&req.function)?;
        if req.use_cache
            && self
                .cached(&self.record_path(&function_cid, &req))
                .is_some()
        {
            return self.invoke_inner(req).await;
        }
        let size = input_size(store, req.input).await?;
        if size < threshold {
            return self.invoke_inner(req).await;
        }
        let m = att.net.metrics();
        let holders = att
            .net
            .providers(req.input, 3, Duration::from_secs(5))
            .await;
        for peer in holders {
            match remote::invoke_on(self, peer, &function_cid, &req).await {
                Ok(inv) => {
                    m.forwarded.with_label_values(&["out", "ok"]).inc();
                    return Ok(inv);
                }
                Err(remote::RemoteFailure::Function(e)) => {
                    m.forwarded.with_label_values(&["out", "error"]).inc();
                    return Err(e);
                }
                Err(remote::RemoteFailure::Transport(e)) => {
                    m.forwarded.with_label_values(&["out", "failed_over"]).inc();
                    tracing::warn!("forwarding to {peer} failed, trying elsewhere: {e}");
                }
            }
        }
        self.invoke_inner(req).await
    }

    /// Runs the invocation here (from the cache when allowed) and again, without cache, on up
    /// to `peers` connected peers; compares the output CIDs.
    pub async fn verify(
        &self,
        req: InvokeRequest,
        peers: usize,
    ) -> Result<Verification, InvokeError> {
        let att = self.inner.network.get();
        let function_cid = self.resolve_name(&req.function)?;
        let params = req.params.clone();
        let here = self.invoke_here(req).await?;
        let req = InvokeRequest {
            function: function_cid.clone(),
            input: here.input_cid,
            params,
            use_cache: false,
        };
        let candidates = match att {
            Some(a) => a.net.connected().await,
            None => vec![],
        };
        let mut verdicts = vec![];
        let mut answered = 0;
        // Ask `peers` at a time, moving on to others when one fails, until enough answered.
        let mut pending = futures::stream::iter(candidates)
            .map(|p| {
                let req = &req;
                let function_cid = &function_cid;
                async move { (p, remote::ask(self, p, function_cid, req).await) }
            })
            .buffer_unordered(peers.max(1));
        while answered < peers {
            let Some((p, r)) = pending.next().await else {
                break;
            };
            match r {
                Ok(w) => {
                    answered += 1;
                    verdicts.push(PeerVerdict {
                        peer: p.to_string(),
                        agrees: w.output_cid == here.output_cid,
                        output_cid: Some(w.output_cid),
                        error: None,
                    });
                }
                Err(remote::RemoteFailure::Transport(e)) => {
                    // a peer that is not an ipfaas node (e.g. a plain IPFS peer) is not a verdict
                    tracing::debug!("verification on {p}: {e}");
                }
                Err(remote::RemoteFailure::Function(e)) => {
                    answered += 1;
                    verdicts.push(PeerVerdict {
                        peer: p.to_string(),
                        output_cid: None,
                        agrees: false,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        drop(pending);
        let agree = answered >= peers && peers > 0 && verdicts.iter().all(|v| v.agrees);
        if let Some(a) = att {
            let result = if agree {
                "agree"
            } else if answered < peers {
                "incomplete"
            } else {
                "disagree"
            };
            a.net
                .metrics()
                .verifications
                .with_label_values(&[result])
                .inc();
        }
        Ok(Verification {
            function_cid,
            input_cid: here.input_cid.to_string(),
            output_cid: here.output_cid,
            requested: peers,
            answered,
            agree,
            peers: verdicts,
        })
    }

    fn record_path(&self, function_cid: &str, req: &InvokeRequest) -> PathBuf {
        self.inner
            .dir
            .join("results")
            .join(hex(&invocation_key(function_cid, req)))
    }

    async fn invoke_inner(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        let m = &self.inner.metrics;
        let store = &self.inner.store;
        let function_cid = self.resolve_name(&req.function)?;
        let def = match &*self.definition(&function_cid).await? {
            Def::Python(p) => p.clone(),
            Def::Docker(d) => return self.invoke_docker(function_cid, d.clone(), req).await,
        };
        let key_material = invocation_key(&function_cid, &req);
        let record_path = self.inner.dir.join("results").join(hex(&key_material));

        if req.use_cache
            && let Some(rec) = self.cached(&record_path)
        {
            let t = Instant::now();
            let body = cat_all(store, parse_cid(&rec.output)?, u64::MAX).await;
            let logs = match &rec.logs {
                Some(c) => cat_all(store, parse_cid(c)?, u64::MAX)
                    .await
                    .unwrap_or_default(),
                None => Bytes::new(),
            };
            // a record whose output is gone is ignored: run again
            if let Ok(body) = body {
                m.cache_hits.inc();
                return Ok(Invocation {
                    function_cid,
                    input_cid: req.input,
                    output_cid: rec.output,
                    outputs_cid: rec.outputs,
                    logs_cid: rec.logs,
                    content_type: rec.content_type,
                    body,
                    logs,
                    cached: true,
                    fuel_used: 0,
                    exit_code: None,
                    ran_on: None,
                    timings: Timings {
                        fetch: t.elapsed(),
                        ..Default::default()
                    },
                });
            }
        }

        // fetch: the input's layout and the runnable component
        let t = Instant::now();
        let input = StoreInput::open(store, req.input).await?;
        let loaded = self.load(&def).await?;
        let fetch = t.elapsed();
        m.stage
            .with_label_values(&["fetch"])
            .observe(fetch.as_secs_f64());

        let permit = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Io(std::io::Error::other("shutting down")))?;
        let active = Active::new(&m.active);
        let run_req = RunRequest {
            input: Box::new(input),
            params: req.params.clone().into_iter().collect(),
            seed: key_material,
        };
        let job = Job {
            inner: self.inner.clone(),
            loaded,
            def,
            run_req,
            record_path,
            running: active,
            permit,
        };
        let limits = job.def.limits;
        let ready = self
            .inner
            .ready
            .take(&job.def.component, |i| i.limits() == limits);
        let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        let answer = match ready {
            // An instance is waiting: run it on this thread, with no hop to another one and
            // back. `block_in_place` lets this worker's other tasks move to another thread
            // should the function run long.
            Some(r) if multi_thread => {
                let run = std::panic::AssertUnwindSafe(|| job.run(Some(r)));
                let (answer, after) = tokio::task::block_in_place(|| std::panic::catch_unwind(run))
                    .map_err(|_| io_err("the invocation's thread panicked"))?;
                after.queue();
                answer
            }
            ready => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::task::spawn_blocking(move || {
                    let (answer, after) = job.run(ready);
                    let _ = tx.send(answer);
                    after.queue();
                });
                rx.await
                    .map_err(|_| io_err("the invocation's thread ended without an answer"))?
            }
        };
        let Answered {
            out,
            published,
            publish,
            waited,
        } = answer?;
        m.stage
            .with_label_values(&["execute"])
            .observe(out.execute.as_secs_f64());
        let (output_cid, outputs_cid, logs_cid) = published?;
        m.stage
            .with_label_values(&["publish"])
            .observe(publish.as_secs_f64());
        Ok(Invocation {
            function_cid,
            input_cid: req.input,
            output_cid,
            outputs_cid,
            logs_cid,
            content_type: out.content_type,
            body: Bytes::from(out.body),
            logs: Bytes::from(out.logs),
            cached: false,
            fuel_used: out.fuel_used,
            exit_code: None,
            ran_on: None,
            timings: Timings {
                fetch,
                instantiate: waited,
                execute: out.execute,
                publish,
            },
        })
    }
}

impl Functions {
    /// Docker functions are not assumed pure: every invocation runs (no result cache).
    async fn invoke_docker(
        &self,
        function_cid: String,
        def: DockerDef,
        req: InvokeRequest,
    ) -> Result<Invocation, InvokeError> {
        let store = &self.inner.store;
        let docker = self.docker()?;
        let outputs = docker.outputs_dir()?;
        let t = Instant::now();
        let out = docker
            .run(store, &def, req.input, &req.params, outputs.path())
            .await?;
        let total = t.elapsed();
        let t = Instant::now();
        let body = Bytes::from(out.stdout);
        let logs = Bytes::from(out.stderr);
        let (output_cid, outputs_cid, logs_cid) = {
            let (inner, body, logs) = (self.inner.clone(), body.clone(), logs.clone());
            let dir = outputs.path().to_path_buf();
            tokio::task::spawn_blocking(move || publish(&inner, &body, &logs, Some(&dir), None))
                .await
                .map_err(io_err)??
        };
        Ok(Invocation {
            function_cid,
            input_cid: req.input,
            output_cid,
            outputs_cid,
            logs_cid,
            content_type: "application/octet-stream".into(),
            body,
            logs,
            cached: false,
            fuel_used: 0,
            exit_code: Some(out.exit_code),
            ran_on: None,
            timings: Timings {
                fetch: total.saturating_sub(out.start + out.run + out.teardown),
                instantiate: out.start,
                execute: out.run,
                publish: out.teardown + t.elapsed(),
            },
        })
    }
}

/// Names an invocation: the result cache key and the guest's random seed.
fn invocation_key(function_cid: &str, req: &InvokeRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"ipfaas-invocation-v1\0");
    h.update(function_cid.as_bytes());
    h.update(b"\0");
    h.update(req.input.to_string().as_bytes());
    for (k, v) in &req.params {
        h.update(b"\0");
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().into()
}

/// Bytes an input stands for: a file's size, or a directory's cumulative DAG size.
async fn input_size(store: &Store, cid: Cid) -> Result<u64> {
    match store.stat(&cid).await? {
        crate::unixfs::read::Kind::File { size } => Ok(size),
        crate::unixfs::read::Kind::Directory => {
            Ok(store.entries(&cid).await?.iter().map(|e| e.tsize).sum())
        }
        crate::unixfs::read::Kind::Symlink { .. } => Ok(0),
    }
}

/// One invocation of a Python function, from taking an instance to publishing the output.
struct Job {
    inner: Arc<Inner>,
    loaded: Arc<wasm::Loaded>,
    def: FunctionDef,
    run_req: RunRequest,
    record_path: PathBuf,
    /// Counted as running until the call returns.
    running: Active,
    /// A pooling slot, held until the instance is reset.
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// A Python invocation's answer.
struct Answered {
    out: wasm::RunOutcome,
    /// The CIDs of the output, of `/outputs` and of the logs.
    published: Result<(String, Option<String>, Option<String>)>,
    /// How long publishing took.
    publish: Duration,
    /// How long the request waited for its instance: zero when one was made ahead.
    waited: Duration,
}

/// What is left to do once the answer has gone out.
struct After {
    inner: Arc<Inner>,
    loaded: Arc<wasm::Loaded>,
    def: FunctionDef,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// The spent instance, its `/outputs` directory and whether that was left empty; `None`
    /// when no instance could be made for the invocation.
    spent: Option<(wasm::Spent, tempfile::TempDir, bool)>,
}

impl Job {
    /// Runs the invocation in `ready`, or in an instance made now. Blocking.
    fn run(
        self,
        ready: Option<ready::Ready<wasm::Instance>>,
    ) -> (Result<Answered, RunError>, After) {
        let Job {
            inner,
            loaded,
            def,
            run_req,
            record_path,
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
        let answer = out.map(|out| {
            let t = Instant::now();
            let draft = CacheRecordDraft {
                content_type: out.content_type.clone(),
            };
            // nothing was created in `/outputs`: no need to list it
            let published = publish(
                &inner,
                &out.body,
                &out.logs,
                out.created.then(|| outputs.path()),
                Some((record_path, draft)),
            );
            // no outputs CID: the function left the directory empty
            empty = matches!(&published, Ok((_, None, _)));
            Answered {
                out,
                published,
                publish: t.elapsed(),
                waited,
            }
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
    fn queue(self) {
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
            inner.spare_outputs_dir(outputs);
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
            inner.spare_outputs_dir(r.outputs);
        }
    }
}

/// Threads that reset spent instances and make the next ones, one per CPU. None of this may
/// slow the invocations running now, so they run at the `SCHED_IDLE` policy: the kernel gives
/// them a CPU only when no other thread wants it, and never preempts a request for them. Under
/// full load they fall behind: a spent instance holds its slot a little longer, and
/// invocations find no instance waiting and make their own, as they would without this.
fn refill_threads() -> Result<std::sync::mpsc::Sender<After>> {
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
                    // every sender is gone: the functions service was dropped
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
    loaded: &wasm::Loaded,
    limits: Limits,
) -> Result<(wasm::Instance, tempfile::TempDir), RunError> {
    let outputs = inner.outputs_dir()?;
    let instance = inner.engine.instantiate(loaded, outputs.path(), limits)?;
    Ok((instance, outputs))
}

/// Stores an invocation's output, its `/outputs` directory and its logs in one add, without
/// waiting for the disk; returns their CIDs and queues them for the next group commit. Runs on
/// a blocking thread (file I/O). `outputs` is `None` when the directory is known to be empty.
fn publish(
    inner: &Inner,
    body: &[u8],
    logs: &[u8],
    outputs: Option<&Path>,
    record: Option<(PathBuf, CacheRecordDraft)>,
) -> Result<(String, Option<String>, Option<String>)> {
    let outputs = match outputs {
        Some(dir) if std::fs::read_dir(dir)?.next().is_some() => Some(dir),
        _ => None,
    };
    let opts = AddOptions {
        pin: false,
        durable: false,
        ..AddOptions::default()
    };
    let out = inner.store.add_blocking(opts, |a| {
        a.bytes("output", body)?;
        if !logs.is_empty() {
            a.bytes("logs", logs)?;
        }
        if let Some(dir) = outputs {
            a.local(dir, "outputs", true, true, &mut |_, _| {})?;
        }
        Ok(())
    })?;
    let root = |name: &str| out.roots.iter().find(|r| r.path == name).map(|r| r.cid);
    let output = root("output").ok_or_else(|| io_err("no output root"))?;
    let (outputs_cid, logs_cid) = (root("outputs"), root("logs"));
    let cids: Vec<Cid> = [Some(output), outputs_cid, logs_cid]
        .into_iter()
        .flatten()
        .collect();
    let record = record.map(|(path, d)| {
        let rec = CacheRecord {
            output: output.to_string(),
            content_type: d.content_type,
            outputs: outputs_cid.map(|c| c.to_string()),
            logs: logs_cid.map(|c| c.to_string()),
        };
        (path, rec)
    });
    inner.pending.lock().unwrap().push(Pending { cids, record });
    inner.flush_now.notify_one();
    Ok((
        output.to_string(),
        outputs_cid.map(|c| c.to_string()),
        logs_cid.map(|c| c.to_string()),
    ))
}

/// Counts an instance in `ipfaas_active_instances` while it lives, even if its thread panics.
struct Active(prometheus::IntGauge);

impl Active {
    fn new(g: &prometheus::IntGauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct CacheRecordDraft {
    content_type: String,
}

/// Published but not yet durable: its blocks, pins and cache record wait for a group commit.
struct Pending {
    cids: Vec<Cid>,
    record: Option<(PathBuf, CacheRecord)>,
}

/// How long outputs may wait for the group commit that makes them durable.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// One group commit: a `syncfs` for every block written, then pins, then cache records (a
/// record never points at blocks a crash could lose).
async fn commit_pending(inner: &Inner) -> Result<()> {
    let batch: Vec<Pending> = std::mem::take(&mut *inner.pending.lock().unwrap());
    if batch.is_empty() {
        return Ok(());
    }
    let cids: Vec<Cid> = batch.iter().flat_map(|p| p.cids.iter().copied()).collect();
    if let Err(e) = inner.store.sync_and_pin(cids).await {
        // keep the batch (and its records out of the cache) for the next commit
        let mut pending = inner.pending.lock().unwrap();
        let newer = std::mem::replace(&mut *pending, batch);
        pending.extend(newer);
        return Err(e);
    }
    // the blocks are durable; a torn record after a crash is unreadable and ignored
    for p in batch {
        if let Some((path, rec)) = p.record {
            let bytes = serde_json::to_vec(&rec).map_err(io_err)?;
            // `?cache=false` re-runs write the record they already have: reading it back is far
            // cheaper than a create, rename and the old inode's eviction
            if std::fs::read(&path).is_ok_and(|old| old == bytes) {
                continue;
            }
            write_atomic(&path, &bytes, false)?;
        }
    }
    Ok(())
}

/// The build runs on its own thread: componentize-py's future is heavy and not `Send`.
async fn run_build(dirs: &builder::BuildDirs, out: &Path) -> Result<()> {
    let dirs = builder::BuildDirs {
        support: dirs.support.clone(),
        bundle: dirs.bundle.clone(),
        site: dirs.site.clone(),
    };
    let out = out.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("component-build".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let r = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::from)
                .and_then(|rt| rt.block_on(builder::build(&dirs, &out)));
            let _ = tx.send(r);
        })?;
    rx.await.map_err(|_| io_err("the build thread died"))?
}

fn write_files(dir: &Path, bundle: &Bundle) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for (path, data) in &bundle.files {
        let dest = path.split('/').fold(dir.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, data)?;
    }
    Ok(())
}

/// Adds a tree whose single root is `root`; returns the root's CID.
async fn add_tree<F>(store: &Store, root: &str, feed: F) -> Result<String>
where
    F: FnOnce(&mut crate::store::add::Adder<'_>) -> Result<()> + Send + 'static,
{
    let out = store.add(AddOptions::default(), feed).await?;
    out.roots
        .iter()
        .find(|r| r.path == root)
        .map(|r| r.cid.to_string())
        .ok_or_else(|| io_err(format!("add produced no {root:?} root")))
}

/// Adds bytes as one file (default import profile); returns its CID.
pub async fn add_bytes(store: &Store, data: Bytes) -> Result<String> {
    add_tree(store, "data", move |a| {
        a.bytes("data", &data)?;
        Ok(())
    })
    .await
}

/// A whole file, refusing more than `max` bytes.
async fn cat_all(store: &Store, cid: Cid, max: u64) -> Result<Bytes> {
    let (size, mut s) = store.cat(cid, 0, None).await?;
    if size > max {
        return Err(Error::InvalidInput(format!(
            "{cid} is {size} bytes, more than {max}"
        )));
    }
    let mut out = Vec::with_capacity(size as usize);
    while let Some(b) = s.try_next().await? {
        out.extend_from_slice(&b);
    }
    Ok(out.into())
}
