//! Deploy-time build: a bundle directory (function.py, modules, site-packages) becomes a
//! pre-initialised WebAssembly component through the `componentize-py` crate.
//!
//! The build is reproducible: componentize-py snapshots the interpreter after importing the
//! function, and CPython reads the clock and the random source while it starts (the `hash()`
//! seed, `random`'s seed). The stock pre-init context uses the host's real ones, so two builds of
//! one bundle differed. We link WASI ourselves and shadow the clock and random interfaces with
//! fixed ones, so the snapshot depends only on the bundle's bytes.
//!
//! [`wheels`] resolves `requirements.txt` to wheels; [`stdlib`] unpacks the standard library
//! that instances import from at run time.

pub mod stdlib;
pub mod wheels;

use super::vclock::VirtualTime;
use super::{GUEST_MODULE, GUEST_PY, WIT, WORLD};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::clocks::{WasiClocksCtxView, WasiClocksView};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;

/// Where the guest finds each build directory: the same mount points are used at run time.
pub const GUEST_PATHS: [&str; 3] = ["/0", "/1", "/2"];

/// The directories a build imports from. They must all exist (componentize-py drops missing
/// ones, which would shift the guest mount points).
pub struct BuildDirs {
    /// The ipfaas guest wrapper and the WIT world.
    pub support: PathBuf,
    /// The user's bundle (function.py and friends).
    pub bundle: PathBuf,
    /// Unpacked wheels from requirements.txt.
    pub site: PathBuf,
}

/// Writes the wrapper module and the WIT world into `dir` (created if missing).
pub fn write_support(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("wit"))?;
    std::fs::write(dir.join("wit/function.wit"), WIT)?;
    std::fs::write(dir.join(format!("{GUEST_MODULE}.py")), GUEST_PY)?;
    Ok(())
}

/// The shortest wall-clock limit of a pre-initialisation, whatever the function's own limit:
/// starting CPython and importing a bundle takes seconds on a slow machine.
pub const MIN_INIT_TIME: std::time::Duration = std::time::Duration::from_secs(60);

/// The smallest fuel budget of a pre-initialisation, whatever the function's own budget (which
/// is for one call of `main`): starting CPython and importing a bundle takes hundreds of
/// millions of units.
pub const MIN_INIT_FUEL: u64 = 10_000_000_000;

/// The longest a pre-initialisation may run, whatever the function's own limit: builds share
/// [`super::MAX_BUILDS`] slots, so this is how long one deploy can hold up another.
pub const MAX_INIT_TIME: std::time::Duration = std::time::Duration::from_secs(600);
/// The largest fuel budget of a pre-initialisation.
pub const MAX_INIT_FUEL: u64 = 1_000_000_000_000;

/// Builds the component into `out`. The pre-initialisation runs the function's module-level
/// code under the function's memory limit, its fuel budget (clamped to [`MIN_INIT_FUEL`] ..
/// [`MAX_INIT_FUEL`]) and a wall-clock limit of its timeout (clamped to [`MIN_INIT_TIME`] ..
/// [`MAX_INIT_TIME`]), counted from when its code starts (not while it is compiled). A problem in the user's code, or a limit it hit, comes back as
/// [`Error::InvalidInput`] naming the culprit.
pub async fn build(dirs: &BuildDirs, out: &Path, limits: super::Limits) -> Result<()> {
    let init = componentize_py::InitLimits {
        fuel: limits.fuel.clamp(MIN_INIT_FUEL, MAX_INIT_FUEL),
        memory: usize::try_from(limits.memory).unwrap_or(usize::MAX),
        timeout: std::time::Duration::from_millis(limits.timeout_ms)
            .clamp(MIN_INIT_TIME, MAX_INIT_TIME),
    };
    let wit = dirs.support.join("wit");
    let paths: Vec<String> = [&dirs.support, &dirs.bundle, &dirs.site]
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for p in &paths {
        if !Path::new(p).is_dir() {
            return Err(Error::Io(std::io::Error::other(format!(
                "build directory {p} is missing"
            ))));
        }
    }
    let python_path: Vec<&str> = paths.iter().map(String::as_str).collect();
    let empty: HashMap<&str, &str> = HashMap::new();
    let link: &dyn Fn(&mut Linker<componentize_py::Ctx>) -> anyhow::Result<()> =
        &deterministic_wasi;
    let generator = componentize_py::ComponentGenerator {
        wit_paths: &[wit.as_path()],
        worlds: &[WORLD],
        features: &[],
        all_features: false,
        world_module: None,
        python_path: &python_path,
        module_worlds: &[],
        app_name: GUEST_MODULE,
        output_path: out,
        add_to_linker: Some(link),
        stub_wasi: false,
        import_interface_names: &empty,
        export_interface_names: &empty,
        full_names: false,
        intersect_world: None,
        init_limits: Some(init),
    };
    generator.generate().await.map_err(|e| classify(e, &init))
}

