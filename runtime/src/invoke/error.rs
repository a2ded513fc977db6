//! Why an invocation gave no output, and how that is answered.

use crate::error::Error;
use crate::executor::ExecError;

/// A failed invocation.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The executor ran it and it failed (or could not run it).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// It never reached an executor: unknown function, bad definition, missing input.
    #[error(transparent)]
    Host(#[from] Error),
    /// The invocation ran on a peer and failed there; `body` is the peer's JSON answer.
    #[error("on peer {peer}: {}", body["error"].as_str().unwrap_or("failed"))]
    Remote {
        /// The peer's ID.
        peer: String,
        /// The status it answered with.
        status: u16,
        /// Its JSON answer.
        body: serde_json::Value,
    },
}

impl InvokeError {
    /// The HTTP status and JSON body a failed invocation answers with.
    pub fn status_and_json(&self) -> (u16, serde_json::Value) {
        match self {
            InvokeError::Host(e) => (
                e.http_status(),
                serde_json::json!({ "error": e.to_string() }),
            ),
            InvokeError::Remote { peer, status, body } => {
                let mut v = body.clone();
                if let Some(o) = v.as_object_mut() {
                    o.insert("ran_on".into(), serde_json::json!(peer));
                }
                (*status, v)
            }
            InvokeError::Exec(e) => (e.status(), e.to_json()),
        }
    }

    /// The `outcome` label of `ipfaas_invocations_total`.
    pub fn label(&self) -> &'static str {
        match self {
            InvokeError::Exec(e) => e.label(),
            InvokeError::Host(_) => "error",
            InvokeError::Remote { .. } => "remote_error",
        }
    }
}
