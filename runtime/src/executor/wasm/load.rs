//! Making a Python function runnable here: its build directories on disk (the bundle, its
//! unpacked wheels and the guest wrapper, mounted read-only into every instance) and the
//! component's native code, compiled by this node.
//!
//! At deploy ([`WasmExec::build`]) both come from a build on this node. A function deployed on
//! another node ([`WasmExec::load`]) has its directories exported from the store, and its
//! component compiled here: native code is only ever produced by this engine, under a name it
//! makes from the parsed component CID and its own settings.

use super::build::{self, BuildDirs, wheels};
use super::{Limits, Loaded, PythonDef, WasmExec};
use crate::error::{Result, io_err, parse_cid};
use crate::pypkg;
use crate::store::Store;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Most bytes a peer's function may bring: its component, and each of its bundle and site
/// trees when they are written to a build directory here.
pub(crate) const MAX_BUILD_TREE: u64 = 1 << 30;

/// Names the wrapper and toolchain that build components; part of every definition.
pub fn builder_tag() -> String {
    let mut h = Sha256::new();
    h.update(b"componentize-py 0.25.1\0wasmtime 46\0");
    h.update(super::WIT);
    h.update(super::GUEST_PY);
    hex(&h.finalize()[..8])
}

/// Names the local build directory of (builder, bundle, wheels): one build per triple.
fn build_key(builder: &str, bundle: &str, site: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("{builder}\0{bundle}\0{site}"));
    hex(&h.finalize()[..16])
}

/// Lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a build made.
pub struct Built {
    /// The definition to register.
    pub def: PythonDef,
    /// The component came from an earlier identical build.
    pub reused: bool,
    /// What installing its requirements did.
    pub installed: pypkg::Installed,
}

impl WasmExec {
    /// Deploy time: stores the bundle `files` and their `requirements`, installed and unpacked
    /// (`upgrade` resolves again rather than reuse a lock or an earlier resolution), then
    /// builds the component once per (bundle, wheels, builder) and compiles it to native code.
    pub async fn build(
        &self,
        store: &Store,
        files: BTreeMap<String, Bytes>,
        requirements: pypkg::Request,
        upgrade: bool,
        limits: Limits,
    ) -> Result<Built> {
        let inner = &self.inner;
        // 1. the bundle itself
        let bundle_files = files.clone();
        let bundle_cid = store
            .add_tree("bundle", move |a| {
                for (path, data) in &bundle_files {
                    a.bytes(&format!("bundle/{path}"), data)?;
                }
                Ok(())
            })
            .await?;

        // 2. its requirements, unpacked
        let tmp = tempfile::tempdir_in(inner.outputs.tmp())?;
        let site = tmp.path().join("site");
        std::fs::create_dir_all(&site)?;
        let installed = inner
            .packages
            .install(
                &requirements,
                Arc::new(files.clone()),
                &tmp.path().join("wheels"),
                upgrade,
            )
            .await?;
        let stage = |s: &str| inner.metrics.build.with_label_values(&[s]);
        if !installed.wheels.is_empty() {
            if !installed.reused_resolution && installed.resolve > std::time::Duration::ZERO {
                stage("resolve").observe(installed.resolve.as_secs_f64());
            }
            stage("download").observe(installed.download.as_secs_f64());
            let (site, wheels) = (site.clone(), installed.wheels.clone());
            tokio::task::spawn_blocking(move || -> Result<()> {
                let mut budget = wheels::Budget::new(MAX_BUILD_TREE);
                for wheel in wheels {
                    wheels::unpack(&wheel, &site, &mut budget)?;
                }
                Ok(())
            })
            .await
            .map_err(io_err)??;
        }
        let site_dir = site.clone();
        let site_cid = store
            .add_tree("site", move |a| {
                a.dir("site")?;
                a.local(&site_dir, "site", true, true, &mut |_, _| {})
            })
            .await?;

        // 3. the component: built once per (bundle, site, builder)
        let tag = builder_tag();
        let key = build_key(&tag, &bundle_cid, &site_cid);
        let build_dir = inner.dir.join("builds").join(&key);
        // one build per directory at a time: a second deploy of the same bundle waits for the
        // first and reuses its build. Both guards go with the build thread, so a deploy whose
        // caller hangs up still holds them until its build has ended.
        let key_guard = inner.build_keys.lock(&key).await;
        let earlier = match std::fs::read_to_string(build_dir.join("component.cid")) {
            // a purged function's component is no longer pinned (and may be collected), or
            // pinned again by a rollback that could not fetch it: build again rather than
            // register a component this node does not hold whole
            Ok(c) => match parse_cid(c.trim()) {
                Ok(cid)
                    if store.is_pinned(&cid)
                        && store
                            .local_only()
                            .read_through(cid, MAX_BUILD_TREE)
                            .await
                            .is_ok() =>
                {
                    Some(cid.to_string())
                }
                _ => None,
            },
            Err(_) => None,
        };
        let (component, reused) = match earlier {
            Some(c) => (c, true),
            None => {
                let permit = inner.builds.clone().acquire_owned().await.map_err(io_err)?;
                let staging = tmp.path().join("build");
                let dirs = BuildDirs {
                    support: staging.join("support"),
                    bundle: staging.join("bundle"),
                    site: staging.join("site"),
                };
                {
                    let (support, bundle, files) =
                        (dirs.support.clone(), dirs.bundle.clone(), files.clone());
                    let (site, site_dir) = (site.clone(), dirs.site.clone());
                    // up to a whole bundle's bytes: off the async workers
                    tokio::task::spawn_blocking(move || -> Result<()> {
                        build::write_support(&support)?;
                        write_files(&bundle, &files)?;
                        Ok(std::fs::rename(&site, &site_dir)?)
                    })
                    .await
                    .map_err(io_err)??;
                }
                let out = staging.join("component.wasm");
                let tb = Instant::now();
                let (_key_guard, permit) =
                    run_build(&dirs, &out, limits, (key_guard, permit)).await?;
                drop(permit);
                stage("component").observe(tb.elapsed().as_secs_f64());
                let component = Bytes::from(tokio::fs::read(&out).await?);
                tokio::fs::remove_file(&out).await?;
                let component_cid = store.add_bytes(component.clone()).await?;
                self.compile(&component_cid, component).await?;
                std::fs::write(staging.join("component.cid"), &component_cid)?;
                let _ = std::fs::remove_dir_all(&build_dir);
                std::fs::rename(&staging, &build_dir)?;
                (component_cid, false)
            }
        };
        let def = PythonDef {
            ipfaas: 1,
            kind: "python".into(),
            bundle: bundle_cid,
            site: site_cid,
            component,
            limits,
            builder: tag,
            lock: installed.lock.without_urls(),
        };
        Ok(Built {
            def,
            reused,
            installed,
        })
    }

