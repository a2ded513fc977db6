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
//! its loaded code. A purge deletes the native code compiled from components nobody else uses;
//! the build directories stay (instances made ahead of requests may still read them), and a
//! later deploy of the same bundle builds again, since its component is no longer pinned.

use crate::error::{Error, Result, parse_cid};
use crate::executor::wasm::load::MAX_BUILD_TREE;
use crate::invoke::Functions;
use crate::registry::bundle::check_name;
use crate::registry::{Def, Version};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

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
    /// What could not be unpinned or deleted, with why (purge only; the name is gone).
    pub failed: Vec<String>,
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
    /// fetched if need be (every block), pinned, and for Python made runnable here before the
    /// name moves, so a version that cannot run is refused rather than pointed at. Without a
    /// CID it steps back one version (see [`crate::registry::names::Names::previous`]).
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
            None => inner.registry.previous(name).ok_or_else(|| {
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
        // pinned first, so the blocks fetched below are kept from then on. A rollback that
        // fails after this leaves its pins (`pin rm` drops them): undoing them could unpin
        // what a concurrent deploy of the same artifacts has just counted on.
        inner.store.sync_and_pin(pins.clone()).await?;
        // every block of it here (or fetched now), not only what local caches remember
        for c in &pins {
            inner.store.read_through(*c, MAX_BUILD_TREE).await?;
        }
        match &*def {
            Def::Python(p) => drop(inner.wasm.load(&inner.store, p).await?),
            // a peer's Docker function becomes one "deployed here": checked as a deploy is
            Def::Docker(d) => d
                .check()
                .map_err(|e| Error::InvalidInput(format!("docker function: {e}")))?,
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
    /// version uses. A purge first works out what the other names use, and refuses (changing
    /// nothing) when one of their definitions cannot be read here: it cannot tell what that
    /// one needs. Unpinning is then best effort: what could not be unpinned is reported.
    pub async fn remove(&self, name: &str, purge: bool) -> Result<Removed> {
        let inner = &self.inner;
        if !purge {
            let held = inner
                .registry
                .remove(name)?
                .ok_or_else(|| Error::UnknownFunction(name.to_string()))?;
            return Ok(Removed {
                name: name.to_string(),
                function_cids: held,
                purged: false,
                unpinned: vec![],
                kept: vec![],
                failed: vec![],
            });
        }
        // alone: no deploy or rollback is between pinning and registering
        let _alone = inner.lifecycle.write().await;
        let held: Vec<String> = inner
            .registry
            .versions(name)
            .ok_or_else(|| Error::UnknownFunction(name.to_string()))?
            .into_iter()
            .map(|v| v.function_cid)
            .fold(vec![], |mut acc, c| {
                if !acc.contains(&c) {
                    acc.push(c);
                }
                acc
            });
        // what the other names use, from definitions held here
        let local = inner.store.local_only();
        let mut keep: HashSet<String> = HashSet::new();
        for f in inner.registry.referenced(Some(name)) {
            let d = inner.registry.definition(&local, &f).await.map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot purge {name:?}: the definition {f} of another function cannot be read here ({e}), so what it uses is unknown; remove without purge"
                ))
            })?;
            keep.extend(artifacts(&d));
            keep.insert(f);
        }
        let mut plan: Vec<(String, Option<Arc<Def>>)> = vec![];
        for f in &held {
            plan.push((f.clone(), inner.registry.definition(&local, f).await.ok()));
        }
        inner.registry.remove(name)?;
        let mut out = Removed {
            name: name.to_string(),
            function_cids: held,
            purged: true,
            unpinned: vec![],
            kept: vec![],
            failed: vec![],
        };
        let mut seen = HashSet::new();
        for (f, def) in plan {
            let mut cids = vec![f.clone()];
            if let Some(d) = &def {
                cids.extend(artifacts(d));
                // the native code compiled from a component nobody else uses goes now
                if let Def::Python(p) = &**d
                    && !keep.contains(&p.component)
                    && let Err(e) = inner.wasm.forget(&p.component)
                {
                    out.failed.push(format!("{}: {e}", p.component));
                }
            }
            if !keep.contains(&f) {
                inner.registry.forget(&f);
            }
            for c in cids {
                if !seen.insert(c.clone()) {
                    continue;
                }
                if keep.contains(&c) {
                    out.kept.push(c);
                    continue;
                }
                let unpinned = match parse_cid(&c) {
                    Ok(cid) => inner.store.unpin(&cid).await,
                    Err(e) => Err(e),
                };
                match unpinned {
                    Ok(true) => out.unpinned.push(c),
                    Ok(false) => {}
                    Err(e) => out.failed.push(format!("{c}: {e}")),
                }
            }
        }
        Ok(out)
    }
}
