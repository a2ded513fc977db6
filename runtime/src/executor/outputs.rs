//! The `/outputs` directories: one per invocation, under `<repo>/functions/tmp`, published when
//! the function returns. Most functions write none, and making and removing a directory per
//! invocation allocates and frees an inode each time (on a journal-less ext4, each allocation
//! scans the inodes freed in the last minutes), so empty ones are kept for the next invocations.

use super::ExecError;
use crate::error::Result;
use crate::unixfs::limits::MAX_DEPTH;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tempfile::TempDir;

/// Empty `/outputs` directories kept for reuse, at most.
const SPARE: usize = 64;
/// The most one invocation's `/outputs` may hold, counting each file at the larger of its
/// apparent size (a sparse file counts as large as it claims to be) and the disk space it takes
/// (space preallocated past its end counts too).
pub const MAX_OUTPUTS_BYTES: u64 = 4 << 30;
/// The most entries (files, directories, symlinks) one invocation's `/outputs` may hold.
pub const MAX_OUTPUTS_ENTRIES: u64 = 65_536;

/// Checks what a function left in `dir` against the quotas before any of it is read: at most
/// [`MAX_OUTPUTS_ENTRIES`] entries, [`MAX_OUTPUTS_BYTES`] of file size and
/// [`MAX_DEPTH`] levels, and only regular files, directories and symlinks (a FIFO would block
/// the reader, a device would read the host's). Looks at metadata only; iterative.
pub fn check_quota(dir: &Path) -> std::result::Result<(), ExecError> {
    let refuse = |reason: String| Err(ExecError::OutputsRefused { reason });
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        // a function may have taken its own directories' permissions away (a container runs
        // as the node's user or is given the directory): this node owns them, and must be
        // able to read and later delete them
        owner_only(&d).map_err(crate::error::Error::from)?;
        for e in std::fs::read_dir(&d).map_err(crate::error::Error::from)? {
            let e = e.map_err(crate::error::Error::from)?;
            entries += 1;
            if entries > MAX_OUTPUTS_ENTRIES {
                return refuse(format!("more than {MAX_OUTPUTS_ENTRIES} entries"));
            }
            let rel = || {
                e.path()
                    .strip_prefix(dir)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            let meta = e.metadata().map_err(crate::error::Error::from)?;
            let t = meta.file_type();
            if t.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    return refuse(format!("{} is deeper than {MAX_DEPTH} levels", rel()));
                }
                stack.push((e.path(), depth + 1));
            } else if t.is_file() {
                use std::os::unix::fs::MetadataExt;
                bytes = bytes.saturating_add(meta.len().max(meta.blocks().saturating_mul(512)));
                if bytes > MAX_OUTPUTS_BYTES {
                    return refuse(format!(
                        "more than {MAX_OUTPUTS_BYTES} bytes (at {}, {} bytes)",
                        rel(),
                        meta.len()
                    ));
                }
            } else if !t.is_symlink() {
                return refuse(format!(
                    "{} is not a regular file, directory or symlink",
                    rel()
                ));
            }
        }
    }
    Ok(())
}

/// Gives directory `d` mode 0700 (it is never a symlink here: walks look with `lstat`).
fn owner_only(d: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
}

/// Deletes the tree at `path` even where a function took the permissions away from its
/// directories. Best effort: what cannot be deleted stays for the next start.
fn force_remove(path: &Path) {
    if std::fs::remove_dir_all(path).is_ok() {
        return;
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = owner_only(&d);
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(path);
}

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
            force_remove(&e?.path());
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

    /// A fresh directory (mode 0700) owned by `uid:gid`, the user a container runs as. Never
    /// reused. Giving it to another user needs the node to run as root.
    pub fn for_user(&self, uid: u32, gid: u32) -> Result<TempDir> {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir_in(&self.tmp)?;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700))?;
        // SAFETY: geteuid and getegid cannot fail and touch no memory.
        let me = unsafe { (libc::geteuid(), libc::getegid()) };
        if me != (uid, gid) {
            std::os::unix::fs::chown(t.path(), Some(uid), Some(gid)).map_err(|e| {
                crate::error::Error::InvalidInput(format!(
                    "cannot give /outputs to user {uid}:{gid} ({e}): a function's `user` must be the node's own user ({}:{}) unless the node runs as root",
                    me.0, me.1
                ))
            })?;
        }
        Ok(t)
    }
}
