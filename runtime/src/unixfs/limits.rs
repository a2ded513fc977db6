//! What one request may make this node walk. A DAG is data from anyone: a few blocks can name
//! the same child under many names (64 levels of two names is 2^64 entries), link one HAMT
//! shard from every bucket, nest thousands of levels deep or claim exabytes. Every walk of a
//! tree — tar streams, the WASM input layout, exports to disk, listings — counts what it visits
//! against these limits and stops with [`Error::OverLimit`] (a 400 naming the CID) instead of
//! growing without bound. The same limits apply to what an add accepts, so whatever this node
//! adds it can also read back.

use crate::error::{Error, Result};
use cid::Cid;

/// Deepest path below a root (a root's children are at depth 1).
pub const MAX_DEPTH: usize = 256;

/// Longest entry name, in bytes (Linux's `NAME_MAX`: anything longer could not be exported).
pub const MAX_NAME_LEN: usize = 255;

/// Most entries one directory listing may hold (a HAMT's shards together).
pub const MAX_DIR_ENTRIES: usize = 1 << 20;

/// Most entries (files, directories and symlinks, at any depth) one walk of a tree may visit.
/// A name that is reached twice (the same child linked from two places) counts twice, since
/// it is laid out twice.
pub const MAX_TREE_ENTRIES: u64 = 1 << 18;

/// Most bytes of paths one walk of a tree may lay out (each entry's full path counts), so that
/// deep names reached many times cannot fill memory before the entry limit is met.
pub const MAX_TREE_PATHS: u64 = 64 << 20;

/// Longest symlink target, in bytes (Linux's `PATH_MAX`), read or added.
pub const MAX_SYMLINK_TARGET: usize = 4096;

/// The running count of one walk of the tree at `root`.
#[derive(Debug)]
pub struct TreeBudget {
    root: Cid,
    entries: u64,
    paths: u64,
    bytes: u64,
    max_bytes: u64,
}

impl TreeBudget {
    /// A walk of `root` that may lay out at most `max_bytes` of file content.
    pub fn new(root: Cid, max_bytes: u64) -> Self {
        Self {
            root,
            entries: 0,
            paths: 0,
            bytes: 0,
            max_bytes,
        }
    }

    /// Admits one more entry at `depth` whose full path is `path_len` bytes long, or says which
    /// limit the tree passed. Called as an entry is listed, before anything about it is read.
    pub fn admit(&mut self, depth: usize, path_len: usize) -> Result<()> {
        self.entries += 1;
        if self.entries > MAX_TREE_ENTRIES {
            return Err(self.over(format!(
                "the tree has more than {MAX_TREE_ENTRIES} entries (counting every path to a shared child), this node's limit"
            )));
        }
        if depth > MAX_DEPTH {
            return Err(self.over(format!(
                "the tree is more than {MAX_DEPTH} levels deep, this node's limit"
            )));
        }
        self.path_bytes(path_len)
    }

    /// Adds `n` bytes of names the walk holds (a path, a symlink target) to its count.
    pub fn path_bytes(&mut self, n: usize) -> Result<()> {
        self.paths += n as u64;
        if self.paths > MAX_TREE_PATHS {
            return Err(self.over(format!(
                "the tree's paths add up to more than {MAX_TREE_PATHS} bytes, this node's limit"
            )));
        }
        Ok(())
    }

    /// Adds `size` bytes of file content to what the walk lays out.
    pub fn content(&mut self, size: u64) -> Result<()> {
        self.bytes = self
            .bytes
            .checked_add(size)
            .filter(|b| *b <= self.max_bytes)
            .ok_or_else(|| {
                self.over(format!(
                    "the tree's files add up to more than {} bytes, the limit here",
                    self.max_bytes
                ))
            })?;
        Ok(())
    }

    /// The file content admitted so far, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn over(&self, reason: String) -> Error {
        over_limit(&self.root, reason)
    }
}

/// The error for `cid` passing one of this node's limits (a 400 naming it).
pub fn over_limit(cid: &Cid, reason: impl Into<String>) -> Error {
    Error::OverLimit {
        cid: cid.to_string(),
        reason: reason.into(),
    }
}

/// Checks the shape of a path given to an add (already split into components): not deeper
/// than [`MAX_DEPTH`], no component longer than [`MAX_NAME_LEN`].
pub fn check_path_shape(path: &str, parts: &[&str]) -> Result<()> {
    let shown = || {
        let mut end = path.len().min(80);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < path.len() { "…" } else { "" };
        format!("{}{more}", &path[..end])
    };
    if parts.len() > MAX_DEPTH {
        return Err(Error::InvalidInput(format!(
            "path {:?} is {} levels deep; the limit is {MAX_DEPTH}",
            shown(),
            parts.len()
        )));
    }
    if let Some(long) = parts.iter().find(|p| p.len() > MAX_NAME_LEN) {
        return Err(Error::InvalidInput(format!(
            "path {:?} has a {}-byte name; the limit is {MAX_NAME_LEN} bytes",
            shown(),
            long.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Cid {
        "bafkqaaa".parse().unwrap()
    }

    #[test]
    fn a_budget_stops_at_each_limit() {
        let mut b = TreeBudget::new(root(), 100);
        b.admit(MAX_DEPTH, 1).unwrap();
        let e = b.admit(MAX_DEPTH + 1, 1).unwrap_err();
        assert!(matches!(e, Error::OverLimit { .. }), "{e}");
        let mut b = TreeBudget::new(root(), 100);
        b.content(60).unwrap();
        b.content(40).unwrap();
        assert_eq!(b.bytes(), 100);
        let e = b.content(1).unwrap_err();
        assert_eq!(e.http_status(), 400);
        // sizes that would overflow are refused, not wrapped
        let mut b = TreeBudget::new(root(), u64::MAX);
        b.content(u64::MAX).unwrap();
        assert!(b.content(1).is_err());
        let mut b = TreeBudget::new(root(), u64::MAX);
        for _ in 0..MAX_TREE_ENTRIES {
            b.admit(1, 1).unwrap();
        }
        assert!(b.admit(1, 1).is_err());
        // long paths count: 64 MiB of them, however few entries
        let mut b = TreeBudget::new(root(), u64::MAX);
        for _ in 0..(MAX_TREE_PATHS >> 16) {
            b.admit(1, 1 << 16).unwrap();
        }
        assert!(b.admit(1, 1).is_err());
    }

    #[test]
    fn path_shapes_past_the_limits_are_refused_with_a_short_message() {
        let deep = vec!["a"; MAX_DEPTH + 1].join("/");
        let parts: Vec<&str> = deep.split('/').collect();
        let e = check_path_shape(&deep, &parts).unwrap_err().to_string();
        assert!(e.contains("levels deep") && e.len() < 200, "{e}");
        check_path_shape(&deep[2..], &parts[1..]).unwrap();
        let long = "é".repeat(128); // 256 bytes
        let e = check_path_shape(&long, &[&long]).unwrap_err().to_string();
        assert!(e.contains("256-byte name"), "{e}");
        check_path_shape(&long[2..], &[&long[2..]]).unwrap();
    }
}
