//! The Docker executor's *mounting mechanism*: the input CID exported from the backing store into
//! a host cache directory (once per CID, least recently used evicted past the cache size), then
//! bind-mounted read-only at `/inputs`.

use super::DockerExec;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::unixfs::limits::over_limit;
use crate::unixfs::read::Kind;
use cid::Cid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Counts, per CID, the containers that mount its export.
pub(super) type InUse = Arc<Mutex<HashMap<String, usize>>>;

/// A running invocation's hold on an export: while it lives, the export is not evicted.
pub(super) struct Lease {
    in_use: InUse,
    key: String,
}

impl Lease {
    fn new(in_use: &InUse, key: &str) -> Self {
        *in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default() += 1;
        Self {
            in_use: in_use.clone(),
            key: key.to_string(),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut m = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl DockerExec {
    /// Exports `cid` under the cache (once); returns the hold on it, the directory to mount and
    /// the path of the input inside the container. Concurrent invocations on one CID share
    /// one export; exports of different CIDs run side by side.
    ///
    /// Layout: `exports/<cid>/tree/` is what the container sees, exactly the input; the cache's
    /// own bookkeeping (`exports/<cid>/complete`, whose mtime is the last use) sits beside it,
    /// never inside what is mounted.
    pub(super) async fn export(&self, store: &Store, cid: Cid) -> Result<(Lease, PathBuf, String)> {
        let key = cid.to_string();
        let _one = self.inner.export_keys.lock(&key).await;
        let dir = self.inner.exports.join(&key);
        let kind = store.stat(&cid).await?;
        let inside = match &kind {
            Kind::File { .. } => format!("/inputs/{key}"),
            Kind::Directory => "/inputs".to_string(),
            Kind::Symlink { target } => {
                return Err(Error::InvalidInput(format!(
                    "input {cid} is a symlink to {target:?}"
                )));
            }
        };
        // held before the export is looked at: from here on it is not evicted
        let lease = Lease::new(&self.inner.in_use, &key);
        let marker = dir.join(EXPORT_MARKER);
        if marker.is_file() {
            self.inner.metrics.export_hits.inc();
            // mark as recently used for eviction
            let _ = std::fs::File::open(&marker)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Ok((lease, dir.join(EXPORT_TREE), inside));
        }
        let staging = self
            .inner
            .exports
            .join(format!(".{key}.{}", std::process::id()));
        let tree = staging.join(EXPORT_TREE);
        {
            // a stale staging tree may be a whole input: its removal is off the async workers
            let (staging, tree) = (staging.clone(), tree.clone());
            blocking(move || {
                let _ = std::fs::remove_dir_all(&staging);
                std::fs::create_dir_all(&tree)
            })
            .await?;
        }
        // an input larger than the whole cache could never be kept: refused before writing
        let max = self.inner.cfg.export_cache;
        let written = match kind {
            Kind::File { size } if size > max => Err(over_limit(
                &cid,
                format!("the input is {size} bytes, more than the export cache ({max})"),
            )),
            Kind::File { .. } => store.write_file(cid, &tree.join(&key)).await,
            _ => store.export_tree(cid, &tree, max).await,
        };
        let bytes = match written {
            Ok(b) => b,
            Err(e) => {
                let _ = blocking(move || std::fs::remove_dir_all(&staging)).await;
                return Err(e);
            }
        };
        {
            let (staging, dir) = (staging.clone(), dir.clone());
            blocking(move || {
                std::fs::write(staging.join(EXPORT_MARKER), b"")?;
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::rename(&staging, &dir)
            })
            .await?;
        }
        self.inner.metrics.export_bytes.inc_by(bytes);
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.evict())
            .await
            .map_err(crate::error::io_err)??;
        Ok((lease, dir.join(EXPORT_TREE), inside))
    }

    /// Drops least recently used exports until the cache fits its size, never one that a
    /// running container mounts. Blocking.
    fn evict(&self) -> Result<()> {
        static EVICTING: Mutex<()> = Mutex::new(());
        let _one = EVICTING.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = Vec::new();
        let mut total = 0u64;
        for e in std::fs::read_dir(&self.inner.exports)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let size = dir_size(&e.path());
            let used = std::fs::metadata(e.path().join(EXPORT_MARKER))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            total += size;
            entries.push((used, size, name, e.path()));
        }
        entries.sort();
        for (_, size, name, path) in entries {
            if total <= self.inner.cfg.export_cache {
                break;
            }
            // taken out of the cache under the lease map's lock, so no invocation can lease
            // it meanwhile (one that looks after this finds it gone and exports again)
            let doomed = self.inner.exports.join(format!(".evicted.{name}"));
            {
                let in_use = self.inner.in_use.lock().unwrap_or_else(|p| p.into_inner());
                if in_use.contains_key(&name) || std::fs::rename(&path, &doomed).is_err() {
                    continue;
                }
            }
            let _ = std::fs::remove_dir_all(&doomed);
            total -= size;
        }
        Ok(())
    }
}

/// In an export cache entry: the exported input, mounted at `/inputs`.
const EXPORT_TREE: &str = "tree";
/// In an export cache entry, beside the tree: written last, so its presence means complete.
const EXPORT_MARKER: &str = "complete";

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => n += m.len(),
                    Err(_) => {}
                }
            }
        }
    }
    n
}

/// Runs directory work (which may touch a whole exported tree) on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(crate::error::io_err)??)
}
