//! The `/outputs` directories: one per invocation, under `<repo>/functions/tmp`, published when
//! the function returns. Most functions write none, and making and removing a directory per
//! invocation allocates and frees an inode each time (on a journal-less ext4, each allocation
//! scans the inodes freed in the last minutes), so empty ones are kept for the next invocations.

use crate::error::Result;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tempfile::TempDir;

/// Empty `/outputs` directories kept for reuse, at most.
const SPARE: usize = 64;

/// Where `/outputs` directories come from.
pub struct Outputs {
    tmp: PathBuf,
    spare: Mutex<Vec<TempDir>>,
}

impl Outputs {
    /// Uses `tmp` (created) for the directories. Everything already in it is scratch left by
    /// an earlier run (invocations that were running when the process died) and is removed.
    pub fn open(tmp: &Path) -> Result<Self> {
        std::fs::create_dir_all(tmp)?;
        for e in std::fs::read_dir(tmp)? {
            let _ = std::fs::remove_dir_all(e?.path());
        }
        Ok(Self {
            tmp: tmp.to_path_buf(),
            spare: Mutex::new(Vec::new()),
        })
    }

    /// The scratch directory itself (staging for builds and exports).
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// An empty directory, reused when one is spare.
    pub fn take(&self) -> Result<TempDir> {
        if let Some(d) = self.spare.lock().unwrap().pop() {
            return Ok(d);
        }
        Ok(tempfile::tempdir_in(&self.tmp)?)
    }

    /// Keeps `dir`, which the caller found empty, for another invocation (up to [`SPARE`]); a
    /// directory not kept is removed on drop.
    pub fn spare(&self, dir: TempDir) {
        let mut spare = self.spare.lock().unwrap();
        if spare.len() < SPARE {
            spare.push(dir);
        }
    }

    /// A fresh directory that any user may write (a container may run as any uid). Never
    /// reused.
    pub fn for_any_user(&self) -> Result<TempDir> {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir_in(&self.tmp)?;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777))?;
        Ok(t)
    }
}
