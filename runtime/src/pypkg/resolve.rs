//! Resolution: the `pubgrub` solver over the sources' files for the guest's environment.
//!
//! Packages are project names; `name[extra]` is a package of its own that depends on `name` at
//! the same version plus the extra's requirements (the usual PubGrub encoding of extras).
//! Versions are PEP 440 versions and sets are `Ranges` built from PEP 440 specifiers by
//! `pep440_rs`. The solver is synchronous; it runs on a blocking thread and waits for the
//! fetcher, which is asked ahead for every dependency as soon as it is seen, so pages and
//! metadata arrive concurrently.

use super::fetch::Fetcher;
use super::index::Dist;
use super::reqfile::ReqFile;
use super::target;
use pep508_rs::pep440_rs::Version;
use pep508_rs::{ExtraName, Requirement, VersionOrUrl};
use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyConstraints, DependencyProvider,
    PackageResolutionStatistics, PubGrubError, Ranges, Reporter,
};
use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest a resolution may take.
const MAX_TIME: Duration = Duration::from_secs(300);
/// Most projects one resolution may involve.
const MAX_PROJECTS: usize = 1000;
/// Fetches asked ahead at once.
const PREFETCH: usize = 16;

/// A package to the solver.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pkg {
    /// The requirements file.
    Root,
    /// A project.
    Name(String),
    /// A project with one extra.
    Extra(String, String),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => write!(f, "requirements.txt"),
            Pkg::Name(n) => write!(f, "{n}"),
            Pkg::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}

type Vs = Ranges<Version>;

/// Why resolution stopped early.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stop(pub String);

/// The solver's view of the sources.
pub struct Provider {
    rt: tokio::runtime::Handle,
    fetch: Arc<Fetcher>,
    roots: Vec<Requirement>,
    constraints: HashMap<String, Vs>,
    pre: bool,
    started: Instant,
    /// First requirer of each project: (who, what they asked for).
    parent: Mutex<HashMap<String, (Pkg, String)>>,
    /// Projects some specifier of which names a pre-release: those may be chosen (PEP 440).
    pre_named: Mutex<std::collections::HashSet<String>>,
    /// Discovery order, for the solver's tie-break (breadth first).
    order: Mutex<HashMap<Pkg, usize>>,
    /// Fetches asked ahead that may run at once.
    ahead: Arc<tokio::sync::Semaphore>,
    /// Fetches asked ahead, stopped when the resolution ends.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().unwrap().drain(..) {
            t.abort();
        }
    }
}

fn ranges_of(r: &Requirement) -> Vs {
    match &r.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(s)) => Vs::from(s.clone()),
        _ => Vs::full(),
    }
}

fn spec_of(r: &Requirement) -> String {
    match &r.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(s)) => format!("{}{s}", r.name),
        _ => r.name.to_string(),
    }
}

impl Provider {
    /// A provider for the requirements of `file`, fetching through `fetch`.
    pub fn new(rt: tokio::runtime::Handle, fetch: Arc<Fetcher>, file: &ReqFile) -> Self {
        let mut constraints: HashMap<String, Vs> = HashMap::new();
        for c in &file.constraints {
            if !c.req.marker.evaluate(target::environment(), &[]) {
                continue;
            }
            let e = constraints
                .entry(c.req.name.to_string())
                .or_insert_with(Vs::full);
            *e = e.intersection(&ranges_of(&c.req));
        }
        Self {
            rt,
            fetch,
            roots: file.requirements.iter().map(|r| r.req.clone()).collect(),
            constraints,
            pre: file.pre,
            started: Instant::now(),
            parent: Default::default(),
            pre_named: Default::default(),
            order: Default::default(),
            ahead: Arc::new(tokio::sync::Semaphore::new(PREFETCH)),
            tasks: Default::default(),
        }
    }

    fn listing(&self, name: &str) -> Result<Arc<super::fetch::Listing>, Stop> {
        self.rt.block_on(self.fetch.listing(name)).map_err(Stop)
    }

    /// The file chosen for `name` at `v`.
    fn dist(&self, name: &str, v: &Version) -> Result<Dist, Stop> {
        let l = self.listing(name)?;
        l.usable
            .iter()
            .find(|d| &d.version == v)
            .cloned()
            .ok_or_else(|| Stop(format!("{name} {v}: no longer listed")))
    }

