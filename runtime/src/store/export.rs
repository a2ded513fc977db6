//! Writing a file or a tree from the store to the host: `ipfaas get`, the Docker executor's
//! read-only exports, and a peer's function materialised into build directories.

use super::Store;
use crate::error::Result;
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
    ///
    /// Every entry is created new, in a directory this call created: a file with `O_EXCL` and a
    /// directory with `mkdir`, both of which fail on an existing name and never follow a symlink
    /// there. Listings refuse names that are not one path component or that appear twice, so a
    /// tree from the network cannot make this write anywhere but under `dest`.
    pub async fn export_tree(&self, cid: Cid, dest: &std::path::Path) -> Result<u64> {
        std::fs::create_dir_all(dest)?;
        let mut n = 0;
        let mut stack = vec![(cid, dest.to_path_buf())];
        while let Some((dir, path)) = stack.pop() {
            for (e, kind) in self.listing(&dir).await? {
                let p = path.join(&e.name);
                match kind {
                    Kind::Directory => {
                        std::fs::create_dir(&p)?;
                        stack.push((e.cid, p));
                    }
                    Kind::File { .. } => n += self.write_file(e.cid, &p).await?,
                    Kind::Symlink { target } => std::os::unix::fs::symlink(target, &p)?,
                }
            }
        }
        Ok(n)
    }
}
