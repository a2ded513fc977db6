//! `requirements.txt`: exact pins resolved to pure-Python wheels, from the bundle's `wheels/`
//! directory (air-gapped deploys), a local wheel cache, or `pip download` on the host; the
//! wheels are unpacked into the build's site directory.

use crate::error::{Error, Result};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One pinned line of `requirements.txt`: `name==version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The distribution name as written (extras and markers stripped).
    pub name: String,
    /// The exact version pinned.
    pub version: String,
}

/// Accepts `name==version` lines (comments and blank lines ignored); anything looser is refused
/// because a build must be reproducible.
pub fn parse(text: &str) -> Result<Vec<Requirement>> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| {
            Error::InvalidInput(format!("requirements.txt line {}: {line:?} {why}", n + 1))
        };
        if line.starts_with('-') {
            return Err(bad("is an option; only `name==version` pins are supported"));
        }
        let line_no_marker = line.split(';').next().unwrap_or("").trim();
        let Some((name, version)) = line_no_marker.split_once("==") else {
            return Err(bad("is not pinned: write it as name==version"));
        };
        let name = name.split('[').next().unwrap_or("").trim();
        let version = version.trim();
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.+!".contains(c))
        };
        if !valid(name) || !valid(version) || version.contains('*') {
            return Err(bad("is not a valid `name==version` pin"));
        }
        out.push(Requirement {
            name: name.to_string(),
            version: version.to_string(),
        });
    }
    Ok(out)
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

/// Does `file` (a wheel file name) hold `req`, and is it pure Python?
/// Returns `Some(true)` for a pure match, `Some(false)` for a binary wheel of it.
fn matches(file: &str, req: &Requirement) -> Option<bool> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return None;
    }
    let (dist, version) = (parts[0], parts[1]);
    let (py, abi, plat) = (
        parts[parts.len() - 3],
        parts[parts.len() - 2],
        parts[parts.len() - 1],
    );
    if normalize(dist) != normalize(&req.name) || version != req.version {
        return None;
    }
    Some(py.split('.').any(|t| t == "py3") && abi == "none" && plat == "any")
}

/// Finds or fetches a pure wheel for every requirement; returns their paths.
pub fn resolve(
    reqs: &[Requirement],
    bundle: &BTreeMap<String, Bytes>,
    cache: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(cache)?;
    let mut out = Vec::new();
    for req in reqs {
        out.push(resolve_one(req, bundle, cache)?);
    }
    Ok(out)
}

fn resolve_one(
    req: &Requirement,
    bundle: &BTreeMap<String, Bytes>,
    cache: &Path,
) -> Result<PathBuf> {
    let pin = format!("{}=={}", req.name, req.version);
    let no_pure = || {
        Error::InvalidInput(format!(
            "requirements.txt: {pin} has no pure-Python wheel (py3-none-any); only pure-Python packages run in the WebAssembly sandbox"
        ))
    };
    // 1. vendored in the bundle
    let mut binary_seen = false;
    for (path, data) in bundle {
        let Some(file) = path.strip_prefix("wheels/") else {
            continue;
        };
        match matches(file, req) {
            Some(true) => {
                let p = cache.join(file);
                std::fs::write(&p, data)?;
                return Ok(p);
            }
            Some(false) => binary_seen = true,
            None => {}
        }
    }
    // 2. fetched earlier
    for e in std::fs::read_dir(cache)? {
        let e = e?;
        if matches(&e.file_name().to_string_lossy(), req) == Some(true) {
            return Ok(e.path());
        }
    }
    if binary_seen {
        return Err(no_pure());
    }
    // 3. pip, restricted to pure wheels
    let tmp = tempfile::tempdir_in(cache)?;
    let run = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--only-binary=:all:", "--platform", "any"])
        .args([
            "--implementation",
            "py",
            "--abi",
            "none",
            "--python-version",
            "3.14",
        ])
        .arg("-d")
        .arg(tmp.path())
        .arg(&pin)
        .output();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            return Err(Error::InvalidInput(format!(
                "requirements.txt: cannot fetch {pin}: python3 -m pip is not available on this host ({e}); vendor the wheel in the bundle's wheels/ directory"
            )));
        }
    };
    if !run.status.success() {
        let err = String::from_utf8_lossy(&run.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        if err.contains("No matching distribution") || err.contains("Could not find a version") {
            return Err(Error::InvalidInput(format!(
                "requirements.txt: cannot resolve {pin} to a pure-Python wheel: {}",
                last.trim()
            )));
        }
        return Err(Error::InvalidInput(format!(
            "requirements.txt: pip could not download {pin}: {}",
            last.trim()
        )));
    }
    for e in std::fs::read_dir(tmp.path())? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if matches(&name, req) == Some(true) {
            let dest = cache.join(&name);
            std::fs::rename(e.path(), &dest)?;
            return Ok(dest);
        }
    }
    Err(no_pure())
}

/// Unpacks a wheel into `site` (the `.data/purelib` and `platlib` trees land at the top).
pub fn unpack(wheel: &Path, site: &Path) -> Result<()> {
    let name = wheel
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let bad = |e: String| Error::InvalidInput(format!("wheel {name}: {e}"));
    let f = std::fs::File::open(wheel)?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    for i in 0..z.len() {
        let mut entry = z.by_index(i).map_err(|e| bad(e.to_string()))?;
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
        let dest = parts.iter().fold(site.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&dest)?;
        std::io::copy(&mut entry, &mut out).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_only() {
        let r = parse("# deps\nsix==1.16.0  # compat\n\nattrs[tests]==23.1.0\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].name, "attrs");
        for bad in ["six", "six>=1", "-r other.txt", "six==1.*"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("line 1"), "{bad}: {e}");
        }
    }

    #[test]
    fn wheel_names() {
        let six = Requirement {
            name: "six".into(),
            version: "1.16.0".into(),
        };
        assert_eq!(matches("six-1.16.0-py2.py3-none-any.whl", &six), Some(true));
        assert_eq!(matches("six-1.17.0-py2.py3-none-any.whl", &six), None);
        let np = Requirement {
            name: "numpy".into(),
            version: "2.0.0".into(),
        };
        assert_eq!(
            matches("numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl", &np),
            Some(false)
        );
    }
}