    /// The highest version in `range` the rules allow: no pre-releases unless `--pre` or
    /// nothing else matches (PEP 440), no yanked file unless pinned exactly (PEP 592).
    fn best(&self, name: &str, listing: &super::fetch::Listing, range: &Vs) -> Option<Version> {
        let exact = range.as_singleton().is_some();
        let ok = |d: &&Dist| range.contains(&d.version) && (!d.yanked || exact);
        let mut all = listing.usable.iter().filter(ok);
        if self.pre || self.pre_named.lock().unwrap().contains(name) {
            return all.next().map(|d| d.version.clone());
        }
        let firsts: Vec<&Dist> = all.collect();
        firsts
            .iter()
            .find(|d| !d.version.any_prerelease())
            .or(firsts.first())
            .map(|d| d.version.clone())
    }

    /// Asks the fetcher ahead for `name`'s listing and the metadata of its likely version.
    fn prefetch(&self, name: String, range: Vs) {
        let fetch = self.fetch.clone();
        let pre = self.pre;
        let ahead = self.ahead.clone();
        let task = self.rt.spawn(async move {
            let Ok(_permit) = ahead.acquire_owned().await else {
                return;
            };
            let Ok(l) = fetch.listing(&name).await else {
                return;
            };
            let d = l
                .usable
                .iter()
                .filter(|d| range.contains(&d.version) && !d.yanked)
                .find(|d| pre || !d.version.any_prerelease());
            if let Some(d) = d {
                let _ = fetch.metadata(d).await;
            }
        });
        self.tasks.lock().unwrap().push(task.abort_handle());
    }

    fn note(&self, p: &Pkg) {
        let mut o = self.order.lock().unwrap();
        let n = o.len();
        o.entry(p.clone()).or_insert(n);
    }

    /// The solver's constraints for `reqs` as seen from `from`.
    fn constraints_of(
        &self,
        from: &Pkg,
        reqs: &[Requirement],
        extras: &[ExtraName],
    ) -> Result<HashMap<Pkg, Vs>, Stop> {
        let env = target::environment();
        let mut out: HashMap<Pkg, Vs> = HashMap::new();
        let own = match from {
            Pkg::Name(n) | Pkg::Extra(n, _) => Some(n.as_str()),
            Pkg::Root => None,
        };
        for r in reqs {
            if !r.marker.evaluate(env, extras) {
                continue;
            }
            let name = r.name.to_string();
            match &r.version_or_url {
                Some(VersionOrUrl::Url(u)) => {
                    return Err(Stop(format!(
                        "{from} requires {name} @ {u}: direct references are not supported"
                    )));
                }
                Some(VersionOrUrl::VersionSpecifier(s)) if s.iter().any(|v| v.any_prerelease()) => {
                    self.pre_named.lock().unwrap().insert(name.clone());
                }
                _ => {}
            }
            let mut range = ranges_of(r);
            if let Some(c) = self.constraints.get(&name) {
                range = range.intersection(c);
            }
            if let Some(h) = &self.fetch.hashes
                && !h.contains_key(&name)
            {
                return Err(Stop(format!(
                    "requirements.txt: hash-checking mode: {name} (required by {from}) has no --hash; every distribution needs one (list it with its version and hash, as `pip-compile --generate-hashes` does)"
                )));
            }
            let mut targets = Vec::new();
            if own != Some(name.as_str()) || !matches!(from, Pkg::Name(_)) {
                targets.push(Pkg::Name(name.clone()));
            }
            for e in &r.extras {
                targets.push(Pkg::Extra(name.clone(), e.to_string()));
            }
            for t in targets {
                if own == Some(name.as_str()) && t == *from {
                    continue;
                }
                let e = out.entry(t.clone()).or_insert_with(Vs::full);
                *e = e.intersection(&range);
                self.note(&t);
            }
            let mut parents = self.parent.lock().unwrap();
            if !parents.contains_key(&name) {
                if parents.len() >= MAX_PROJECTS {
                    return Err(Stop(format!(
                        "requirements.txt: resolution involves more than {MAX_PROJECTS} projects"
                    )));
                }
                parents.insert(name.clone(), (from.clone(), spec_of(r)));
                drop(parents);
                self.prefetch(name, range);
            }
        }
        Ok(out)
    }

    /// `name`'s chain of requirers from the file: `pandas>=2 → numpy`.
    pub fn chain(&self, name: &str) -> String {
        let parents = self.parent.lock().unwrap();
        let mut links = vec![name.to_string()];
        let mut cur = name.to_string();
        for _ in 0..64 {
            match parents.get(&cur) {
                Some((Pkg::Root, spec)) => {
                    if links.len() == 1 {
                        links[0] = spec.clone();
                    } else {
                        links.push(spec.clone());
                    }
                    break;
                }
                Some((Pkg::Name(p) | Pkg::Extra(p, _), _)) => {
                    links.push(p.clone());
                    cur = p.clone();
                }
                None => break,
            }
        }
        // the file's spelling of the top requirement replaces its bare name
        if links.len() > 1
            && links
                .last()
                .is_some_and(|l| l.contains(|c: char| "<>=!~".contains(c)))
        {
            let spec = links.pop().unwrap();
            links.pop();
            links.push(spec);
        }
        links.reverse();
        links.join(" → ")
    }
}

