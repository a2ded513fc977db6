//! Deploying: a bundle or a manifest → the executor's build → a definition in the registry.

use crate::error::{Error, Result, io_err};
use crate::executor::docker::DockerDef;
use crate::invoke::Functions;
use crate::pypkg;
use crate::registry::bundle::check_name;
use crate::registry::manifest::DockerSpec;
use crate::registry::{Bundle, Def, Manifest, Spec};
use serde::Serialize;
use std::time::Instant;

/// What a deploy made.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// The name it is deployed under.
    pub name: String,
    /// The function CID the name now points at.
    pub function_cid: String,
    /// Python: the component's CID (empty for Docker).
    pub component_cid: String,
    /// Python: the bundle's CID (empty for Docker).
    pub bundle_cid: String,
    /// How long the deploy took.
    pub build_ms: u64,
    /// The component came from an earlier identical build.
    pub reused_build: bool,
    /// The limits it runs with.
    pub limits: serde_json::Value,
    /// Python: the wheels its requirements resolved to, with where each came from (what
    /// `ipfaas deploy --lock` writes as `requirements.lock`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lock: Vec<pypkg::lock::Locked>,
    /// Python with requirements: what installing them took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirements: Option<RequirementsReport>,
}

/// What installing a function's requirements took.
#[derive(Debug, Clone, Serialize)]
pub struct RequirementsReport {
    /// Wheels installed.
    pub wheels: usize,
    /// Milliseconds resolving (0 when a lock or an earlier resolution was used).
    pub resolve_ms: u64,
    /// Milliseconds fetching the chosen wheels after resolving (from the cache, the bundle or
    /// the network); wheels fetched while resolving count in `resolve_ms`.
    pub download_ms: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// `requirements.lock`, `earlier` (the same requirements resolved before on this node) or
    /// `resolved`.
    pub source: &'static str,
    /// Whether the package index was contacted.
    pub networked: bool,
}

impl Functions {
    /// Deploys a bundle under `name` (or the name in its `ipfaas.toml`), as a new version made
    /// by `by` (see [`crate::registry::names::token_id`]). `upgrade` resolves its requirements
    /// again, ignoring a `requirements.lock` and earlier resolutions.
    pub async fn deploy(
        &self,
        name: Option<String>,
        bundle: Bundle,
        by: Option<&str>,
        upgrade: bool,
    ) -> Result<Deployed> {
        let manifest = bundle.manifest()?;
        let limits = match manifest.spec {
            Spec::Docker(spec) => {
                return self.deploy_docker(name.or(manifest.name), spec, by).await;
            }
            Spec::Python(limits) => limits,
        };
        let t = Instant::now();
        let name = named(name.or(manifest.name), "set `name` in ipfaas.toml")?;
        if !bundle.files.contains_key("function.py") {
            return Err(Error::InvalidInput(
                "the bundle has no function.py at its top level".into(),
            ));
        }
        let requirements = pypkg::Request::from_bundle(&bundle.files, upgrade)?;
        let from_lock = matches!(requirements, pypkg::Request::Lock(..));
        let inner = &self.inner;
        let _no_purge = inner.lifecycle.read().await;
        let built = inner
            .wasm
            .build(&inner.store, bundle.files, requirements, upgrade, limits)
            .await?;
        let ins = &built.installed;
        let report = (!ins.wheels.is_empty()).then_some(RequirementsReport {
            wheels: ins.wheels.len(),
            resolve_ms: ins.resolve.as_millis() as u64,
            download_ms: ins.download.as_millis() as u64,
            downloaded_bytes: ins.downloaded_bytes,
            source: if from_lock {
                "requirements.lock"
            } else if ins.reused_resolution {
                "earlier"
            } else {
                "resolved"
            },
            networked: ins.networked,
        });
        let lock = ins.lock.wheels.clone();
        let (component_cid, bundle_cid) = (built.def.component.clone(), built.def.bundle.clone());
        let function_cid = inner
            .registry
            .register(&inner.store, &name, Def::Python(built.def), by)
            .await?;
        Ok(Deployed {
            name,
            function_cid,
            component_cid,
            bundle_cid,
            build_ms: t.elapsed().as_millis() as u64,
            reused_build: built.reused,
            limits: serde_json::to_value(limits).map_err(io_err)?,
            lock,
            requirements: report,
        })
    }

    /// Deploys a Docker function from a JSON manifest (`POST /v1/functions`).
    pub async fn deploy_manifest(
        &self,
        name: Option<String>,
        manifest: serde_json::Value,
        by: Option<&str>,
    ) -> Result<Deployed> {
        if manifest.get("kind").is_none() {
            return Err(Error::InvalidInput(
                "manifest: a JSON manifest deploys a Docker function: set \"kind\": \"docker\" (a Python function is deployed as a bundle)".into(),
            ));
        }
        let m = Manifest::from_json(manifest)?;
        match m.spec {
            Spec::Docker(spec) => self.deploy_docker(name.or(m.name), spec, by).await,
            Spec::Python(_) => Err(Error::InvalidInput(
                "a JSON manifest deploys a Docker function (\"kind\": \"docker\"); a Python function is deployed as a bundle".into(),
            )),
        }
    }

    /// Pins the image by ID and registers the definition.
    async fn deploy_docker(
        &self,
        name: Option<String>,
        spec: DockerSpec,
        by: Option<&str>,
    ) -> Result<Deployed> {
        let t = Instant::now();
        let name = named(name, "set `name`")?;
        let image_id = self.docker()?.resolve_image(&spec.image).await?;
        let def = DockerDef {
            ipfaas: 1,
            kind: "docker".into(),
            image: spec.image,
            image_id,
            entrypoint: spec.entrypoint,
            cmd: spec.cmd,
            env: spec.env,
            workdir: spec.workdir,
            limits: spec.limits,
            user: spec.user,
            secrets: spec.secrets,
        };
        // what any node checks when it reads a definition, checked before one is written
        def.check()
            .map_err(|e| Error::InvalidInput(format!("docker function: {e}")))?;
        let limits = serde_json::to_value(def.limits).map_err(io_err)?;
        let inner = &self.inner;
        let _no_purge = inner.lifecycle.read().await;
        let function_cid = inner
            .registry
            .register(&inner.store, &name, Def::Docker(def), by)
            .await?;
        Ok(Deployed {
            name,
            function_cid,
            component_cid: String::new(),
            bundle_cid: String::new(),
            build_ms: t.elapsed().as_millis() as u64,
            reused_build: false,
            limits,
            lock: Vec::new(),
            requirements: None,
        })
    }
}

/// The name to deploy under, checked.
fn named(name: Option<String>, hint: &str) -> Result<String> {
    let name = name.ok_or_else(|| {
        Error::InvalidInput(format!("the function needs a name: pass ?name= or {hint}"))
    })?;
    check_name(&name)?;
    Ok(name)
}
