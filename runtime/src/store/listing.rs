//! Directory listings with each entry's kind, and listings counted against a walk's budget.

use super::Store;
use crate::error::Result;
use crate::unixfs::limits::TreeBudget;
use crate::unixfs::read::{self, Kind};
use cid::Cid;
use futures::StreamExt;

impl Store {
    /// Directory entries with each child's kind (which tells a file's size); children are
    /// looked up 16 at a time.
    pub async fn listing(&self, cid: &Cid) -> Result<Vec<(read::Entry, Kind)>> {
        let entries = self.entries(cid).await?;
        self.kinds(entries).await
    }

    /// The listing of `dir` within a walk's `budget`: its entries (at `depth`, below a path
    /// prefix of `prefix_len` bytes) are counted before any is looked up, then their file
    /// sizes and symlink targets.
    pub async fn listing_within(
        &self,
        dir: &Cid,
        budget: &mut TreeBudget,
        prefix_len: usize,
        depth: usize,
    ) -> Result<Vec<(read::Entry, Kind)>> {
        let entries = self.entries(dir).await?;
        for e in &entries {
            budget.admit(depth, prefix_len + e.name.len())?;
        }
        let listing = self.kinds(entries).await?;
        for (_, kind) in &listing {
            match kind {
                Kind::File { size } => budget.content(*size)?,
                Kind::Symlink { target } => budget.path_bytes(target.len())?,
                Kind::Directory => {}
            }
        }
        Ok(listing)
    }

    /// Each entry with its kind, looked up 16 at a time (a walk counts the entries against its
    /// budget first, then looks them up).
    pub async fn kinds(&self, entries: Vec<read::Entry>) -> Result<Vec<(read::Entry, Kind)>> {
        futures::stream::iter(entries)
            .map(|e| async move {
                let kind = self.stat(&e.cid).await?;
                Ok((e, kind))
            })
            .buffered(16)
            .collect::<Vec<Result<_>>>()
            .await
            .into_iter()
            .collect()
    }
}