    /// Makes the component runnable here: build directories on disk, native code compiled.
    pub async fn load(&self, store: &Store, def: &PythonDef) -> Result<Arc<Loaded>> {
        let inner = &self.inner;
        if let Some(l) = inner.engine.loaded(&def.component) {
            return Ok(l);
        }
        let key = build_key(&def.builder, &def.bundle, &def.site);
        let build_dir = inner.dir.join("builds").join(&key);
        // the first of many concurrent first invocations exports and compiles; the others wait
        // for it and find its work done
        let _key_guard = inner.build_keys.lock(&key).await;
        // loaded meanwhile by the invocation this one waited for
        if let Some(l) = inner.engine.loaded(&def.component) {
            return Ok(l);
        }
        if !build_dir.join("component.cid").is_file() {
            // a function deployed elsewhere: materialise its directories from the store
            let tmp = tempfile::tempdir_in(inner.outputs.tmp())?;
            build::write_support(&tmp.path().join("support"))?;
            for (cid, dir) in [(&def.bundle, "bundle"), (&def.site, "site")] {
                store
                    .export_tree(parse_cid(cid)?, &tmp.path().join(dir), MAX_BUILD_TREE)
                    .await?;
            }
            std::fs::write(tmp.path().join("component.cid"), &def.component)?;
            let staged = tmp.keep();
            let _ = std::fs::remove_dir_all(&build_dir);
            if let Err(e) = std::fs::rename(&staged, &build_dir) {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(e.into());
            }
        }
        if !inner.engine.is_cached(&def.component) {
            let bytes = store
                .read_all(parse_cid(&def.component)?, MAX_BUILD_TREE)
                .await?;
            self.compile(&def.component, bytes).await?;
        }
        let mounts = vec![
            build_dir.join("support"),
            build_dir.join("bundle"),
            build_dir.join("site"),
        ];
        inner.engine.load(&def.component, mounts)
    }

    /// Compiles a component to native code once: concurrent callers for the same component
    /// wait for the first, whose file they then find (written whole before it is named).
    async fn compile(&self, component_cid: &str, component: Bytes) -> Result<()> {
        let _one = self.inner.compiles.lock(component_cid).await;
        if self.inner.engine.is_cached(component_cid) {
            return Ok(());
        }
        let (this, cid) = (self.clone(), component_cid.to_string());
        tokio::task::spawn_blocking(move || {
            this.inner.metrics.compiles.inc();
            this.inner.engine.precompile(&cid, &component)
        })
        .await
        .map_err(io_err)??;
        Ok(())
    }
}

/// The build runs on its own thread: componentize-py's future is heavy and not `Send`.
/// `held` (the build's locks) goes with the thread and comes back when it ends.
async fn run_build<G: Send + 'static>(
    dirs: &BuildDirs,
    out: &Path,
    limits: super::Limits,
    held: G,
) -> Result<G> {
    let dirs = BuildDirs {
        support: dirs.support.clone(),
        bundle: dirs.bundle.clone(),
        site: dirs.site.clone(),
    };
    let out = out.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("component-build".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let r = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(crate::Error::from)
                .and_then(|rt| rt.block_on(build::build(&dirs, &out, limits)));
            // unsent (the deploy was dropped): the locks are released here, the build over
            let _ = tx.send(r.map(|()| held));
        })?;
    rx.await.map_err(|_| io_err("the build thread died"))?
}

/// Writes a bundle's files under `dir` (the paths were checked when the bundle was read).
fn write_files(dir: &Path, files: &BTreeMap<String, Bytes>) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for (path, data) in files {
        let dest: PathBuf = path.split('/').fold(dir.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, data)?;
    }
    Ok(())
}
