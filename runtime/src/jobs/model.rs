//! What the job system stores and answers: states, jobs, queries, errors.

use crate::error::Error;
use crate::invoke::InvokeError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Accepted, waiting for a slot.
    Queued,
    /// Running now.
    Running,
    /// Finished with an output.
    Done,
    /// Finished with an error (the function's or the node's).
    Failed,
    /// Stopped by a caller, before or while it ran.
    Cancelled,
    /// It was running when the node stopped, and its function is not pure: not run again
    /// unless asked (`retry`).
    Interrupted,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Interrupted,
    ];

    /// The state's name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job has ended (for now: `retry` can queue it again).
    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// How the job system is sized.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    /// Jobs queued or running at most; past it, submissions are refused (429).
    pub queue: u64,
    /// Finished jobs are deleted this long after they finished.
    pub keep_for: Duration,
    /// At most this many finished jobs are kept; the oldest go first.
    pub keep: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 2,
            queue: 1000,
            keep_for: Duration::from_secs(7 * 24 * 3600),
            keep: 10_000,
        }
    }
}

/// A job to store.
pub struct NewJob {
    /// Its id (128 random bits, hex).
    pub id: String,
    /// The function as asked for (a name or a CID).
    pub function: String,
    /// The function CID it resolved to when it was submitted.
    pub function_cid: String,
    /// The input's CID.
    pub input_cid: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Whether the result cache may answer.
    pub use_cache: bool,
    /// Whether the function is pure (run again after a crash).
    pub pure: bool,
    /// Where to POST the job when it finishes.
    pub callback_url: Option<String>,
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// The function as asked for.
    pub function: String,
    /// The function CID that runs.
    pub function_cid: String,
    /// The input's CID.
    pub input_cid: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Whether the result cache may answer.
    pub use_cache: bool,
    /// Whether the function is pure.
    pub pure: bool,
    /// The callback URL.
    pub callback_url: Option<String>,
    /// Its state.
    pub state: JobState,
    /// When it was accepted (Unix ms).
    pub created_ms: i64,
    /// When it last started running.
    pub started_ms: Option<i64>,
    /// When it finished.
    pub finished_ms: Option<i64>,
    /// How many times it started.
    pub attempts: u32,
    /// The HTTP status a synchronous invocation would have answered.
    pub http_status: Option<u16>,
    /// What it produced (output, outputs and logs CIDs, logs, timings).
    pub result: Option<Value>,
    /// Why it failed, was cancelled or interrupted (the JSON error answer).
    pub error: Option<Value>,
    /// How the callback went.
    pub callback: Option<Value>,
    /// Its place in submission order (for paging).
    pub seq: i64,
}

fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

impl JobView {
    /// The API's answer for this job.
    pub fn to_json(&self) -> Value {
        let secs = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => json!((b - a).max(0) as f64 / 1000.0),
            _ => Value::Null,
        };
        let mut v = json!({
            "job": self.id,
            "status": self.state.as_str(),
            "url": format!("/v1/jobs/{}", self.id),
            "function": self.function,
            "function_cid": self.function_cid,
            "input_cid": self.input_cid,
            "params": self.params,
            "cache": self.use_cache,
            "pure": self.pure,
            "attempts": self.attempts,
            "created_at": rfc3339(self.created_ms),
            "started_at": self.started_ms.map(rfc3339),
            "finished_at": self.finished_ms.map(rfc3339),
            "queued_seconds": secs(Some(self.created_ms), self.started_ms),
            "run_seconds": secs(self.started_ms, self.finished_ms),
        });
        if let Some(r) = &self.result {
            v["result"] = r.clone();
        }
        if let Some(s) = self.http_status {
            v["http_status"] = json!(s);
        }
        if let Some(e) = &self.error {
            v["error"] = e.clone();
        }
        if let Some(u) = &self.callback_url {
            v["callback_url"] = json!(u);
        }
        if let Some(c) = &self.callback {
            v["callback"] = c.clone();
        }
        v
    }

    /// The logs it finished with, if any were kept.
    pub fn final_logs(&self) -> Option<String> {
        let from = |v: &Option<Value>| v.as_ref()?.get("logs")?.as_str().map(String::from);
        from(&self.result).or_else(|| from(&self.error))
    }
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Jobs of this function (as asked for, or its CID).
    pub function: Option<String>,
    /// Jobs in this state.
    pub state: Option<JobState>,
    /// Jobs accepted at or after this (Unix ms).
    pub since_ms: Option<i64>,
    /// Jobs accepted before this (Unix ms).
    pub until_ms: Option<i64>,
    /// Jobs before this place in submission order (the `next` of the previous page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// Why a job request was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The queue is full.
    #[error("{active} jobs are queued or running, the most this node takes; retry later")]
    Full {
        /// Jobs queued or running.
        active: u64,
    },
    /// No such job.
    #[error("no job {0:?} (finished jobs are kept for a while, then deleted)")]
    NotFound(String),
    /// The job is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// The request was wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The invocation it names cannot be made (unknown function, unreadable definition).
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The node failed.
    #[error(transparent)]
    Host(#[from] Error),
}

impl JobError {
    /// The HTTP status for it.
    pub fn status(&self) -> u16 {
        match self {
            JobError::Full { .. } => 429,
            JobError::NotFound(_) => 404,
            JobError::Conflict(_) => 409,
            JobError::BadRequest(_) => 400,
            JobError::Invoke(e) => e.status_and_json().0,
            JobError::Host(e) => e.http_status(),
        }
    }
}
