//! The registry: which functions this node knows, and what they are.
//!
//! - [`bundle`] — a deploy bundle read from an upload or a directory, and function names.
//! - [`manifest`] — `ipfaas.toml` / the JSON manifest, one parser for both kinds.
//! - [`def`] — definitions, the content-addressed description of a deployed function.
//!
//! Everything a function is made of lives in the backing store; only the name → function CID
//! map is kept beside it, in `<repo>/functions/names.json`.

pub mod bundle;
pub mod def;
pub mod manifest;

pub use bundle::Bundle;
pub use def::Def;
pub use manifest::{Manifest, Spec};

use crate::error::{Error, Result, io_err, parse_cid};
use crate::store::Store;
use bytes::Bytes;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
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
    /// `<repo>/functions/names.json`.
    names_file: PathBuf,
    names: Mutex<BTreeMap<String, String>>,
    /// Definitions read so far, by function CID.
    defs: Mutex<HashMap<String, Arc<Def>>>,
}

impl Registry {
    /// Reads the names kept in `dir` (`<repo>/functions`).
    pub fn open(dir: &Path) -> Result<Self> {
        let names_file = dir.join("names.json");
        let names = match std::fs::read(&names_file) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| io_err(format!("{} is corrupt: {e}", names_file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            names_file,
            names: Mutex::new(names),
            defs: Mutex::new(HashMap::new()),
        })
    }

    /// Stores a definition (its CID is the function CID) and points `name` at it.
    pub async fn register(&self, store: &Store, name: &str, def: Def) -> Result<String> {
        let function_cid = store.add_bytes(Bytes::from(def.to_bytes()?)).await?;
        self.defs
            .lock()
            .unwrap()
            .insert(function_cid.clone(), Arc::new(def));
        self.set_name(name, &function_cid)?;
        Ok(function_cid)
    }

    /// Points `name` at `function_cid`, durably.
    fn set_name(&self, name: &str, function_cid: &str) -> Result<()> {
        let mut names = self.names.lock().unwrap();
        let mut next = names.clone();
        next.insert(name.to_string(), function_cid.to_string());
        let bytes = serde_json::to_vec_pretty(&next).map_err(io_err)?;
        crate::fs::write_atomic(&self.names_file, &bytes, true)?;
        *names = next;
        Ok(())
    }

    /// Every name with what it points at.
    pub async fn list(&self, store: &Store) -> Result<Vec<Listed>> {
        let names = self.names.lock().unwrap().clone();
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

    /// Whether some name on this node points to `function_cid` (it was deployed here).
    pub fn is_named_here(&self, function_cid: &str) -> bool {
        self.names
            .lock()
            .unwrap()
            .values()
            .any(|c| c == function_cid)
    }

    /// A name's current function CID, or the CID itself.
    pub fn resolve(&self, function: &str) -> Result<String> {
        if let Some(c) = self.names.lock().unwrap().get(function) {
            return Ok(c.clone());
        }
        match parse_cid(function) {
            Ok(c) => Ok(c.to_string()),
            Err(_) => Err(Error::UnknownFunction(function.to_string())),
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
