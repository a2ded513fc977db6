//! The lock: the exact wheels a function is built from (name, version, file, sha256). It is
//! part of the function's definition (so of its CID), returned by a deploy, and written as
//! `requirements.lock` (TOML) next to a bundle; a bundle that carries one is built from it
//! exactly, every wheel checked against its digest.

use serde::{Deserialize, Serialize};

/// One locked wheel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    /// Normalised project name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The wheel's file name.
    pub file: String,
    /// The wheel's sha256, lower-case hex.
    pub sha256: String,
    /// Where it was downloaded from (kept in `requirements.lock`, not in the definition: the
    /// same wheel may come from any mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A whole lock, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Lock format version (1).
    pub version: u32,
    /// The wheels.
    #[serde(default, rename = "wheel")]
    pub wheels: Vec<Locked>,
}

const HEADER: &str = "# requirements.lock, written by ipfaas from requirements.txt.\n\
# A bundle that carries this file is built from exactly these wheels, each checked against\n\
# its sha256. Delete it (or deploy with --upgrade) to resolve requirements.txt again.\n";

impl Lock {
    /// A lock of `wheels` (sorted here).
    pub fn new(mut wheels: Vec<Locked>) -> Self {
        wheels.sort_by(|a, b| a.name.cmp(&b.name).then(a.file.cmp(&b.file)));
        Self { version: 1, wheels }
    }

    /// Reads a `requirements.lock`; checks every field a build will use.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lock: Lock =
            toml::from_str(text).map_err(|e| format!("requirements.lock: {}", e.message()))?;
        if lock.version != 1 {
            return Err(format!(
                "requirements.lock: version {} is not supported (1 is)",
                lock.version
            ));
        }
        for w in &lock.wheels {
            if !super::cache::is_digest(&w.sha256) {
                return Err(format!(
                    "requirements.lock: {}: sha256 {:?} is not a lower-case sha256 digest",
                    w.name, w.sha256
                ));
            }
            let plain = !w.file.contains(['/', '\\', '\0']) && !w.file.starts_with('.');
            match super::target::parse_file(&w.file) {
                Some(d)
                    if plain
                        && d.kind == super::target::FileKind::Pure
                        && d.name == super::target::normalize(&w.name) => {}
                _ => {
                    return Err(format!(
                        "requirements.lock: {}: {:?} is not a pure-Python wheel of it",
                        w.name, w.file
                    ));
                }
            }
        }
        Ok(Self::new(lock.wheels))
    }

    /// `requirements.lock`'s text.
    pub fn to_toml(&self) -> String {
        format!("{HEADER}{}", toml::to_string(self).unwrap_or_default())
    }

    /// The lock as it goes in a definition: without download URLs.
    pub fn without_urls(&self) -> Vec<Locked> {
        self.wheels
            .iter()
            .map(|w| Locked {
                url: None,
                ..w.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_checked() {
        let lock = Lock::new(vec![
            Locked {
                name: "six".into(),
                version: "1.16.0".into(),
                file: "six-1.16.0-py2.py3-none-any.whl".into(),
                sha256: "a".repeat(64),
                url: Some("https://files.example/six.whl".into()),
            },
            Locked {
                name: "attrs".into(),
                version: "23.1.0".into(),
                file: "attrs-23.1.0-py3-none-any.whl".into(),
                sha256: "b".repeat(64),
                url: None,
            },
        ]);
        assert_eq!(lock.wheels[0].name, "attrs");
        let text = lock.to_toml();
        assert!(text.starts_with("# requirements.lock"));
        assert_eq!(Lock::parse(&text).unwrap(), lock);
        assert!(lock.without_urls().iter().all(|w| w.url.is_none()));

        for (bad, want) in [
            (
                text.replace(&"a".repeat(64), "../x"),
                "not a lower-case sha256",
            ),
            (
                text.replace(
                    "six-1.16.0-py2.py3-none-any.whl",
                    "numpy-2.0-cp314-cp314-linux_x86_64.whl",
                ),
                "not a pure-Python wheel",
            ),
            (text.replace("version = 1", "version = 7"), "version 7"),
            (
                text.replace("\"six\"", "\"../six\"")
                    .replace("six-1.16.0-py2.py3", "../six-1.16.0-py2.py3"),
                "not a pure-Python wheel",
            ),
            (format!("{text}\nextra = 1\n"), "requirements.lock"),
        ] {
            let e = Lock::parse(&bad).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
