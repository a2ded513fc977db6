//! The names: which function CID each name points at now, and every version it pointed at
//! before (for listing and rollback), kept in `<repo>/functions/names.json`.
//!
//! The file is rewritten whole and atomically on every change (a few hundred bytes per name).
//! Files written before versions existed (`{"name": "cid"}`) are read as names with one version
//! of unknown date.

use crate::error::{Result, io_err};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// One version of a name: a function CID it pointed at, from when, by whom, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The function CID.
    pub function_cid: String,
    /// When the name started pointing at it, in seconds since the Unix epoch (unknown for
    /// names migrated from the first file format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// Who made the change: the API token's id ([`token_id`]) when the node has a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `"deploy"` (a build or a manifest), `"rollback"` (pointed back at one of the name's
    /// versions) or `"point"` (pointed at another existing function, a peer's say).
    pub how: String,
}

/// A name's record: the current function CID and its history, oldest first (the last one is
/// the current one).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    current: String,
    versions: Vec<Version>,
}

/// A record as found on disk: today's form, or the first format's bare function CID.
#[derive(Deserialize)]
#[serde(untagged)]
enum OnDisk {
    Entry(Entry),
    Bare(String),
}

/// The names and their histories.
pub struct Names {
    file: PathBuf,
    map: Mutex<BTreeMap<String, Entry>>,
}

