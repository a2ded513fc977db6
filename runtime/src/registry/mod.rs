//! The registry: which functions this node knows, and what they are.
//!
//! - [`bundle`] — a deploy bundle read from an upload or a directory, and function names.
//! - [`manifest`] — `ipfaas.toml` / the JSON manifest, one parser for both kinds.
//! - [`def`] — definitions, the content-addressed description of a deployed function.
//! - [`names`] — the name → function CID map with each name's versions.
//!
//! Everything a function is made of lives in the backing store; only the names are kept
//! beside it, in `<repo>/functions/names.json`.

pub mod bundle;
pub mod def;
pub mod manifest;
pub mod names;

pub use bundle::Bundle;
pub use def::Def;
pub use manifest::{Manifest, Spec};
pub use names::Version;

use crate::error::{Error, Result, parse_cid};
use crate::store::Store;
use bytes::Bytes;
use names::Names;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Largest definition read from the store.
const MAX_DEF: u64 = 1 << 20;

/// One entry of the function list.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The name.
    pub name: String,
    /// The function CID it points at.
    pub function_cid: String,
    /// `"python"` or `"docker"`.
    pub kind: String,
    /// Python: the component's CID; Docker: the image ID.
    pub component_cid: String,
    /// Python: the bundle's CID; Docker: empty.
    pub bundle_cid: String,
}

/// Names and definitions.
pub struct Registry {
    names: Names,
    /// Definitions read so far, by function CID.
    defs: Mutex<HashMap<String, Arc<Def>>>,
}

impl Registry {
    /// Reads the names kept in `dir` (`<repo>/functions`).
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self {
            names: Names::open(dir.join("names.json"))?,
            defs: Mutex::new(HashMap::new()),
        })
    }

    /// Stores a definition (its CID is the function CID) and points `name` at it, as a new
    /// version made by `by` (see [`names::token_id`]).
    pub async fn register(
        &self,
        store: &Store,
        name: &str,
        def: Def,
        by: Option<&str>,
    ) -> Result<String> {
        let function_cid = store.add_bytes(Bytes::from(def.to_bytes()?)).await?;
        self.defs
            .lock()
            .unwrap()
            .insert(function_cid.clone(), Arc::new(def));
        self.names.point(name, &function_cid, "deploy", by)?;
        Ok(function_cid)
    }

    /// Points `name` at an existing function CID (`how`: `"rollback"` to one of its versions,
    /// `"point"` to another function): recorded as a version, durably. Returns whether the
    /// name changed.
    pub fn point(
        &self,
        name: &str,
        function_cid: &str,
        how: &str,
        by: Option<&str>,
    ) -> Result<bool> {
        self.names.point(name, function_cid, how, by)
    }

    /// Forgets `name` and its versions; returns the function CIDs it held, newest first
    /// (`None`: no such name).
    pub fn remove(&self, name: &str) -> Result<Option<Vec<String>>> {
        self.names.remove(name)
    }

    /// `name`'s versions, newest first (`None`: no such name).
    pub fn versions(&self, name: &str) -> Option<Vec<Version>> {
        self.names.versions(name)
    }

    /// Every function CID a name other than `except` points at or pointed at before.
    pub fn referenced(&self, except: Option<&str>) -> HashSet<String> {
        self.names.referenced(except)
    }

    /// The version a rollback of `name` without a function CID goes to (see
    /// [`names::Names::previous`]).
    pub fn previous(&self, name: &str) -> Option<String> {
        self.names.previous(name)
    }

    /// Drops a definition from the cache (a purged function's), so it is read again.
    pub fn forget(&self, function_cid: &str) {
        self.defs.lock().unwrap().remove(function_cid);
    }

    /// Every name with what it points at.
    pub async fn list(&self, store: &Store) -> Result<Vec<Listed>> {
        let names = self.names.current();
        let mut out = Vec::new();
        for (name, cid) in names {
            // one definition that cannot be read (gone, or refused by a stricter check than the
            // one it was written under) is listed as such, not a failure of the whole list
            let (kind, component_cid, bundle_cid) = match self.definition(store, &cid).await {
                Ok(def) => match &*def {
                    Def::Python(p) => ("python", p.component.clone(), p.bundle.clone()),
                    Def::Docker(d) => ("docker", d.image_id.clone(), String::new()),
                },
                Err(e) => {
                    tracing::warn!("function {name:?} ({cid}): {e}");
                    ("unreadable", String::new(), String::new())
                }
            };
            out.push(Listed {
                name,
                function_cid: cid,
                kind: kind.to_string(),
                component_cid,
                bundle_cid,
            });
        }
        Ok(out)
    }

    /// Whether some name on this node points to `function_cid` now (it was deployed here and
    /// not replaced: a Docker version an operator replaced is not run for peers).
    pub fn is_named_here(&self, function_cid: &str) -> bool {
        self.names.is_current(function_cid)
    }

    /// A name's current function CID, or the CID itself.
    pub fn resolve(&self, function: &str) -> Result<String> {
        if let Some(c) = self.names.get(function) {
            return Ok(c);
        }
        match parse_cid(function) {
            Ok(c) => Ok(c.to_string()),
            Err(_) => Err(Error::UnknownFunction(function.to_string())),
        }
    }

    /// The `function` label of a metric for an invocation of `function` (a name or a CID),
    /// from a bounded set: a name deployed here, `(cid)` for any function CID, `(unknown)` for
    /// anything else. Callers choose what they invoke; a label per CID or per typo would grow
    /// the node's metrics without bound.
    pub fn metric_label(&self, function: &str) -> String {
        if self.names.get(function).is_some() {
            function.to_string()
        } else if parse_cid(function).is_ok() {
            "(cid)".to_string()
        } else {
            "(unknown)".to_string()
        }
    }

    /// Reads (and caches) a function definition from the store, checked.
    pub async fn definition(&self, store: &Store, function_cid: &str) -> Result<Arc<Def>> {
        if let Some(d) = self.defs.lock().unwrap().get(function_cid) {
            return Ok(d.clone());
        }
        let cid = parse_cid(function_cid)?;
        let bytes = store.read_all(cid, MAX_DEF).await?;
        let def = Arc::new(Def::parse(function_cid, &bytes)?);
        self.defs
            .lock()
            .unwrap()
            .insert(function_cid.to_string(), def.clone());
        Ok(def)
    }
}
