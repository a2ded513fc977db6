//! Recursive pins: one file per pinned root under `<repo>/pins/`, created durably (temp file,
//! fsync, rename, fsync of the directory) after the blocks it protects are durable.

use cid::Cid;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;

/// The pin set of one repo, kept as files in one directory.
#[derive(Debug)]
pub struct Pins {
    dir: PathBuf,
}

impl Pins {
    /// Opens (creating) the pin directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, cid: &Cid) -> PathBuf {
        self.dir.join(cid.to_string())
    }

    /// Whether `cid` itself is a pinned root (blocks below a root are not looked up).
    pub fn is_pinned(&self, cid: &Cid) -> bool {
        self.path(cid).is_file()
    }

    /// Pins `cids` durably. Idempotent.
    pub fn add(&self, cids: &[Cid]) -> io::Result<()> {
        let mut wrote = false;
        for cid in cids {
            let target = self.path(cid);
            if target.is_file() {
                continue;
            }
            let tmp = self.dir.join(format!(".{cid}.{}.tmp", std::process::id()));
            let mut f = File::create(&tmp)?;
            f.write_all(b"recursive\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &target)?;
            wrote = true;
        }
        if wrote {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Unpins `cid`; `Ok(false)` if it was not pinned.
    pub fn remove(&self, cid: &Cid) -> io::Result<bool> {
        match fs::remove_file(self.path(cid)) {
            Ok(()) => {
                File::open(&self.dir)?.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every pinned root, sorted; stray files (an interrupted pin's temp file) are skipped.
    pub fn list(&self) -> io::Result<Vec<Cid>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let name = e?.file_name();
            if let Ok(cid) = name.to_string_lossy().parse::<Cid>() {
                out.push(cid);
            }
        }
        out.sort();
        Ok(out)
    }
}