/// A short, stable, non-secret id for an API token (the first 8 bytes of its SHA-256, in hex),
/// recorded as who changed a name.
pub fn token_id(token: &str) -> String {
    let h = Sha256::digest(token.as_bytes());
    format!(
        "token:{}",
        h[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Names {
    /// Reads `file` (none yet = no names).
    pub fn open(file: PathBuf) -> Result<Self> {
        let map = match std::fs::read(&file) {
            Ok(b) => {
                let raw: BTreeMap<String, OnDisk> = serde_json::from_slice(&b)
                    .map_err(|e| io_err(format!("{} is corrupt: {e}", file.display())))?;
                raw.into_iter()
                    .map(|(name, r)| {
                        let e = match r {
                            OnDisk::Entry(e) => e,
                            OnDisk::Bare(cid) => Entry {
                                versions: vec![Version {
                                    function_cid: cid.clone(),
                                    at: None,
                                    by: None,
                                    how: "deploy".into(),
                                }],
                                current: cid,
                            },
                        };
                        (name, e)
                    })
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            file,
            map: Mutex::new(map),
        })
    }

    /// Applies `change` to a copy of the map, writes it durably, then makes it the map: a
    /// failed write changes nothing. A change that returns `None` changed nothing: no write.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Entry>) -> Option<T>,
    ) -> Result<Option<T>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = map.clone();
        let Some(out) = change(&mut next) else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec_pretty(&next).map_err(io_err)?;
        crate::fs::write_atomic(&self.file, &bytes, true)?;
        *map = next;
        Ok(Some(out))
    }

    /// Points `name` at `function_cid`, recording a version unless it already points there.
    /// Returns whether the name changed.
    pub fn point(
        &self,
        name: &str,
        function_cid: &str,
        how: &str,
        by: Option<&str>,
    ) -> Result<bool> {
        let changed = self.update(|m| {
            if m.get(name).is_some_and(|e| e.current == function_cid) {
                return None;
            }
            let v = Version {
                function_cid: function_cid.to_string(),
                at: Some(now()),
                by: by.map(str::to_string),
                how: how.to_string(),
            };
            let e = m.entry(name.to_string()).or_insert_with(|| Entry {
                current: String::new(),
                versions: vec![],
            });
            e.current = function_cid.to_string();
            e.versions.push(v);
            Some(())
        })?;
        Ok(changed.is_some())
    }

    /// Forgets `name` and its history; returns every function CID it held (`None`: no such
    /// name).
    pub fn remove(&self, name: &str) -> Result<Option<Vec<String>>> {
        self.update(|m| {
            m.remove(name).map(|e| {
                let mut cids: Vec<String> = vec![];
                for v in e.versions.into_iter().rev() {
                    if !cids.contains(&v.function_cid) {
                        cids.push(v.function_cid);
                    }
                }
                cids
            })
        })
    }

    /// The function CID `name` points at.
    pub fn get(&self, name: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).map(|e| e.current.clone())
    }

    /// `name`'s versions, newest first.
    pub fn versions(&self, name: &str) -> Option<Vec<Version>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name)
            .map(|e| e.versions.iter().rev().cloned().collect())
    }

    /// Whether some name points at `function_cid` now.
    pub fn is_current(&self, function_cid: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values().any(|e| e.current == function_cid)
    }

    /// Every name with its current function CID.
    pub fn current(&self) -> BTreeMap<String, String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(n, e)| (n.clone(), e.current.clone()))
            .collect()
    }

    /// Every function CID some name other than `except` points at now or did before.
    pub fn referenced(&self, except: Option<&str>) -> HashSet<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(n, _)| Some(n.as_str()) != except)
            .flat_map(|(_, e)| e.versions.iter().map(|v| v.function_cid.clone()))
            .collect()
    }

    /// The version a rollback without a function CID goes to: the newest one older than the
    /// current version's own arrival (its newest deploy or point, not a rollback to it), so
    /// rolling back twice steps back twice instead of flipping between two versions.
    pub fn previous(&self, name: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.get(name)?;
        let arrived = e
            .versions
            .iter()
            .rposition(|v| v.function_cid == e.current && v.how != "rollback")
            .unwrap_or(e.versions.len().saturating_sub(1));
        e.versions[..arrived]
            .iter()
            .rev()
            .find(|v| v.function_cid != e.current)
            .map(|v| v.function_cid.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_survives_reopening_and_first_format_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("names.json");
        std::fs::write(&file, r#"{"old": "bafkold"}"#).unwrap();
        let n = Names::open(file.clone()).unwrap();
        assert_eq!(n.get("old").as_deref(), Some("bafkold"));
        assert_eq!(n.versions("old").unwrap()[0].at, None);
        assert!(n.point("f", "bafk1", "deploy", None).unwrap());
        assert!(
            !n.point("f", "bafk1", "deploy", None).unwrap(),
            "same CID: no version"
        );
        assert!(n.point("f", "bafk2", "deploy", Some("token:ab")).unwrap());
        assert!(n.point("f", "bafk1", "rollback", None).unwrap());
        let n = Names::open(file).unwrap();
        let v: Vec<_> = n
            .versions("f")
            .unwrap()
            .into_iter()
            .map(|v| (v.function_cid, v.how, v.by))
            .collect();
        assert_eq!(
            v,
            [
                ("bafk1".into(), "rollback".into(), None),
                ("bafk2".into(), "deploy".into(), Some("token:ab".into())),
                ("bafk1".into(), "deploy".into(), None),
            ]
        );
        assert_eq!(n.get("f").as_deref(), Some("bafk1"));
        assert_eq!(
            n.referenced(None),
            ["bafkold", "bafk1", "bafk2"].map(String::from).into()
        );
        assert_eq!(
            n.referenced(Some("f")),
            ["bafkold"].map(String::from).into()
        );
        assert_eq!(n.remove("f").unwrap().unwrap(), ["bafk1", "bafk2"]);
        assert_eq!(n.remove("f").unwrap(), None);
        assert_eq!(n.get("f"), None);
    }

    #[test]
    fn rolling_back_twice_steps_back_twice() {
        let dir = tempfile::tempdir().unwrap();
        let n = Names::open(dir.path().join("names.json")).unwrap();
        for c in ["a", "b", "c"] {
            n.point("f", c, "deploy", None).unwrap();
        }
        let mut seen = vec![];
        while let Some(p) = n.previous("f") {
            n.point("f", &p, "rollback", None).unwrap();
            seen.push(p);
        }
        assert_eq!(seen, ["b", "a"]);
        // a new deploy after the rollbacks: back to the version it replaced
        n.point("f", "d", "deploy", None).unwrap();
        assert_eq!(n.previous("f").as_deref(), Some("a"));
        assert_eq!(n.previous("nosuch"), None);
    }

    #[test]
    fn token_ids_are_short_and_do_not_show_the_token() {
        let id = token_id("s3cret-token");
        assert!(id.starts_with("token:") && id.len() == 6 + 16, "{id}");
        assert!(!id.contains("s3cret"));
        assert_eq!(id, token_id("s3cret-token"));
        assert_ne!(id, token_id("other"));
    }
}
