//! The Python standard library for run-time imports, unpacked once per repo.
//!
//! componentize-py mounts its copy at `/python` while it pre-initialises a function; we mount
//! the same bytes (embedded at build time by `build.rs`) at the same place, read-only, on every
//! invocation, so `import fractions` inside `main` works like it did at deploy time.

use crate::error::Result;
use std::path::{Path, PathBuf};

static ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/python-lib.tar.zst"));

/// Unpacks the library under `root` (once; a marker file says it is complete) and returns the
/// directory to mount.
pub fn ensure(root: &Path) -> Result<PathBuf> {
    let tag = format!("{:016x}", fastmurmur3::hash(ARCHIVE) as u64);
    let dir = root.join(format!("python-stdlib-{tag}"));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let tmp = root.join(format!(".python-stdlib-{tag}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let decoder = zstd::Decoder::new(std::io::Cursor::new(ARCHIVE))?;
    tar::Archive::new(decoder).unpack(&tmp)?;
    std::fs::write(tmp.join(".complete"), b"")?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // another process won the race: use its copy
        Err(_) if dir.join(".complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(dir)
}
