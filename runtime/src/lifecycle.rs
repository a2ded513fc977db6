//! A function's life after its first deploy: its versions, pointing its name back at one
//! (rollback), and removing it.
//!
//! Every deploy pins what it made (definition, bundle, unpacked wheels, component) and a name
//! remembers each function CID it pointed at, so any version can be pointed at again without a
//! rebuild. Removing a name forgets it and its versions; with `purge`, the pins of everything
//! only those versions used are dropped too, and the garbage collector frees the blocks later.
//! What another name (or another version of one) still uses stays pinned.
//!
//! Invocations already running when a function is removed finish: they hold its definition and
//! its loaded code. The local build caches (build directories, compiled code) are kept; a later
//! deploy of the same bundle builds again, since its component is no longer pinned.

use crate::error::{Error, Result, parse_cid};
use crate::invoke::Functions;
use crate::registry::bundle::check_name;
use crate::registry::{Def, Version};
use serde::Serialize;
use std::collections::HashSet;

/// What pointing a name at a version did.
#[derive(Debug, Clone, Serialize)]
pub struct Pointed {
    /// The name.
    pub name: String,
    /// The function CID it points at now.
    pub function_cid: String,
    /// The one it pointed at before (empty for a new name).
    pub previous_function_cid: String,
    /// `false` when it already pointed there (nothing recorded).
    pub changed: bool,
}

/// What a removal did.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The name removed.
    pub name: String,
    /// Every function CID it pointed at (its versions), newest first.
    pub function_cids: Vec<String>,
    /// Whether the artifacts were unpinned.
    pub purged: bool,
    /// What was unpinned (purge only): definitions, bundles, wheels, components.
    pub unpinned: Vec<String>,
    /// Artifacts kept pinned because another name or version still uses them (purge only).
    pub kept: Vec<String>,
}

/// The CIDs a definition refers to (besides its own).
fn artifacts(def: &Def) -> Vec<String> {
    match def {
        Def::Python(p) => vec![p.bundle.clone(), p.site.clone(), p.component.clone()],
        // the image lives in Docker, not in the store
        Def::Docker(_) => vec![],
    }
}

impl Functions {
    /// `name`'s versions, newest first (the first is the current one).
    pub fn versions(&self, name: &str) -> Result<Vec<Version>> {
        self.inner
            .registry
            .versions(name)
            .ok_or_else(|| Error::UnknownFunction(name.to_string()))
    }

    /// Points `name` at `function_cid` (one of its versions, or any function, a peer's
    /// included; a new name is created), or with `None` at the version before the current one. The function is
    /// fetched if need be, pinned, and for Python made runnable here before the name moves,
    /// so a version that cannot run is refused rather than pointed at.
    pub async fn rollback(
        &self,
        name: &str,
        function_cid: Option<&str>,
        by: Option<&str>,
    ) -> Result<Pointed> {
        let inner = &self.inner;
        // a new name may be given a function CID (a peer's function, say)
        let versions = match (inner.registry.versions(name), function_cid) {
            (Some(v), _) => v,
            (None, Some(_)) => {
                check_name(name)?;
                vec![]
            }
            (None, None) => return Err(Error::UnknownFunction(name.to_string())),
        };
        let previous = versions
            .first()
            .map(|v| v.function_cid.clone())
            .unwrap_or_default();
        let target = match function_cid {
            Some(c) => parse_cid(c)?.to_string(),
            None => versions
                .iter()
                .map(|v| &v.function_cid)
                .find(|c| **c != previous)
                .cloned()
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "{name:?} has no earlier version to roll back to: give a function CID"
                    ))
                })?,
        };
        // a purge waits until the name points at what is pinned here
        let _no_purge = inner.lifecycle.read().await;
        let def = self.definition(&target).await?;
        let mut pins = vec![parse_cid(&target)?];
        for a in artifacts(&def) {
            pins.push(parse_cid(&a)?);
        }
        // pinned first, so blocks fetched below are kept from then on; undone if it fails
        let newly: Vec<_> = pins
            .into_iter()
            .filter(|c| !inner.store.is_pinned(c))
            .collect();
        inner.store.sync_and_pin(newly.clone()).await?;
        let ready = match &*def {
            Def::Python(p) => inner.wasm.load(&inner.store, p).await.map(drop),
            // a peer's Docker function becomes one "deployed here": checked as a deploy is
            Def::Docker(d) => d
                .check()
                .map_err(|e| Error::InvalidInput(format!("docker function: {e}"))),
        };
        if let Err(e) = ready {
            for c in &newly {
                let _ = inner.store.unpin(c).await;
            }
            return Err(e);
        }
        let how = if versions.iter().any(|v| v.function_cid == target) {
            "rollback"
        } else {
            "point"
        };
        let changed = inner.registry.point(name, &target, how, by)?;
        Ok(Pointed {
            name: name.to_string(),
            function_cid: target,
            previous_function_cid: previous,
            changed,
        })
    }

    /// Removes `name` and its versions; with `purge`, unpins the artifacts no other name or
    /// version uses.
    pub async fn remove(&self, name: &str, purge: bool) -> Result<Removed> {
        let inner = &self.inner;
        // alone: no deploy or rollback is between pinning and registering
        let _alone = inner.lifecycle.write().await;
        let held = inner
            .registry
            .remove(name)?
            .ok_or_else(|| Error::UnknownFunction(name.to_string()))?;
        let mut out = Removed {
            name: name.to_string(),
            function_cids: held.clone(),
            purged: purge,
            unpinned: vec![],
            kept: vec![],
        };
        if !purge {
            return Ok(out);
        }
        // only what is here counts: a definition not held here pins nothing here
        let local = inner.store.local_only();
        let mut keep: HashSet<String> = HashSet::new();
        for f in inner.registry.referenced() {
            if let Ok(d) = inner.registry.definition(&local, &f).await {
                keep.extend(artifacts(&d));
            }
            keep.insert(f);
        }
        let mut seen = HashSet::new();
        for f in &held {
            let mut cids = vec![f.clone()];
            if let Ok(d) = inner.registry.definition(&local, f).await {
                cids.extend(artifacts(&d));
            }
            for c in cids {
                if !seen.insert(c.clone()) {
                    continue;
                }
                if keep.contains(&c) {
                    out.kept.push(c);
                } else if inner.store.unpin(&parse_cid(&c)?).await? {
                    out.unpinned.push(c);
                }
            }
        }
        Ok(out)
    }
}