/// Tells the user's mistakes (reported by the wrapper with a marker line, or a limit their
/// module-level code hit) from ours.
fn classify(e: anyhow::Error, limits: &componentize_py::InitLimits) -> Error {
    let trap = e.chain().find_map(|c| c.downcast_ref::<wasmtime::Trap>());
    match trap {
        Some(wasmtime::Trap::OutOfFuel) => {
            return Error::InvalidInput(format!(
                "function.py: importing it used the whole fuel budget of {} units (module-level code runs at deploy time, under the function's limits)",
                limits.fuel
            ));
        }
        Some(wasmtime::Trap::Interrupt) => {
            return Error::InvalidInput(format!(
                "function.py: importing it ran past the {} s deploy-time limit (module-level code runs at deploy time)",
                limits.timeout.as_secs()
            ));
        }
        _ => {}
    }
    let text = format!("{e:#}");
    if let Some(at) = text.find("IPFAAS-BUILD-ERROR: ") {
        let msg = text[at + "IPFAAS-BUILD-ERROR: ".len()..].trim_end();
        // the marker's message is the Python side's; what wasmtime adds after it (the
        // trap, a wasm backtrace) says nothing to the function's author
        let end = [
            "wasm backtrace",
            "\nStack backtrace",
            "error while executing at",
        ]
        .iter()
        .filter_map(|m| msg.find(m))
        .min()
        .unwrap_or(msg.len());
        let msg = msg[..end].trim_end().trim_end_matches(':').trim_end();
        return Error::InvalidInput(msg.to_string());
    }
    Error::Io(std::io::Error::other(format!(
        "component build failed: {text}"
    )))
}

/// The pre-initialisation's monotonic clock: virtual time (see `vclock`), so module-level
/// code that sleeps neither holds the build nor changes the snapshot.
struct DetClockView<'a>(WasiClocksCtxView<'a>);
struct DetClock;
impl HasData for DetClock {
    type Data<'a> = DetClockView<'a>;
}

thread_local! {
    /// The build's clock. Each build runs its pre-initialisation on a thread of its own (see
    /// `load::run_build`), where every host call is made, and builds run side by side: the
    /// clock is the thread's.
    static MONO: VirtualTime = VirtualTime::default();
}

impl monotonic_clock::Host for DetClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(MONO.with(VirtualTime::now))
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1_000)
    }
    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        MONO.with(|m| m.subscribe_instant(self.0.table, when))
    }
    fn subscribe_duration(&mut self, d: u64) -> wasmtime::Result<Resource<DynPollable>> {
        MONO.with(|m| m.subscribe_duration(self.0.table, d))
    }
}

/// WASI for the pre-initialisation, with clocks and random sources that never change.
fn deterministic_wasi(linker: &mut Linker<componentize_py::Ctx>) -> anyhow::Result<()> {
    MONO.with(VirtualTime::reset);
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    const V: &str = "0.2.12";
    const EPOCH: u64 = 1_700_000_000;
    {
        let mut i = linker.instance(&format!("wasi:clocks/wall-clock@{V}"))?;
        type Dt = wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
        i.func_wrap("now", |_, (): ()| {
            Ok((Dt {
                seconds: EPOCH,
                nanoseconds: 0,
            },))
        })?;
        i.func_wrap("resolution", |_, (): ()| {
            Ok((Dt {
                seconds: 0,
                nanoseconds: 1000,
            },))
        })?;
    }
    // shadowing replaces whole interfaces: these two are re-added complete
    wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<_, DetClock>(
        linker,
        |c| DetClockView(c.clocks()),
    )?;
    super::detfs::add_to_linker(linker)?;
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(0)));
    let bytes = move |rng: &Arc<Mutex<StdRng>>, len: u64| -> wasmtime::Result<(Vec<u8>,)> {
        if len > 64 << 20 {
            return Err(wasmtime::format_err!(
                "get-random-bytes: {len} bytes is too many"
            ));
        }
        let mut v = vec![0u8; len as usize];
        rng.lock().unwrap().fill_bytes(&mut v);
        Ok((v,))
    };
    {
        let mut i = linker.instance(&format!("wasi:random/random@{V}"))?;
        let r = rng.clone();
        i.func_wrap("get-random-bytes", move |_, (len,): (u64,)| bytes(&r, len))?;
        let r = rng.clone();
        i.func_wrap("get-random-u64", move |_, (): ()| {
            Ok((r.lock().unwrap().next_u64(),))
        })?;
    }
    {
        let mut i = linker.instance(&format!("wasi:random/insecure@{V}"))?;
        let r = rng.clone();
        i.func_wrap("get-insecure-random-bytes", move |_, (len,): (u64,)| {
            bytes(&r, len)
        })?;
        let r = rng.clone();
        i.func_wrap("get-insecure-random-u64", move |_, (): ()| {
            Ok((r.lock().unwrap().next_u64(),))
        })?;
    }
    {
        let mut i = linker.instance(&format!("wasi:random/insecure-seed@{V}"))?;
        i.func_wrap("insecure-seed", |_, (): ()| Ok(((0u64, 0u64),)))?;
    }
    // The input does not exist at deploy time: a function that reads it while being imported
    // gets an error it can see.
    {
        let mut i = linker.instance(super::INPUT_INTERFACE)?;
        i.func_wrap("size", |_, (): ()| Ok((0u64,)))?;
        i.func_wrap("read", |_, (_off, _len): (u64, u32)| {
            Ok((Vec::<u8>::new(),))
        })?;
        i.func_wrap("last-error", |_, (): ()| {
            Ok(("the input is only available inside main()".to_string(),))
        })?;
    }
    Ok(())
}
