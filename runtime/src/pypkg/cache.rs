//! The node's package cache: downloaded wheels and metadata files kept under their sha256
//! (never under a name alone) and checked against it on every use, and resolutions kept by
//! the hash of everything that went into them.
//!
//! Only what this node downloaded goes in: a wheel vendored in a bundle is that bundle's alone,
//! so one bundle cannot decide what a later deploy of the same version gets.

use super::lock::Lock;
use std::path::{Path, PathBuf};

/// The cache directory (`<repo>/functions/wheels`).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

pub(crate) fn sha256_file(p: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(p)?, &mut h)?;
    Ok(crate::executor::wasm::load::hex(&h.finalize()))
}

/// Is `s` a lower-case sha256 digest (so safe in a file name)?
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Is `file` a plain file name (no directory, nothing hidden)?
pub(crate) fn plain(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('.')
        && !file.contains(['/', '\\', '\0'])
        && file.len() <= 200
}

impl Cache {
    /// Opens (creating) the cache in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        for d in ["", "metadata", "locks", "tmp"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// A directory for downloads in progress (renamed into the cache when checked).
    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The cached wheel `file` with digest `sha256`, if it is here and its bytes still hash to
    /// it; an entry that does not is removed.
    pub fn wheel(&self, sha256: &str, file: &str) -> Option<PathBuf> {
        if !is_digest(sha256) || !plain(file) {
            return None;
        }
        let p = self.dir.join(format!("{sha256}-{file}"));
        if !p.is_file() {
            return None;
        }
        match sha256_file(&p) {
            Ok(d) if d == sha256 => Some(p),
            _ => {
                tracing::warn!(
                    "wheel cache entry {} does not match its sha256; removed",
                    p.display()
                );
                let _ = std::fs::remove_file(&p);
                None
            }
        }
    }

    /// Moves a downloaded wheel whose digest was computed as `sha256` into the cache.
    pub fn put_wheel(&self, tmp: &Path, sha256: &str, file: &str) -> std::io::Result<PathBuf> {
        if !is_digest(sha256) || !plain(file) {
            return Err(std::io::Error::other(format!("bad cache name {file:?}")));
        }
        let dest = self.dir.join(format!("{sha256}-{file}"));
        std::fs::rename(tmp, &dest)?;
        Ok(dest)
    }

    /// Cached metadata of the wheel with digest `sha256`.
    pub fn metadata(&self, sha256: &str) -> Option<String> {
        if !is_digest(sha256.strip_prefix('w').unwrap_or(sha256)) {
            return None;
        }
        std::fs::read_to_string(self.dir.join("metadata").join(sha256)).ok()
    }

    /// Keeps the metadata of the wheel with digest `sha256` (it never changes).
    pub fn put_metadata(&self, sha256: &str, text: &str) {
        if is_digest(sha256.strip_prefix('w').unwrap_or(sha256)) {
            let _ = crate::fs::write_atomic(
                &self.dir.join("metadata").join(sha256),
                text.as_bytes(),
                false,
            );
        }
    }

    /// The resolution made earlier from the inputs hashed to `key`.
    pub fn resolution(&self, key: &str) -> Option<Lock> {
        let text =
            std::fs::read_to_string(self.dir.join("locks").join(format!("{key}.toml"))).ok()?;
        Lock::parse(&text).ok()
    }

    /// Keeps a resolution under `key`.
    pub fn put_resolution(&self, key: &str, lock: &Lock) {
        let path = self.dir.join("locks").join(format!("{key}.toml"));
        let _ = crate::fs::write_atomic(&path, lock.to_toml().as_bytes(), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_on_every_use() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cache::open(tmp.path()).unwrap();
        let file = "six-1.16.0-py2.py3-none-any.whl";
        let dl = c.tmp().join("x");
        std::fs::write(&dl, b"from the index").unwrap();
        let d = sha256_file(&dl).unwrap();
        let kept = c.put_wheel(&dl, &d, file).unwrap();
        assert_eq!(c.wheel(&d, file), Some(kept.clone()));
        // a name is not enough: another digest, or bytes changed since, find nothing
        assert_eq!(c.wheel(&"0".repeat(64), file), None);
        std::fs::write(&kept, b"tampered").unwrap();
        assert_eq!(c.wheel(&d, file), None);
        assert!(!kept.exists());
        // names that would leave the directory are never looked up
        assert_eq!(c.wheel(&d, "../x.whl"), None);
        assert_eq!(c.wheel("../../etc", file), None);
    }
}
