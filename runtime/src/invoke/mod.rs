//! Invoking functions: the [`Functions`] facade the gateway uses.
//!
//! An invocation names a function (by name or function CID) and an input CID. The registry
//! gives its definition; a pure function's result may come from the result cache ([`cache`]);
//! otherwise its executor runs it and the output is published with group commit ([`publish`]).
//! With a network attached, a large input held elsewhere sends the invocation to its holder
//! ([`forward`], over [`remote`]), and [`verify`] re-runs one on peers to compare outputs.

pub mod cache;
mod error;
mod forward;
pub mod headers;
mod metrics;
pub mod policy;
pub mod publish;
pub mod remote;
pub mod verify;

pub use error::InvokeError;
pub use policy::PeerInvoke;
pub use verify::{PeerVerdict, Verification};

use crate::error::{Error, Result};
use crate::executor::docker::{DockerConfig, DockerExec};
use crate::executor::outputs::Outputs;
use crate::executor::wasm::WasmExec;
use crate::executor::{LogTap, Published, RunOutput, Timings};
use crate::metrics::error as metrics_error;
use crate::net::{NetMetrics, Network, PeerId};
use crate::registry::{Def, Listed, Registry};
use crate::secrets::Secrets;
use crate::store::Store;
use bytes::Bytes;
use cache::{ResultCache, invocation_key};
use cid::Cid;
use metrics::FnMetrics;
use publish::Publisher;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// One invocation asked for.
pub struct InvokeRequest {
    /// A name or a function CID.
    pub function: String,
    /// The input's CID.
    pub input: Cid,
    /// Parameters, passed to the function as strings.
    pub params: BTreeMap<String, String>,
    /// Whether the result cache may answer.
    pub use_cache: bool,
    /// Where the executor shows the logs while it runs (a job that is followed).
    pub logs: Option<LogTap>,
}

/// A finished invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function that ran.
    pub function_cid: String,
    /// Its input.
    pub input_cid: Cid,
    /// The output's CID.
    pub output_cid: String,
    /// The `/outputs` directory's CID, if the function wrote any.
    pub outputs_cid: Option<String>,
    /// The logs' CID, if there were logs.
    pub logs_cid: Option<String>,
    /// The output's media type.
    pub content_type: String,
    /// The output.
    pub body: Bytes,
    /// The logs.
    pub logs: Bytes,
    /// Answered from the result cache.
    pub cached: bool,
    /// WASM: fuel units spent.
    pub fuel_used: u64,
    /// Docker functions: the container's exit code.
    pub exit_code: Option<i64>,
    /// Where the time went.
    pub timings: Timings,
    /// The peer that ran it, when it was forwarded (compute-to-data).
    pub ran_on: Option<String>,
}

impl Invocation {
    /// An invocation of `function_cid` on `input_cid` that produced `published` (with these
    /// bytes); the other fields start empty, for the caller to fill in.
    pub fn new(
        function_cid: String,
        input_cid: Cid,
        published: Published,
        content_type: String,
        body: Bytes,
        logs: Bytes,
    ) -> Self {
        Self {
            function_cid,
            input_cid,
            output_cid: published.output,
            outputs_cid: published.outputs,
            logs_cid: published.logs,
            content_type,
            body,
            logs,
            cached: false,
            fuel_used: 0,
            exit_code: None,
            timings: Timings::default(),
            ran_on: None,
        }
    }

    /// An invocation an executor ran here.
    fn ran(function_cid: String, input_cid: Cid, out: RunOutput) -> Self {
        Self {
            fuel_used: out.fuel_used,
            exit_code: out.exit_code,
            timings: out.timings,
            ..Self::new(
                function_cid,
                input_cid,
                out.published,
                out.content_type,
                out.body,
                out.logs,
            )
        }
    }
}

/// How this node takes part in the network of nodes.
pub struct NetworkConfig {
    /// Forward an invocation to a peer holding the input when the input is not local and at
    /// least this large; `None` never forwards.
    pub forward_threshold: Option<u64>,
    /// Which peers may run functions here (see [`policy`]).
    pub peer_invoke: PeerInvoke,
}

struct Attached {
    net: Network,
    forward_threshold: Option<u64>,
    gate: policy::PeerGate,
}

