//! Unpacking the wheels a deploy installs (see [`crate::pypkg`]) into the build's site
//! directory: the `.data/purelib` and `platlib` trees land at the top, scripts and data are
//! skipped, and a wheel can neither leave the directory nor unpack without bound.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Most files all the wheels of one function may unpack to.
const MAX_FILES: u64 = 200_000;

/// What is left of one function's unpacking allowance.
#[derive(Debug)]
pub struct Budget {
    bytes: u64,
    files: u64,
    max: u64,
}

impl Budget {
    /// An allowance of `bytes` unpacked bytes in all (and [`MAX_FILES`] files).
    pub fn new(bytes: u64) -> Self {
        Self {
            bytes,
            files: MAX_FILES,
            max: bytes,
        }
    }
}

/// Unpacks a wheel into `site`, counting against `budget`.
pub fn unpack(wheel: &Path, site: &Path, budget: &mut Budget) -> Result<()> {
    let name = wheel
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // the cache keeps wheels as `<sha256>-<file>`: name the file
    let shown = match name.split_once('-') {
        Some((d, f)) if crate::pypkg::cache::is_digest(d) => f.to_string(),
        _ => name,
    };
    let bad = |e: String| Error::InvalidInput(format!("wheel {shown}: {e}"));
    let f = std::fs::File::open(wheel)?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    for i in 0..z.len() {
        let entry = z.by_index(i).map_err(|e| bad(e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let raw = entry.name().to_string();
        let mut rel = raw.as_str();
        if let Some((first, rest)) = rel.split_once('/')
            && first.ends_with(".data")
        {
            match rest.split_once('/') {
                Some(("purelib" | "platlib", r)) => rel = r,
                _ => continue, // scripts, headers, data: not importable
            }
        }
        let parts =
            crate::store::add::clean_path(rel).map_err(|_| bad(format!("unsafe path {raw:?}")))?;
        budget.files = budget
            .files
            .checked_sub(1)
            .ok_or_else(|| bad(format!("the wheels hold more than {MAX_FILES} files")))?;
        let dest = parts.iter().fold(site.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&dest)?;
        // the sizes a zip states may lie: count what decompresses
        let n = std::io::copy(&mut entry.take(budget.bytes + 1), &mut out)
            .map_err(|e| bad(e.to_string()))?;
        budget.bytes = budget.bytes.checked_sub(n).ok_or_else(|| {
            bad(format!(
                "the wheels unpack to more than {} bytes",
                budget.max
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(dir: &Path, entries: &[(&str, &[u8])]) -> std::path::PathBuf {
        let p = dir.join("x-1.0-py3-none-any.whl");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        p
    }

    #[test]
    fn unpacks_importable_trees_only_and_within_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("site");
        let w = wheel(
            tmp.path(),
            &[
                ("x/__init__.py", b"A = 1\n"),
                ("x-1.0.data/purelib/y.py", b"B = 2\n"),
                ("x-1.0.data/scripts/run", b"#!/bin/sh\n"),
            ],
        );
        unpack(&w, &site, &mut Budget::new(1 << 20)).unwrap();
        assert!(site.join("x/__init__.py").is_file());
        assert!(site.join("y.py").is_file());
        assert!(!site.join("run").exists());

        for (entries, want) in [
            (vec![("../evil.py", &b"x"[..])], "unsafe path"),
            (vec![("/abs.py", &b"x"[..])], "unsafe path"),
        ] {
            let w = wheel(tmp.path(), &entries);
            let e = unpack(&w, &site, &mut Budget::new(1 << 20)).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        assert!(!tmp.path().join("evil.py").exists());

        // a bomb: 64 MiB of zeros compress to a few KiB, and the budget is 1 MiB
        let zeros = vec![0u8; 64 << 20];
        let w = wheel(tmp.path(), &[("bomb.bin", &zeros)]);
        assert!(std::fs::metadata(&w).unwrap().len() < 1 << 20);
        let e = unpack(&w, &site, &mut Budget::new(1 << 20)).unwrap_err();
        assert!(e.to_string().contains("more than 1048576 bytes"), "{e}");
        assert!(std::fs::metadata(site.join("bomb.bin")).unwrap().len() <= (1 << 20) + 1);
    }
}
