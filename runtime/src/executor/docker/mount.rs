//! The Docker executor's *mounting mechanism*: the input CID exported from the backing store into
//! a host cache directory (once per CID, least recently used evicted past the cache size), then
//! bind-mounted read-only at `/inputs`.

use super::DockerExec;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::unixfs::limits::over_limit;
use crate::unixfs::read::Kind;
use cid::Cid;
use std::path::{Path, PathBuf};

impl DockerExec {
    /// Exports `cid` under the cache (once); returns the directory to mount and the path of the
    /// input inside the container.
    ///
    /// Layout: `exports/<cid>/tree/` is what the container sees, exactly the input; the cache's
    /// own bookkeeping (`exports/<cid>/complete`, whose mtime is the last use) sits beside it,
    /// never inside what is mounted.
    pub(super) async fn export(&self, store: &Store, cid: Cid) -> Result<(PathBuf, String)> {
        let _g = self.inner.export_lock.lock().await;
        let key = cid.to_string();
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
        let marker = dir.join(EXPORT_MARKER);
        if marker.is_file() {
            self.inner.metrics.export_hits.inc();
            // mark as recently used for eviction
            let _ = std::fs::File::open(&marker)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Ok((dir.join(EXPORT_TREE), inside));
        }
        let staging = self
            .inner
            .exports
            .join(format!(".{key}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let tree = staging.join(EXPORT_TREE);
        std::fs::create_dir_all(&tree)?;
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
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        std::fs::write(staging.join(EXPORT_MARKER), b"")?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir)?;
        self.inner.metrics.export_bytes.inc_by(bytes);
        self.evict(&key)?;
        Ok((dir.join(EXPORT_TREE), inside))
    }

    /// Drops least recently used exports until the cache fits its size (never `keep`).
    fn evict(&self, keep: &str) -> Result<()> {
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
            if name != keep {
                let _ = std::fs::remove_dir_all(path);
                total -= size;
            }
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
