//! Run time: one engine, components precompiled once (cached on disk by component CID and
//! engine settings), `InstancePre` reused, a fresh store and instance per invocation.

use super::vclock::{self, VClockHost, VClockView, VirtualTime};
use super::{InputReader, Stop, build::GUEST_PATHS};
use crate::error::{Error, Result};
use crate::executor::ExecError;
use rand::{SeedableRng, rngs::StdRng};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{DirPerms, FilePerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Host bindings generated from `function.wit`: the `function` world and its `input` import.
/// Generated items carry only the WIT's own docs, hence the `allow`.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "src/executor/wasm/function.wit",
        world: "function",
    });
}
pub use bindings::*;

/// How often the epoch ticks: how late past its deadline (or its caller's hang-up) a running
/// guest is stopped.
const TICK: Duration = Duration::from_millis(5);
/// The most one input read returns. The guest's reader loops over pieces this size, so only a
/// hand-made call asking for more (up to 4 GiB) sees a short read; the host never allocates
/// what the guest merely asks for.
pub const MAX_READ: u32 = 1 << 24;
/// Largest memory a function may ask for (wasm32's whole address space).
pub const MAX_MEMORY: u64 = 4 << 30;
/// Captured stdout+stderr per invocation.
pub const MAX_LOGS: usize = 1 << 20;

/// Per-function limits (from `ipfaas.toml`, with defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Linear memory cap in bytes.
    pub memory: u64,
    /// Fuel budget: a deterministic CPU limit (roughly one unit per wasm instruction).
    pub fuel: u64,
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: u64,
    /// Largest return value in bytes.
    pub max_output: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: 512 << 20,
            fuel: 50_000_000_000,
            timeout_ms: 60_000,
            max_output: 64 << 20,
        }
    }
}

/// What one invocation hands to an [`Instance`].
pub struct RunRequest {
    /// The invocation's input, which the guest reads through the `input` interface.
    pub input: Box<dyn InputReader>,
    /// The invocation's parameters as (name, value) pairs, passed to `main` as a dict.
    pub params: Vec<(String, String)>,
    /// Seeds the guest's random sources; derive it from (function, input, params).
    pub seed: [u8; 32],
    /// Cancelled when the caller has gone: the run stops within an epoch tick.
    pub cancel: CancellationToken,
    /// Shows the guest's logs while it runs, when someone follows them.
    pub logs: Option<crate::executor::LogTap>,
}

/// What a successful call returned.
#[derive(Debug)]
pub struct RunOutcome {
    /// The content type `main` gave its result.
    pub content_type: String,
    /// The result's bytes (at most [`Limits::max_output`]).
    pub body: Vec<u8>,
    /// The guest's stdout and stderr, interleaved, at most [`MAX_LOGS`] bytes.
    pub logs: Vec<u8>,
    /// Fuel the call consumed.
    pub fuel_used: u64,
    /// Time spent running the guest.
    pub execute: Duration,
    /// Whether the guest may have put anything in `/outputs`: false means it is still empty.
    pub created: bool,
}

/// A component ready to instantiate.
pub struct Loaded {
    pre: FunctionPre<Host>,
    /// Host directories mounted at the guest's build paths (`/0`, `/1`, `/2`).
    mounts: Vec<PathBuf>,
}

struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    input: Box<dyn InputReader>,
    input_error: String,
    /// The first input read that failed in this call. A guest could catch the error and go
    /// on, but its answer would then depend on the network or the clock, not on its input:
    /// such a call fails (and is never cached).
    input_failed: Option<String>,
    limiter: Limiter,
    /// The instance's virtual time (see `vclock`).
    time: VirtualTime,
    /// When the current call (or instantiation) must stop.
    stop: Stop,
    /// Directory listings the guest is reading, sorted, and whether it created anything (see
    /// `detfs`).
    fs: super::detfs::StoreFs,
}

