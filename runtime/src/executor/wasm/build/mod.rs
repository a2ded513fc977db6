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

use super::{GUEST_MODULE, GUEST_PY, WIT, WORLD};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Builds the component into `out`. A problem in the user's code comes back as
/// [`Error::InvalidInput`] naming the culprit.
pub async fn build(dirs: &BuildDirs, out: &Path) -> Result<()> {
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
    };
    generator.generate().await.map_err(classify)
}

/// Tells the user's mistakes (reported by the wrapper with a marker line) from ours.
fn classify(e: anyhow::Error) -> Error {
    let text = format!("{e:#}");
    if let Some(at) = text.find("IPFAAS-BUILD-ERROR: ") {
        let msg = text[at + "IPFAAS-BUILD-ERROR: ".len()..].trim_end();
        // the marker's message runs to the next marker-less context line
        let msg = msg.split("\nTraceback").next().unwrap_or(msg).trim_end();
        return Error::InvalidInput(msg.to_string());
    }
    Error::Io(std::io::Error::other(format!(
        "component build failed: {text}"
    )))
}

/// A monotonic clock that advances one microsecond per reading; sleeps are the host's.
struct DetClockView<'a>(WasiClocksCtxView<'a>);
struct DetClock;
impl HasData for DetClock {
    type Data<'a> = DetClockView<'a>;
}

static MONO: AtomicU64 = AtomicU64::new(0);

impl monotonic_clock::Host for DetClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(MONO.fetch_add(1_000, Ordering::Relaxed))
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1_000)
    }
    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let now = MONO.load(Ordering::Relaxed);
        self.0.subscribe_duration(when.saturating_sub(now))
    }
    fn subscribe_duration(&mut self, d: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.0.subscribe_duration(d)
    }
}

/// WASI for the pre-initialisation, with clocks and random sources that never change.
fn deterministic_wasi(linker: &mut Linker<componentize_py::Ctx>) -> anyhow::Result<()> {
    MONO.store(0, Ordering::Relaxed);
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
