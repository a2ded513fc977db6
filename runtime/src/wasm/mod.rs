//! The Python-in-WebAssembly executor.
//!
//! - [`builder`] — deploy time: bundle → pre-initialised component (componentize-py).
//! - [`engine`] — run time: one wasmtime engine (pooling allocator, copy-on-write memory images),
//!   components precompiled once and cached on disk, a fresh store and instance per invocation
//!   with fixed clocks, seeded randomness, no network, and memory/fuel/time limits.
//! - [`stdlib`] — the Python standard library, mounted read-only so functions can import from
//!   it at run time, not only what the snapshot already holds.
//!
//! The *mounting mechanism* of this executor: the input is not a file on the host but the
//! `ipfaas:function/input` interface, which the guest reads as a seekable file and the host
//! answers from the block store, a range at a time.

pub mod builder;
mod detfs;
mod detfs_sync;
pub mod engine;
pub mod stdlib;

pub use engine::{Instance, Limits, Loaded, RunError, RunOutcome, RunRequest, Spent, WasmEngine};

/// The WIT world every component targets.
pub const WIT: &str = include_str!("function.wit");
/// The Python wrapper imported at pre-initialisation; it calls the user's `main`.
pub const GUEST_PY: &str = include_str!("guest.py");
pub const GUEST_MODULE: &str = "ipfaas_guest";
pub const WORLD: &str = "function";
pub const INPUT_INTERFACE: &str = "ipfaas:function/input@0.1.0";

/// A guest's random-access view of its input.
pub trait InputReader: Send {
    fn size(&self) -> u64;
    /// Up to `len` bytes at `offset` (fewer only at the end).
    fn read_at(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, String>;
}

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