impl super::detfs::DetFsHost for Host {
    fn parts(
        &mut self,
    ) -> (
        wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
        &mut super::detfs::StoreFs,
    ) {
        let fs = wasmtime_wasi::filesystem::WasiFilesystemCtxView {
            ctx: self.wasi.filesystem(),
            table: &mut self.table,
        };
        (fs, &mut self.fs)
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VClockHost for Host {
    fn vclock(&mut self) -> VClockView<'_> {
        VClockView {
            time: &self.time,
            table: &mut self.table,
        }
    }
}

impl ipfaas::function::input::Host for Host {
    fn size(&mut self) -> u64 {
        self.input.size()
    }
    fn read(&mut self, offset: u64, len: u32) -> Vec<u8> {
        match self.input.read_at(offset, len.min(MAX_READ)) {
            Ok(v) => v,
            Err(e) => {
                // the guest sees an error, and the invocation fails whatever it does next
                self.input_failed.get_or_insert_with(|| e.clone());
                self.input_error = e;
                Vec::new()
            }
        }
    }
    fn last_error(&mut self) -> String {
        std::mem::take(&mut self.input_error)
    }
}

struct Limiter {
    memory: usize,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory;
        self.hit |= !ok;
        Ok(ok)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The Wasmtime engine all Python functions run on: precompiles and loads components and makes
/// and calls their instances, with an epoch thread that enforces wall-clock limits.
pub struct WasmEngine {
    engine: Engine,
    linker: Linker<Host>,
    cache_dir: PathBuf,
    stdlib: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl WasmEngine {
    /// `cache_dir` holds precompiled components; `stdlib` is the unpacked standard library.
    /// `instances` bounds how many instances may run at once (pooling allocator slots).
    pub fn new(cache_dir: &Path, stdlib: PathBuf, instances: u32) -> Result<Self> {
        std::fs::create_dir_all(cache_dir)?;
        let mut c = Config::new();
        c.wasm_component_model(true);
        c.cranelift_nan_canonicalization(true);
        c.memory_init_cow(true);
        c.consume_fuel(true);
        c.epoch_interruption(true);
        let mut p = PoolingAllocationConfig::new();
        p.total_component_instances(instances)
            .total_core_instances(instances * 16)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .table_elements(100_000)
            .max_memory_size(MAX_MEMORY as usize)
            .linear_memory_keep_resident(16 << 20)
            .table_keep_resident(1 << 20)
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        let engine = Engine::new(&c).map_err(wasm_err)?;
        let mut linker: Linker<Host> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
        // the guest sees fixed file times and hashes and sorted listings, as at deploy time
        super::detfs::shadow_sync(&mut linker).map_err(wasm_err)?;
        // and virtual time: waiting takes none
        vclock::shadow_sync(&mut linker).map_err(wasm_err)?;
        ipfaas::function::input::add_to_linker::<Host, HasSelf<Host>>(&mut linker, |h| h)
            .map_err(wasm_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (e, s) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        e.increment_epoch();
                    }
                })?;
        }
        Ok(Self {
            engine,
            linker,
            cache_dir: cache_dir.to_path_buf(),
            stdlib,
            loaded: Mutex::new(HashMap::new()),
            stop,
        })
    }

