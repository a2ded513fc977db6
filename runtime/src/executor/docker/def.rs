//! What the CID of a Docker function names: the image pinned by ID, and how to run it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits of a Docker function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerLimits {
    /// Memory (and memory+swap) in bytes.
    pub memory: u64,
    /// CPUs, fractional.
    pub cpus: f64,
    /// Processes and threads.
    pub pids: i64,
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: u64,
    /// Largest standard output kept, in bytes.
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

/// What a Docker function's CID names: the image pinned by ID, and how to run it. Field
/// order is fixed so the same function always serialises to the same bytes (and CID).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerDef {
    /// Definition format version (1).
    pub ipfaas: u32,
    /// `"docker"`.
    pub kind: String,
    /// The image reference it was deployed from.
    pub image: String,
    /// The image ID it runs (`sha256:…`).
    pub image_id: String,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command.
    pub cmd: Option<Vec<String>>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Working directory in the container.
    pub workdir: Option<String>,
    /// Resource limits.
    pub limits: DockerLimits,
}

impl DockerDef {
    /// A definition read from the store may come from anyone: the image must be pinned by ID
    /// and every limit must be a real bound (the Docker Engine reads a zero as "unlimited").
    pub fn check(&self) -> std::result::Result<(), String> {
        let id = self.image_id.strip_prefix("sha256:").unwrap_or("");
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`image_id` is not an image ID: {:?}",
                self.image_id
            ));
        }
        let l = &self.limits;
        let bounded = l.memory > 0
            && l.pids > 0
            && l.cpus > 0.0
            && l.cpus.is_finite()
            && l.timeout_ms > 0
            && l.max_output > 0;
        if !bounded {
            return Err(format!("every limit must be positive: {l:?}"));
        }
        Ok(())
    }
}
