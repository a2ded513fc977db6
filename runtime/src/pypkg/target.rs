//! What functions run on: CPython 3.14 built for WASI (componentize-py's interpreter). Its
//! PEP 508 marker environment, and which wheels it can import (pure Python only: the guest
//! cannot load native extension modules).
//!
//! The environment's values are what the guest's own `sys`, `os` and `platform` report; a test
//! (`gateway/tests/requirements.rs`) reads them from a deployed function and compares.

use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use std::str::FromStr;
use std::sync::LazyLock;

/// `python_full_version` of the guest interpreter.
pub const PYTHON_FULL_VERSION: &str = "3.14.0";
/// Named in refusals: the target as a user would say it.
pub const TARGET_NAME: &str = "CPython 3.14/WASI";

/// The guest's marker environment.
pub fn environment() -> &'static MarkerEnvironment {
    static ENV: LazyLock<MarkerEnvironment> = LazyLock::new(|| {
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: PYTHON_FULL_VERSION,
            os_name: "posix",
            platform_machine: "wasm32",
            platform_python_implementation: "CPython",
            platform_release: "0.0.0",
            platform_system: "wasi",
            platform_version: "0.0.0",
            python_full_version: PYTHON_FULL_VERSION,
            python_version: "3.14",
            sys_platform: "wasi",
        })
        .expect("the target's versions parse")
    });
    &ENV
}

/// The guest's Python version, for `Requires-Python`.
pub fn python_version() -> &'static Version {
    static V: LazyLock<Version> =
        LazyLock::new(|| Version::from_str(PYTHON_FULL_VERSION).expect("a version"));
    &V
}

/// Does a `Requires-Python` value admit the guest? An unparsable one is taken as no
/// constraint, as pip does.
pub fn python_ok(requires_python: Option<&str>) -> bool {
    match requires_python.map(str::trim) {
        None | Some("") => true,
        Some(s) => VersionSpecifiers::from_str(s).map_or(true, |v| v.contains(python_version())),
    }
}

/// A distribution file's name, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistFile {
    /// Normalised project name (PEP 503).
    pub name: String,
    /// Its version.
    pub version: Version,
    /// What kind of file it is for the guest.
    pub kind: FileKind,
}

/// What a file is to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A wheel the guest can import.
    Pure,
    /// A wheel for other interpreters or platforms (native code, or Python 2 only).
    Other,
    /// A source distribution (building is not supported).
    Sdist,
}

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Is a wheel with these (compressed) tags importable by the guest? Pure wheels only:
/// `py3`/`py3X` (X ≤ 14) or `cp314` with ABI `none` and platform `any`.
pub fn tags_ok(py: &str, abi: &str, plat: &str) -> bool {
    let py_ok = py.split('.').any(|t| {
        t == "py3"
            || t == "cp314"
            || t.strip_prefix("py3")
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m <= 14)
    });
    py_ok && abi.split('.').any(|a| a == "none") && plat.split('.').any(|p| p == "any")
}

/// Parses a wheel or sdist file name; `None` when it is neither (or its version does not
/// parse).
pub fn parse_file(file: &str) -> Option<DistFile> {
    if let Some(stem) = file.strip_suffix(".whl") {
        // {name}-{version}(-{build})?-{py}-{abi}-{plat}
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) {
            return None;
        }
        let n = parts.len();
        let kind = if tags_ok(parts[n - 3], parts[n - 2], parts[n - 1]) {
            FileKind::Pure
        } else {
            FileKind::Other
        };
        return Some(DistFile {
            name: normalize(parts[0]),
            version: Version::from_str(parts[1]).ok()?,
            kind,
        });
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .find_map(|s| file.strip_suffix(s))?;
    // {name}-{version}: the name may itself hold dashes; the version never does
    let (name, version) = stem.rsplit_once('-')?;
    Some(DistFile {
        name: normalize(name),
        version: Version::from_str(version).ok()?,
        kind: FileKind::Sdist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_wheels_only() {
        for (f, kind) in [
            ("six-1.16.0-py2.py3-none-any.whl", FileKind::Pure),
            ("attrs-23.1.0-py3-none-any.whl", FileKind::Pure),
            ("tomli-2.0.1-py311-none-any.whl", FileKind::Pure),
            ("x-1.0-1build-py3-none-any.whl", FileKind::Pure),
            ("x-1.0-cp314-none-any.whl", FileKind::Pure),
            ("x-1.0-py315-none-any.whl", FileKind::Other),
            ("x-1.0-py2-none-any.whl", FileKind::Other),
            ("x-1.0-cp314-abi3-any.whl", FileKind::Other),
            (
                "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                FileKind::Other,
            ),
            ("charset_normalizer-3.4.0.tar.gz", FileKind::Sdist),
        ] {
            assert_eq!(parse_file(f).unwrap().kind, kind, "{f}");
        }
        let d = parse_file("Python_Dateutil-2.9.0.post0-py2.py3-none-any.whl").unwrap();
        assert_eq!(d.name, "python-dateutil");
        assert_eq!(d.version.to_string(), "2.9.0.post0");
        assert_eq!(
            parse_file("zope.interface-7.0.tar.gz").unwrap().name,
            "zope-interface"
        );
        assert!(parse_file("README.md").is_none());
        assert!(parse_file("x-notaversion-py3-none-any.whl").is_none());
    }

    #[test]
    fn names_normalise_as_pep_503_says() {
        for (a, b) in [
            ("Friendly-Bard", "friendly-bard"),
            ("FRIENDLY_BARD", "friendly-bard"),
            ("friendly.bard", "friendly-bard"),
            ("friendly--._bard", "friendly-bard"),
        ] {
            assert_eq!(normalize(a), b);
        }
    }

    #[test]
    fn requires_python_against_the_guest() {
        assert!(python_ok(None));
        assert!(python_ok(Some(">=3.8")));
        assert!(python_ok(Some(">=3.7, <4")));
        assert!(!python_ok(Some("<3.14")));
        assert!(!python_ok(Some(">=3.15")));
        assert!(python_ok(Some("not a specifier")));
    }
}
