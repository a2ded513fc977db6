//! Writing a file or a tree from the store to the host: `ipfaas get`, the Docker executor's
//! read-only exports, and a peer's function materialised into build directories.

use super::Store;
use crate::error::Result;
use crate::unixfs::limits::TreeBudget;
use crate::unixfs::read::Kind;
use cid::Cid;
use futures::TryStreamExt;

impl Store {
    /// Writes the file at `cid` to `dest`, which must not exist yet (nothing is opened through an
    /// existing file or symlink); returns its size.
    pub async fn write_file(&self, cid: Cid, dest: &std::path::Path) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let (_, mut s) = self.cat(cid, 0, None).await?;
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .await?;
        let mut n = 0u64;
        while let Some(b) = s.try_next().await? {
            n += b.len() as u64;
            f.write_all(&b).await?;
        }
        f.flush().await?;
        Ok(n)
    }

    /// Writes the tree at `cid` under `dest` (created); returns the bytes of file content written.
    /// Symlinks are recreated as they are (their targets resolve inside whatever mounts the tree).
    /// A tree whose files add up to more than `max_bytes`, or that passes the walk limits of
    /// [`crate::unixfs::limits`], is refused when it is listed, before its bytes are written.
    ///
    /// Every entry is created new, in a directory this call created: a file with `O_EXCL` and a
    /// directory with `mkdir`, both of which fail on an existing name and never follow a symlink
    /// there. Listings refuse names that are not one path component or that appear twice, so a
    /// tree from the network cannot make this write anywhere but under `dest`.
    pub async fn export_tree(
        &self,
        cid: Cid,
        dest: &std::path::Path,
        max_bytes: u64,
    ) -> Result<u64> {
        // First the whole plan, under the budget: a tree past a limit is refused before
        // anything is written (the plan holds at most the budget's entries).
        let mut budget = TreeBudget::new(cid, max_bytes);
        let mut plan = Vec::new();
        let mut stack = vec![(cid, std::path::PathBuf::new(), 1)];
        while let Some((dir, rel, depth)) = stack.pop() {
            let prefix = rel.as_os_str().len() + 1;
            for (e, kind) in self
                .listing_within(&dir, &mut budget, prefix, depth)
                .await?
            {
                let p = rel.join(&e.name);
                if kind == Kind::Directory {
                    stack.push((e.cid, p.clone(), depth + 1));
                }
                plan.push((p, e.cid, kind));
            }
        }
        // Parents come before their children in the plan (a directory is planned when its
        // parent is listed, its entries only once it is popped).
        std::fs::create_dir_all(dest)?;
        let mut n = 0;
        for (rel, cid, kind) in plan {
            let p = dest.join(rel);
            match kind {
                Kind::Directory => std::fs::create_dir(&p)?,
                Kind::File { .. } => n += self.write_file(cid, &p).await?,
                Kind::Symlink { target } => std::os::unix::fs::symlink(target, &p)?,
            }
        }
        Ok(n)
    }
}