/// How many invocations run at once, and where Python packages come from.
pub struct FunctionsConfig {
    /// WASM instances that may run at once.
    pub instances: u32,
    /// Package indexes and wheelhouses for requirements.
    pub packages: crate::pypkg::Settings,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        Self {
            instances: (cores * 2).max(4),
            packages: crate::pypkg::Settings::from_pip_config(),
        }
    }
}

/// Deployed functions: deploy, list, invoke, verify. Cheap to clone.
#[derive(Clone)]
pub struct Functions {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub registry: Registry,
    pub wasm: WasmExec,
    pub docker: OnceLock<DockerExec>,
    pub outputs: Arc<Outputs>,
    /// Deploys hold it shared from their first pinned artifact to their registration; a
    /// purge holds it alone, so it never unpins what a deploy is about to register.
    pub lifecycle: tokio::sync::RwLock<()>,
    network: OnceLock<Attached>,
    publisher: Arc<Publisher>,
    cache: ResultCache,
    metrics: FnMetrics,
    secrets: Secrets,
}

impl Functions {
    /// Opens the functions of the repo `store` lives in (`<repo>/functions`).
    pub fn open(
        store: Store,
        registry: &prometheus::Registry,
        cfg: FunctionsConfig,
    ) -> Result<Self> {
        let dir = store.repo().join("functions");
        let outputs = Arc::new(Outputs::open(&dir.join("tmp"))?);
        let metrics = FnMetrics::new(registry).map_err(metrics_error)?;
        let secrets = Secrets::open(store.repo())?;
        let wasm = WasmExec::open(
            &dir,
            outputs.clone(),
            registry,
            metrics.stage.clone(),
            cfg.instances,
            cfg.packages,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry: Registry::open(&dir)?,
                cache: ResultCache::open(dir.join("results"))?,
                publisher: Publisher::start(store.clone()),
                store,
                wasm,
                docker: OnceLock::new(),
                outputs,
                lifecycle: Default::default(),
                network: OnceLock::new(),
                metrics,
                secrets,
            }),
        })
    }

    /// Makes every published output durable now (call before shutting down).
    pub async fn flush(&self) -> Result<()> {
        self.inner.publisher.commit().await
    }

    /// Makes `cids` (stored with `durable: false, pin: false`) durable and pinned in the next
    /// group commit, with the outputs published meanwhile: at most
    /// [`publish::COMMIT_INTERVAL`] later, and before [`Functions::flush`] returns.
    pub fn commit_later(&self, cids: Vec<Cid>) {
        self.inner.publisher.commit_later(cids);
    }

    /// The backing store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The node's secret store (values Docker functions get at run time).
    pub fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }

    /// Connects the Docker executor (once); without it Docker functions answer 503.
    pub async fn connect_docker(
        &self,
        registry: &prometheus::Registry,
        cfg: DockerConfig,
    ) -> Result<()> {
        let inner = &self.inner;
        let d =
            DockerExec::connect(inner.store.repo(), inner.outputs.clone(), registry, cfg).await?;
        let _ = inner.docker.set(d);
        Ok(())
    }

    /// The Docker executor, or why there is none.
    pub(crate) fn docker(&self) -> Result<&DockerExec> {
        self.inner.docker.get().ok_or_else(|| Error::Unavailable(
            "Docker functions need a Docker Engine, and none was reachable when the gateway started".into(),
        ))
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
                gate: policy::PeerGate::new(cfg.peer_invoke),
            })
            .is_ok();
        if fresh && !self.inner.store.is_offline() {
            remote::serve(self.clone());
        }
    }

    /// Admits one invocation from `peer` under the peer policy, or says why not (HTTP status
    /// and message). Without a network no peer is admitted.
    pub(crate) fn admit_peer(&self, peer: PeerId) -> Result<policy::Admitted, (u16, String)> {
        match self.inner.network.get() {
            Some(a) => a.gate.admit(peer, &a.net),
            None => Err((403, "this node is not on a network".into())),
        }
    }

    /// The network's metrics, once attached.
    pub fn net_metrics(&self) -> Option<&NetMetrics> {
        self.inner.network.get().map(|a| a.net.metrics())
    }

    /// Every deployed name with what it points at.
    pub async fn list(&self) -> Result<Vec<Listed>> {
        self.inner.registry.list(&self.inner.store).await
    }

    /// Whether some name on this node points to `function_cid` (it was deployed here).
    pub fn is_named_here(&self, function_cid: &str) -> bool {
        self.inner.registry.is_named_here(function_cid)
    }

    /// A name's current function CID, or the CID itself.
    pub fn resolve_name(&self, function: &str) -> Result<String> {
        self.inner.registry.resolve(function)
    }

    /// Reads (and caches) a function definition from the store, checked.
    pub async fn definition(&self, function_cid: &str) -> Result<Arc<Def>> {
        self.definition_from(&self.inner.store, function_cid).await
    }

    /// [`Functions::definition`], reading its blocks through `store` (say, one that does not
    /// fetch from peers: [`Store::local_only`]).
    pub async fn definition_from(&self, store: &Store, function_cid: &str) -> Result<Arc<Def>> {
        self.inner.registry.definition(store, function_cid).await
    }

    /// Invokes a function, here or — compute-to-data — on a peer that holds a large input.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        self.counted(req, true).await
    }

    /// Invokes a function on this node, never forwarding it.
    pub async fn invoke_here(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        self.counted(req, false).await
    }

    async fn counted(
        &self,
        req: InvokeRequest,
        may_forward: bool,
    ) -> Result<Invocation, InvokeError> {
        let label = self.inner.registry.metric_label(&req.function);
        let r = if may_forward {
            self.routed(req).await
        } else {
            self.run_here(req).await
        };
        let outcome = match &r {
            Ok(i) if i.cached => "cached",
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        self.inner
            .metrics
            .invocations
            .with_label_values(&[&label, outcome])
            .inc();
        r
    }

    /// Where the result cache record of this invocation lives.
    fn record_path(&self, function_cid: &str, req: &InvokeRequest) -> PathBuf {
        self.inner.cache.path(&invocation_key(function_cid, req))
    }

    /// Whether the result cache holds this invocation.
    fn is_cached(&self, function_cid: &str, req: &InvokeRequest) -> bool {
        let path = self.record_path(function_cid, req);
        self.inner.cache.get(&self.inner.publisher, &path).is_some()
    }

    /// Runs the invocation here: from the result cache when the function is pure and the
    /// request allows it, otherwise in the function's executor.
    async fn run_here(&self, req: InvokeRequest) -> Result<Invocation, InvokeError> {
        let inner = &self.inner;
        let function_cid = self.resolve_name(&req.function)?;
        let def = self.definition(&function_cid).await?;
        let key = invocation_key(&function_cid, &req);
        let record = def.is_pure().then(|| inner.cache.path(&key));
        if req.use_cache
            && let Some(path) = &record
            && let Def::Python(p) = &*def
            && let Some(hit) = self
                .cache_hit(&function_cid, &req, path, p.limits.max_output)
                .await
        {
            return Ok(hit);
        }
        let publish = inner.publisher.for_invocation(record);
        let store = &inner.store;
        let out = match &*def {
            Def::Python(d) => {
                inner
                    .wasm
                    .run(store, d, req.input, &req.params, key, publish, req.logs)
                    .await?
            }
            Def::Docker(d) => {
                let secrets = inner.secrets.environment(&d.secrets)?;
                self.docker()?
                    .run(store, d, req.input, &req.params, secrets, publish, req.logs)
                    .await?
            }
        };
        Ok(Invocation::ran(function_cid, req.input, out))
    }

    /// The cached answer at `path`, if its output is still in the store.
    async fn cache_hit(
        &self,
        function_cid: &str,
        req: &InvokeRequest,
        path: &std::path::Path,
        max_output: u64,
    ) -> Option<Invocation> {
        let inner = &self.inner;
        let rec = inner.cache.get(&inner.publisher, path)?;
        let t = Instant::now();
        let store = &inner.store;
        // a record whose output is gone (or is not what a run could have produced) is ignored:
        // run again
        let output = crate::error::parse_cid(&rec.output).ok()?;
        let body = store.read_all(output, max_output).await.ok()?;
        let logs = match rec.logs.as_deref().map(crate::error::parse_cid) {
            Some(Ok(c)) => store
                .read_all(c, crate::executor::wasm::engine::MAX_LOGS as u64)
                .await
                .unwrap_or_default(),
            _ => Bytes::new(),
        };
        inner.metrics.cache_hits.inc();
        Some(Invocation {
            cached: true,
            timings: Timings {
                fetch: t.elapsed(),
                ..Default::default()
            },
            ..Invocation::new(
                function_cid.to_string(),
                req.input,
                rec.published(),
                rec.content_type.clone(),
                body,
                logs,
            )
        })
    }
}
