//! `requirements.txt`: exact pins resolved to pure-Python wheels, from the bundle's `wheels/`
//! directory (air-gapped deploys), a local wheel cache, or `pip download` on the host; the
//! wheels are unpacked into the build's site directory.
//!
//! The cache is shared by every deploy on the node, so only what this node downloaded goes in
//! it, named by its sha256 and checked against it on every use. A wheel vendored in a bundle is
//! that bundle's alone: it is written to the build's scratch directory, never to the cache,
//! so one bundle cannot decide what a later deploy of the same pin gets.

use crate::error::{Error, Result};
use crate::executor::wasm::load::hex;
use bytes::Bytes;
use sha2::{Digest, Sha256};
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
    scratch: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(cache)?;
    std::fs::create_dir_all(scratch)?;
    let mut out = Vec::new();
    for req in reqs {
        out.push(resolve_one(req, bundle, cache, scratch)?);
    }
    Ok(out)
}

/// A cached wheel for `req` whose bytes still hash to the name it is kept under
/// (`<sha256>-<wheel file name>`); an entry that does not is removed.
fn cached(req: &Requirement, cache: &Path) -> Result<Option<PathBuf>> {
    for e in std::fs::read_dir(cache)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((digest, file)) = name.split_once('-') else {
            continue;
        };
        if digest.len() != 64 || matches(file, req) != Some(true) {
            continue;
        }
        let bytes = std::fs::read(e.path())?;
        if hex(&Sha256::digest(&bytes)) == digest {
            return Ok(Some(e.path()));
        }
        tracing::warn!("wheel cache entry {name} does not match its sha256; removed");
        let _ = std::fs::remove_file(e.path());
    }
    Ok(None)
}

/// Puts a downloaded wheel in the cache under its sha256.
fn cache_put(wheel: &Path, file: &str, cache: &Path) -> Result<PathBuf> {
    let digest = hex(&Sha256::digest(std::fs::read(wheel)?));
    let dest = cache.join(format!("{digest}-{file}"));
    std::fs::rename(wheel, &dest)?;
    Ok(dest)
}

fn resolve_one(
    req: &Requirement,
    bundle: &BTreeMap<String, Bytes>,
    cache: &Path,
    scratch: &Path,
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
                let p = scratch.join(file.replace('/', "_"));
                std::fs::write(&p, data)?;
                return Ok(p);
            }
            Some(false) => binary_seen = true,
            None => {}
        }
    }
    // 2. downloaded earlier
    if let Some(p) = cached(req, cache)? {
        return Ok(p);
    }
    if binary_seen {
        return Err(no_pure());
    }
    // 3. pip, restricted to pure wheels
    let tmp = tempfile::tempdir_in(cache)?;
    let mut cmd = Command::new("python3");
    // pip (and what it runs) gets none of the node's own credentials
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with(crate::secrets::ENV_PREFIX) || k.starts_with("IPFAAS_API_TOKEN") {
            cmd.env_remove(&*k);
        }
    }
    let run = cmd
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
            return cache_put(&e.path(), &name, cache);
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

    #[test]
    fn vendored_wheels_stay_out_of_the_cache_and_the_cache_is_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache, scratch) = (tmp.path().join("cache"), tmp.path().join("scratch"));
        let six = Requirement {
            name: "six".into(),
            version: "1.16.0".into(),
        };
        let file = "six-1.16.0-py2.py3-none-any.whl";
        let mut bundle = BTreeMap::new();
        bundle.insert(format!("wheels/{file}"), Bytes::from_static(b"vendored"));
        let got = resolve(std::slice::from_ref(&six), &bundle, &cache, &scratch).unwrap();
        assert!(got[0].starts_with(&scratch), "{got:?}");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);

        // a downloaded wheel is found again under its digest; one whose bytes changed is not
        let dl = tmp.path().join(file);
        std::fs::write(&dl, b"from pypi").unwrap();
        let kept = cache_put(&dl, file, &cache).unwrap();
        assert_eq!(cached(&six, &cache).unwrap(), Some(kept.clone()));
        std::fs::write(&kept, b"tampered").unwrap();
        assert_eq!(cached(&six, &cache).unwrap(), None);
        assert!(!kept.exists());
    }
}