impl DependencyProvider for Provider {
    type P = Pkg;
    type V = Version;
    type VS = Vs;
    type M = String;
    type Err = Stop;
    type Priority = (u32, Reverse<usize>);

    fn prioritize(&self, p: &Pkg, _r: &Vs, stats: &PackageResolutionStatistics) -> Self::Priority {
        let order = self
            .order
            .lock()
            .unwrap()
            .get(p)
            .copied()
            .unwrap_or(usize::MAX);
        (stats.conflict_count(), Reverse(order))
    }

    fn choose_version(&self, p: &Pkg, range: &Vs) -> Result<Option<Version>, Stop> {
        match p {
            Pkg::Root => Ok(Some(Version::new([0]))),
            Pkg::Name(n) | Pkg::Extra(n, _) => {
                let l = self.listing(n)?;
                Ok(self.best(n, &l, range))
            }
        }
    }

    fn get_dependencies(
        &self,
        p: &Pkg,
        v: &Version,
    ) -> Result<Dependencies<Pkg, Vs, String>, Stop> {
        let (name, extra) = match p {
            Pkg::Root => {
                return self
                    .constraints_of(p, &self.roots, &[])
                    .map(|d| Dependencies::Available(d.into_iter().collect()));
            }
            Pkg::Name(n) => (n, None),
            Pkg::Extra(n, e) => (n, Some(e)),
        };
        let dist = self.dist(name, v)?;
        let meta = match self.rt.block_on(self.fetch.metadata(&dist)) {
            Ok(m) => m,
            Err(e) => return Ok(Dependencies::Unavailable(format!("its metadata: {e}"))),
        };
        if !target::python_ok(meta.requires_python.as_deref()) {
            return Ok(Dependencies::Unavailable(format!(
                "it requires Python {}",
                meta.requires_python.as_deref().unwrap_or("")
            )));
        }
        let extras: Vec<ExtraName> = extra
            .and_then(|e| ExtraName::from_str(e).ok())
            .into_iter()
            .collect();
        let mut deps = self.constraints_of(p, &meta.requires_dist, &extras)?;
        if extra.is_some() {
            // the extra is its project at the same version, plus the extra's requirements
            deps.insert(Pkg::Name(name.clone()), Vs::singleton(v.clone()));
        }
        Ok(Dependencies::Available(
            deps.into_iter().collect::<DependencyConstraints<Pkg, Vs>>(),
        ))
    }

    fn should_cancel(&self) -> Result<(), Stop> {
        if self.started.elapsed() > MAX_TIME {
            return Err(Stop(format!(
                "requirements.txt: resolution ran past {} s",
                MAX_TIME.as_secs()
            )));
        }
        Ok(())
    }
}

/// Resolves; the chosen project versions and their files.
pub fn solve(p: &Provider) -> Result<Vec<Dist>, String> {
    match pubgrub::resolve(p, Pkg::Root, Version::new([0])) {
        Ok(sol) => {
            let mut out = Vec::new();
            for (pkg, v) in sol {
                if let Pkg::Name(n) = pkg {
                    out.push(p.dist(&n, &v).map_err(|e| e.0)?);
                }
            }
            Ok(out)
        }
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            let hash_mode = p.fetch.hashes.is_some();
            // projects no version of which can be used at all: name them with who asked
            let mut unusable: Vec<String> = tree
                .packages()
                .into_iter()
                .filter_map(|pkg| match pkg {
                    Pkg::Name(n) | Pkg::Extra(n, _) => Some(n.clone()),
                    Pkg::Root => None,
                })
                .filter_map(|n| {
                    let l = p.rt.block_on(p.fetch.listing(&n)).ok()?;
                    let why = l.unusable_reason(hash_mode)?;
                    Some(format!("{}: {why}", p.chain(&n)))
                })
                .collect();
            unusable.sort();
            unusable.dedup();
            if !unusable.is_empty() {
                return Err(unusable.join("\n"));
            }
            Err(format!(
                "requirements.txt cannot be resolved:\n{}",
                DefaultStringReporter::report(&tree)
            ))
        }
        Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorInShouldCancel(source)) => Err(source.0),
    }
}
