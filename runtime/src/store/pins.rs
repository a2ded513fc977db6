//! Recursive pins: one file per pinned root under `<repo>/pins/`, created durably (temp file,
//! fsync, rename, fsync of the directory) after the blocks it protects are durable.

use cid::Cid;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

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
        // an interrupted pin's temp file: the pin never happened
        for e in fs::read_dir(&dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(dir.join(&*name));
            }
        }
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
            // a temp file of its own: concurrent pins of one root each write theirs, and the
            // renames onto the same name all succeed with the same content
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let tmp = self
                .dir
                .join(format!(".{cid}.{}.{seq}.tmp", std::process::id()));
            let write = || -> io::Result<()> {
                let mut f = File::options().write(true).create_new(true).open(&tmp)?;
                f.write_all(b"recursive\n")?;
                f.sync_all()?;
                fs::rename(&tmp, &target)
            };
            write().inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_pins_of_one_root_all_succeed() {
        let tmp = tempfile::tempdir().unwrap();
        let pins = std::sync::Arc::new(Pins::open(tmp.path().join("pins")).unwrap());
        let cid: Cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            .parse()
            .unwrap();
        for _round in 0..20 {
            assert!(pins.remove(&cid).is_ok());
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let pins = pins.clone();
                    std::thread::spawn(move || pins.add(&[cid]))
                })
                .collect();
            for t in threads {
                t.join().unwrap().expect("a concurrent pin failed");
            }
            assert_eq!(pins.list().unwrap(), vec![cid]);
        }
        // nothing else left in the directory
        assert_eq!(fs::read_dir(tmp.path().join("pins")).unwrap().count(), 1);
        // a crashed pin's temp file goes when the pins are opened again
        fs::write(tmp.path().join("pins").join(format!(".{cid}.1.2.tmp")), b"").unwrap();
        let again = Pins::open(tmp.path().join("pins")).unwrap();
        assert_eq!(again.list().unwrap(), vec![cid]);
        assert_eq!(fs::read_dir(tmp.path().join("pins")).unwrap().count(), 1);
    }
}
