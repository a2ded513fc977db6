//! Executors: what runs a function, and how an input CID reaches it.
//!
//! The backing store ([`crate::store`]) holds every byte. Each executor brings its own
//! *mounting mechanism*, the way an input CID reaches the code:
//! - [`wasm`] — Python compiled to WebAssembly. The input is a seekable stream the guest reads
//!   through a host interface, served from the store a range at a time ([`wasm::mount`]).
//! - [`docker`] — any image. The input is exported once into a host directory and
//!   bind-mounted read-only at `/inputs` ([`docker::mount`]).
//!
//! Both have the same contract: `run(input, params, publish)` for a definition of their kind,
//! answering a [`RunOutput`] or an [`ExecError`]. The caller passes [`Publish`], which stores
//! what the function produced (its return value, its logs and its `/outputs` directory) while
//! the executor still holds that directory. Dispatch over executors is a `match` on
//! [`crate::registry::Def`]: a third executor is one more folder here and one more arm there.

pub mod docker;
pub mod outputs;
pub mod wasm;

use crate::error::Error;
use bytes::Bytes;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The source of a running invocation's logs so far.
type LogSource = Arc<dyn Fn() -> Bytes + Send + Sync>;

/// A live view of a running invocation's logs, for callers that follow them (a job's
/// `logs?follow=true`). The executor attaches its log buffer once the run has one; readers
/// take snapshots.
#[derive(Clone, Default)]
pub struct LogTap(Arc<Mutex<Option<LogSource>>>);

impl LogTap {
    /// Makes `source` (the logs written so far, whole) what [`LogTap::snapshot`] reads.
    pub fn attach(&self, source: impl Fn() -> Bytes + Send + Sync + 'static) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(source));
    }

    /// The logs written so far (empty before the executor attached).
    pub fn snapshot(&self) -> Bytes {
        let source = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        source.map(|f| f()).unwrap_or_default()
    }
}

impl std::fmt::Debug for LogTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogTap")
    }
}

/// Where an invocation's time went.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    /// Getting the input and the function ready (layout, build directories, native code,
    /// for Docker the input's export).
    pub fetch: Duration,
    /// Waiting for an instance or creating and starting a container.
    pub instantiate: Duration,
    /// The function's own run.
    pub execute: Duration,
    /// Storing what it produced (and, for Docker, removing the container).
    pub publish: Duration,
}

/// What a function produced, handed to [`Publish`].
pub struct Produced<'a> {
    /// The return value (WASM) or standard output (Docker).
    pub body: &'a [u8],
    /// Captured logs.
    pub logs: &'a [u8],
    /// The body's media type.
    pub content_type: &'a str,
    /// The `/outputs` directory, or `None` when it is known to be empty.
    pub outputs: Option<&'a Path>,
}

/// The CIDs of what an invocation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The body's CID.
    pub output: String,
    /// The `/outputs` directory's CID, when the function wrote anything there.
    pub outputs: Option<String>,
    /// The logs' CID, when there were logs.
    pub logs: Option<String>,
}