    /// Names this engine's code-generation settings; precompiled files carry it.
    fn settings_tag(&self) -> String {
        struct H(u64);
        impl Hasher for H {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for b in bytes {
                    self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100000001b3);
                }
            }
        }
        let mut h = H(0xcbf29ce484222325);
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Where the native code of a component lives. The name is made here from the parsed CID,
    /// never from the string as given, so no caller's string can point the engine at a file
    /// it did not write (native code is not verified when it is loaded).
    fn cwasm_path(&self, component_cid: &str) -> Result<PathBuf> {
        let cid = cid::Cid::try_from(component_cid).map_err(|e| {
            Error::InvalidInput(format!("component {component_cid:?} is not a CID: {e}"))
        })?;
        Ok(self
            .cache_dir
            .join(format!("{cid}.{}.cwasm", self.settings_tag())))
    }

    /// Compiles a component to native code and caches it (idempotent).
    pub fn precompile(&self, component_cid: &str, component: &[u8]) -> Result<PathBuf> {
        let path = self.cwasm_path(component_cid)?;
        if path.is_file() {
            return Ok(path);
        }
        let code = self
            .engine
            .precompile_component(component)
            .map_err(|e| Error::InvalidInput(format!("not a valid component: {e:#}")))?;
        // a unique temp file, whole and synced before it gets the name `load` opens
        crate::fs::write_atomic(&path, &code, true)?;
        Ok(path)
    }

    /// Whether the component is loaded or its native code is on disk, so that loading it needs
    /// no compilation.
    pub fn is_cached(&self, component_cid: &str) -> bool {
        self.loaded.lock().unwrap().contains_key(component_cid)
            || self.cwasm_path(component_cid).is_ok_and(|p| p.is_file())
    }

    /// Drops a component's native code: from memory (instances made from it keep what they
    /// hold) and from disk. Loading it again compiles it again.
    pub fn forget(&self, component_cid: &str) -> Result<()> {
        self.loaded.lock().unwrap().remove(component_cid);
        match std::fs::remove_file(self.cwasm_path(component_cid)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The component if it is already loaded.
    pub fn loaded(&self, component_cid: &str) -> Option<Arc<Loaded>> {
        self.loaded.lock().unwrap().get(component_cid).cloned()
    }

    /// Loads a precompiled component (see [`Self::precompile`]) with its build directories.
    pub fn load(&self, component_cid: &str, mounts: Vec<PathBuf>) -> Result<Arc<Loaded>> {
        if let Some(l) = self.loaded.lock().unwrap().get(component_cid) {
            return Ok(l.clone());
        }
        let path = self.cwasm_path(component_cid)?;
        // SAFETY: the file was written by `precompile` with this engine's settings (its name
        // carries them) into a directory only this process's repo owns; wasmtime checks the
        // header and rejects code from other settings or versions.
        let component = unsafe { Component::deserialize_file(&self.engine, &path) }
            .map_err(|e| Error::Io(std::io::Error::other(format!("load {path:?}: {e:#}"))))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::InvalidInput(format!("component does not fit: {e:#}")))?;
        let pre = FunctionPre::new(pre).map_err(wasm_err)?;
        let loaded = Arc::new(Loaded { pre, mounts });
        self.loaded
            .lock()
            .unwrap()
            .insert(component_cid.to_string(), loaded.clone());
        Ok(loaded)
    }

    /// Makes a fresh instance for one invocation. No guest code runs here, and nothing of the
    /// invocation is known yet: its input and random seed go in with [`Self::call`]. So an
    /// instance can be made before its request arrives. `outputs` is the host directory the
    /// guest sees as `/outputs` (read-write). Blocking: call from a blocking thread.
    pub fn instantiate(
        &self,
        loaded: &Loaded,
        outputs: &Path,
        limits: Limits,
    ) -> Result<Instance, ExecError> {
        let logs = MemoryOutputPipe::new(MAX_LOGS);
        let mut b = WasiCtxBuilder::new();
        seeded(&mut b, [0; 32]);
        let time = VirtualTime::default();
        b.wall_clock(time.wall())
            .monotonic_clock(time.monotonic())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(logs.clone())
            .stderr(logs.clone());
        let preopen = |b: &mut WasiCtxBuilder, host: &Path, guest: &str, write: bool| {
            let (d, f) = if write {
                (DirPerms::all(), FilePerms::all())
            } else {
                (DirPerms::READ, FilePerms::READ)
            };
            b.preopened_dir(host, guest, d, f)
                .map(|_| ())
                .map_err(|e| Error::Io(std::io::Error::other(format!("mount {guest}: {e:#}"))))
        };
        preopen(&mut b, &self.stdlib, "python", false)?;
        for (host, guest) in loaded.mounts.iter().zip(GUEST_PATHS) {
            preopen(&mut b, host, guest.trim_start_matches('/'), false)?;
        }
        preopen(&mut b, outputs, "outputs", true)?;
        let host = Host {
            wasi: b.build(),
            table: ResourceTable::new(),
            input: Box::new(super::BytesInput(bytes::Bytes::new())),
            input_error: String::new(),
            input_failed: None,
            fs: Default::default(),
            limiter: Limiter {
                memory: limits.memory.min(MAX_MEMORY) as usize,
                hit: false,
            },
            time,
            stop: Stop::after(Duration::from_millis(limits.timeout_ms)),
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limiter);
        store.set_fuel(limits.fuel).map_err(wasm_err)?;
        // every tick, the guest stops if its deadline has passed or its caller has gone
        store.epoch_deadline_callback(|ctx| {
            if ctx.data().stop.is_due() {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store.set_epoch_deadline(1);
        let t0 = Instant::now();
        match loaded.pre.instantiate(&mut store) {
            Ok(func) => Ok(Instance {
                store,
                func,
                logs,
                limits,
                instantiate: t0.elapsed(),
            }),
            Err(e) => Err(failure(e, &store, limits, &logs)),
        }
    }

    /// Runs `main` once in `inst`. The spent instance comes back so that the caller can
    /// answer first: dropping it resets the instance's memory, which takes a while. Blocking:
    /// call from a blocking thread.
    pub fn call(&self, inst: Instance, req: RunRequest) -> (Result<RunOutcome, ExecError>, Spent) {
        let Instance {
            mut store,
            func,
            logs,
            limits,
            ..
        } = inst;
        if let Some(tap) = &req.logs {
            let pipe = logs.clone();
            tap.attach(move || pipe.contents());
        }
        let host = store.data_mut();
        // the time limit counts from the call, not from when the instance was made
        host.stop = Stop::within(Duration::from_millis(limits.timeout_ms), req.cancel);
        host.input = req.input;
        host.input.bound_by(host.stop.clone());
        let mut b = WasiCtxBuilder::new();
        seeded(&mut b, req.seed);
        std::mem::swap(host.wasi.random(), b.build().random());
        store.set_epoch_deadline(1);
        let t1 = Instant::now();
        let result = func.call_run(&mut store, &req.params);
        let execute = t1.elapsed();
        let fuel_used = limits.fuel - store.get_fuel().unwrap_or(0);
        let memory_hit = store.data().limiter.hit;
        let created = store.data().fs.created;
        let host = store.data();
        let stopped = host.stop.cancel.is_cancelled();
        let failed_read = host.input_failed.clone();
        let outcome = match result {
            _ if stopped => Err(ExecError::Cancelled),
            _ if failed_read.is_some() && host.stop.is_due() => Err(ExecError::Timeout {
                limit_ms: limits.timeout_ms,
                logs: logs.contents().to_vec(),
            }),
            _ if failed_read.is_some() => {
                Err(ExecError::Host(Error::Io(std::io::Error::other(format!(
                    "reading the input failed: {}",
                    failed_read.unwrap_or_default()
                )))))
            }
            Err(e) => Err(failure(e, &store, limits, &logs)),
            Ok(Err(json)) => {
                let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                let kind = field("type");
                let logs = logs.contents().to_vec();
                if kind == "MemoryError" && memory_hit {
                    Err(ExecError::OutOfMemory {
                        limit: limits.memory,
                        logs,
                        killed: false,
                    })
                } else {
                    Err(ExecError::Exception {
                        kind,
                        message: field("message"),
                        traceback: field("traceback"),
                        logs,
                    })
                }
            }
            Ok(Ok((_, body))) if body.len() as u64 > limits.max_output => {
                Err(ExecError::OutputTooLarge {
                    size: Some(body.len() as u64),
                    limit: limits.max_output,
                })
            }
            Ok(Ok((content_type, body))) => Ok(RunOutcome {
                content_type,
                body,
                logs: logs.contents().to_vec(),
                fuel_used,
                execute,
                created,
            }),
        };
        (outcome, Spent(store))
    }
}

/// A fresh instance from [`WasmEngine::instantiate`], not yet called.
pub struct Instance {
    store: Store<Host>,
    func: Function,
    logs: MemoryOutputPipe,
    limits: Limits,
    instantiate: Duration,
}

impl Instance {
    /// The limits it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }
    /// How long making it took.
    pub fn instantiate_time(&self) -> Duration {
        self.instantiate
    }
}

/// An instance after its call. Dropping it returns its pooling slot, resetting its memory.
pub struct Spent(#[allow(dead_code)] Store<Host>);

/// Seeds all of the guest's random sources from `seed`.
fn seeded(b: &mut WasiCtxBuilder, seed: [u8; 32]) {
    b.secure_random(StdRng::from_seed(seed))
        .insecure_random(StdRng::from_seed(flip(seed)))
        .insecure_random_seed(u128::from_le_bytes(seed[..16].try_into().unwrap()));
}

/// What a trap (or a failed instantiation) means for the invocation.
fn failure(
    e: wasmtime::Error,
    store: &Store<Host>,
    limits: Limits,
    logs: &MemoryOutputPipe,
) -> ExecError {
    let logs = logs.contents().to_vec();
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ExecError::OutOfFuel {
            budget: limits.fuel,
            logs,
        },
        Some(Trap::Interrupt) => ExecError::Timeout {
            limit_ms: limits.timeout_ms,
            logs,
        },
        _ if store.data().limiter.hit => ExecError::OutOfMemory {
            limit: limits.memory,
            logs,
            killed: false,
        },
        _ => ExecError::Trap {
            message: format!("{e:#}"),
            logs,
        },
    }
}

fn flip(mut s: [u8; 32]) -> [u8; 32] {
    for b in &mut s {
        *b ^= 0x5a;
    }
    s
}

fn wasm_err(e: wasmtime::Error) -> Error {
    Error::Io(std::io::Error::other(format!("wasmtime: {e:#}")))
}
