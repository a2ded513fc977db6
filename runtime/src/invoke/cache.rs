//! The result cache of pure functions: one record per (function, input, params), naming the
//! output's CIDs, in `<repo>/functions/results/<key>`. A repeat invocation is answered from the
//! store without running; a record whose output is gone is ignored.

use super::InvokeRequest;
use super::publish::Publisher;
use crate::error::{Result, io_err};
use crate::executor::Published;
use crate::executor::wasm::load::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A result cache record: enough to answer a repeat invocation without running it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CacheRecord {
    pub output: String,
    pub content_type: String,
    pub outputs: Option<String>,
    pub logs: Option<String>,
}

impl CacheRecord {
    /// The record of a published output.
    pub fn new(p: &Published, content_type: &str) -> Self {
        Self {
            output: p.output.clone(),
            content_type: content_type.to_string(),
            outputs: p.outputs.clone(),
            logs: p.logs.clone(),
        }
    }

    /// The CIDs it names.
    pub fn published(&self) -> Published {
        Published {
            output: self.output.clone(),
            outputs: self.outputs.clone(),
            logs: self.logs.clone(),
        }
    }

    /// Writes the record at `path` (not synced: the group commit synced its blocks already,
    /// and a torn record is unreadable and ignored).
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io_err)?;
        // `?cache=false` re-runs write the record they already have: reading it back is far
        // cheaper than a create, rename and the old inode's eviction
        if std::fs::read(path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        crate::fs::write_atomic(path, &bytes, false)
    }
}

/// Names an invocation: the result cache key and the guest's random seed.
pub(crate) fn invocation_key(function_cid: &str, req: &InvokeRequest) -> [u8; 32] {
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

/// The records on disk, and those still waiting for their group commit.
pub(crate) struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// Records live in `dir` (created).
    pub fn open(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Where the record of an invocation with this key lives.
    pub fn path(&self, key: &[u8; 32]) -> PathBuf {
        self.dir.join(hex(key))
    }

    /// The record at `path`: one waiting for its group commit, or one on disk.
    pub fn get(&self, publisher: &Publisher, path: &Path) -> Option<CacheRecord> {
        if let Some(r) = publisher.pending_record(path) {
            return Some(r);
        }
        let b = std::fs::read(path).ok()?;
        serde_json::from_slice(&b).ok()
    }
}