/// Stores what a function produced; called once, on a thread that may block.
pub type Publish = Box<dyn FnOnce(Produced<'_>) -> crate::Result<Published> + Send>;

/// A successful run, published.
#[derive(Debug)]
pub struct RunOutput {
    /// The body's media type.
    pub content_type: String,
    /// The return value (WASM) or standard output (Docker).
    pub body: Bytes,
    /// Captured logs.
    pub logs: Bytes,
    /// Their CIDs.
    pub published: Published,
    /// WASM: fuel units spent.
    pub fuel_used: u64,
    /// Docker: the container's exit code.
    pub exit_code: Option<i64>,
    /// Where the time went.
    pub timings: Timings,
}

/// Why a run produced no output: one enum for every executor, so the HTTP status, the metric
/// label and the JSON answer are each decided in one place.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// WASM: `main` raised; the Python exception with its traceback.
    #[error("{kind}: {message}")]
    Exception {
        /// The exception's type name.
        kind: String,
        /// Its message.
        message: String,
        /// The formatted traceback.
        traceback: String,
        /// Captured logs.
        logs: Vec<u8>,
    },
    /// Docker: the container exited with a non-zero code.
    #[error("the container exited with code {code}")]
    Exit {
        /// The exit code.
        code: i64,
        /// What it wrote to standard output.
        stdout: Vec<u8>,
        /// Standard error.
        logs: Vec<u8>,
    },
    /// WASM: the fuel budget ran out.
    #[error("the function used its whole fuel budget of {budget} units")]
    OutOfFuel {
        /// The budget.
        budget: u64,
        /// Captured logs.
        logs: Vec<u8>,
    },
    /// The wall-clock limit passed.
    #[error("the function ran past its {limit_ms} ms time limit")]
    Timeout {
        /// The limit.
        limit_ms: u64,
        /// Captured logs.
        logs: Vec<u8>,
    },
    /// The memory limit was hit (for Docker: the kernel killed the container).
    #[error("the function needed more than its memory limit of {limit} bytes")]
    OutOfMemory {
        /// The limit.
        limit: u64,
        /// Captured logs.
        logs: Vec<u8>,
        /// Docker: the OOM killer ended the container.
        killed: bool,
    },
    /// The output is over the function's `max_output`.
    #[error("the output is {}over the function's limit of {limit} bytes",
        size.map(|s| format!("{s} bytes, ")).unwrap_or_default())]
    OutputTooLarge {
        /// The output's size, when known.
        size: Option<u64>,
        /// The limit.
        limit: u64,
    },
    /// What the function left in `/outputs` is over the node's quota (or holds something
    /// other than files, directories and symlinks); nothing of it was read.
    #[error("/outputs: {reason}")]
    OutputsRefused {
        /// Which quota, or which entry.
        reason: String,
    },
    /// WASM: the guest trapped.
    #[error("the function trapped: {message}")]
    Trap {
        /// The trap.
        message: String,
        /// Captured logs.
        logs: Vec<u8>,
    },
    /// Docker: too many invocations already wait for a container.
    #[error("too many invocations waiting for a container; retry later")]
    Busy,
    /// The caller hung up, so the run was stopped before it finished.
    #[error("the caller went away; the invocation was stopped")]
    Cancelled,
    /// The host failed (storage, the Docker Engine, a malformed input).
    #[error(transparent)]
    Host(#[from] Error),
}

impl ExecError {
    /// The HTTP status a failed run answers with: the function's fault is 422, a limit 413 or
    /// 504, a full queue 429, the host's fault as [`Error::http_status`].
    pub fn status(&self) -> u16 {
        match self {
            ExecError::Exception { .. }
            | ExecError::Exit { .. }
            | ExecError::OutOfFuel { .. }
            | ExecError::Trap { .. } => 422,
            ExecError::OutOfMemory { .. }
            | ExecError::OutputTooLarge { .. }
            | ExecError::OutputsRefused { .. } => 413,
            ExecError::Timeout { .. } => 504,
            ExecError::Busy => 429,
            // nginx's "client closed request": nobody reads it, the logs and metrics do
            ExecError::Cancelled => 499,
            ExecError::Host(e) => e.http_status(),
        }
    }

    /// The `outcome` label of `ipfaas_invocations_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ExecError::Exception { .. } => "exception",
            ExecError::Exit { .. } => "exit_nonzero",
            ExecError::OutOfFuel { .. } => "out_of_fuel",
            ExecError::Timeout { .. } => "timeout",
            ExecError::OutOfMemory { .. } => "out_of_memory",
            ExecError::OutputTooLarge { .. } => "output_too_large",
            ExecError::OutputsRefused { .. } => "outputs_refused",
            ExecError::Trap { .. } => "trap",
            ExecError::Busy => "busy",
            ExecError::Cancelled => "cancelled",
            ExecError::Host(_) => "error",
        }
    }

    /// The logs the function wrote before it failed.
    pub fn logs(&self) -> &[u8] {
        match self {
            ExecError::Exception { logs, .. }
            | ExecError::Exit { logs, .. }
            | ExecError::OutOfFuel { logs, .. }
            | ExecError::Timeout { logs, .. }
            | ExecError::OutOfMemory { logs, .. }
            | ExecError::Trap { logs, .. } => logs,
            _ => &[],
        }
    }

    /// The JSON answer: `error` and `logs`, plus what the failure has to say (the exception's
    /// `type`, `message` and `traceback`; the container's `exit_code` and `stdout`;
    /// `oom_killed`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        if let ExecError::Host(e) = self {
            return json!({ "error": e.to_string() });
        }
        let mut v = json!({
            "error": self.to_string(),
            "logs": String::from_utf8_lossy(self.logs()),
        });
        match self {
            ExecError::Exception {
                kind,
                message,
                traceback,
                ..
            } => {
                v["type"] = json!(kind);
                v["message"] = json!(message);
                v["traceback"] = json!(traceback);
            }
            ExecError::Exit { code, stdout, .. } => {
                v["exit_code"] = json!(code);
                v["stdout"] = json!(String::from_utf8_lossy(stdout));
            }
            ExecError::OutOfMemory { killed: true, .. } => v["oom_killed"] = json!(true),
            _ => {}
        }
        v
    }
}
