//! Python packages for functions: a bundle's `requirements.txt` (or `requirements.lock`)
//! becomes a lock and the wheels it names, resolved and fetched by this node itself — no host
//! Python, no pip.
//!
//! - [`reqfile`] — pip's requirements-file syntax.
//! - [`target`] — the guest (CPython 3.14 on WASI): its marker environment and wheel tags.
//! - [`index`] — package indexes (PEP 691/503), find-links, the bundle's `wheels/`;
//!   [`guard`] — what a bundle's own URLs may reach (public addresses only).
//! - [`metadata`] — core metadata (PEP 658 files, or read from the wheel).
//! - [`fetch`] — one install's shared fetches.
//! - [`resolve`] — the `pubgrub` solver over all of it.
//! - [`lock`] — the lock format; [`cache`] — wheels and metadata by sha256, resolutions by key.
//!
//! Settings come from the node (`ipfaas serve --index-url ...`), then pip's own configuration
//! (`PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_FIND_LINKS`, `PIP_NO_INDEX`, `PIP_CERT`,
//! `pip.conf`), so a node behind a mirror works as pip does there.

pub mod cache;
pub mod fetch;
pub mod guard;
pub mod index;
pub mod lock;
pub mod metadata;
pub mod reqfile;
pub mod resolve;
pub mod target;

use crate::error::{Error, Result};
use bytes::Bytes;
use futures::StreamExt;
use lock::{Lock, Locked};
use reqfile::ReqFile;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The index used when nothing else is configured.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";
/// Longest one deploy may spend resolving and fetching.
pub const MAX_INSTALL: Duration = Duration::from_secs(600);
/// Wheels fetched at once.
const PARALLEL: usize = 8;

/// Where this node gets packages (node flags, then pip's configuration).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The index (default [`DEFAULT_INDEX`]).
    pub index_url: Option<String>,
    /// More indexes.
    pub extra_index_urls: Vec<String>,
    /// Pages (URLs) or directories of this host (a wheelhouse) that list wheels.
    pub find_links: Vec<String>,
    /// Use no index: only find-links and bundles' `wheels/`.
    pub no_index: bool,
    /// The certificate authorities to trust (a PEM bundle), instead of the system's.
    pub cert: Option<PathBuf>,
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn words(v: &str) -> Vec<String> {
    v.split_whitespace().map(str::to_string).collect()
}

impl Settings {
    /// pip's configuration as pip reads it: the config files (`PIP_CONFIG_FILE`, or
    /// `/etc/pip.conf`, `~/.pip/pip.conf`, `~/.config/pip/pip.conf`, later ones winning;
    /// sections `[global]`, then `[install]`/`[download]`), then `PIP_*` variables.
    pub fn from_pip_config() -> Self {
        let mut s = Settings::default();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let files: Vec<PathBuf> = match std::env::var_os("PIP_CONFIG_FILE") {
            Some(f) if f != "os.devnull" && f != "/dev/null" => vec![PathBuf::from(f)],
            Some(_) => vec![],
            None => {
                let mut v = vec![PathBuf::from("/etc/pip.conf")];
                if let Some(h) = &home {
                    v.push(h.join(".pip/pip.conf"));
                    v.push(h.join(".config/pip/pip.conf"));
                }
                v
            }
        };
        for f in files {
            if let Ok(text) = std::fs::read_to_string(&f) {
                for (k, v) in pip_conf(&text) {
                    s.set(&k, &v);
                }
            }
        }
        for (k, v) in std::env::vars() {
            if let Some(k) = k.strip_prefix("PIP_") {
                s.set(&k.to_ascii_lowercase().replace('_', "-"), &v);
            }
        }
        s
    }

    fn set(&mut self, key: &str, v: &str) {
        match key {
            "index-url" | "i" => self.index_url = Some(v.trim().to_string()),
            "extra-index-url" => self.extra_index_urls = words(v),
            "find-links" | "f" => self.find_links = words(v),
            "no-index" => self.no_index = truthy(v),
            "cert" => self.cert = Some(PathBuf::from(v.trim())),
            _ => {}
        }
    }
}

/// `key = value` pairs of the sections pip reads for installs, in order (continuation lines
/// join their key's value). Hand-written: pip.conf uses a small INI subset, and only these
/// keys matter.
fn pip_conf(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut keep = false;
    let mut sections: Vec<(u8, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with(['#', ';']) {
            continue;
        }
        if let Some(sec) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let rank = match sec.trim() {
                "global" => Some(0),
                "install" | "download" => Some(1),
                _ => None,
            };
            keep = rank.is_some();
            if let Some(r) = rank {
                sections.push((r, Vec::new()));
            }
            continue;
        }
        if !keep {
            continue;
        }
        let Some((_, kv)) = sections.last_mut() else {
            continue;
        };
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = kv.last_mut() {
                v.push(' ');
                v.push_str(t);
            }
        } else if let Some((k, v)) = t.split_once(['=', ':']) {
            kv.push((
                k.trim().to_ascii_lowercase().replace('_', "-"),
                v.trim().to_string(),
            ));
        }
    }
    sections.sort_by_key(|(r, _)| *r);
    for (_, kv) in sections {
        out.extend(kv);
    }
    out
}

/// What a bundle asks to install.
#[derive(Debug, Clone)]
pub enum Request {
    /// Nothing.
    None,
    /// `requirements.txt`, to resolve.
    File(ReqFile),
    /// `requirements.lock`, installed exactly (with the requirements file's index options,
    /// if it has one).
    Lock(Lock, Option<ReqFile>),
}

impl Request {
    /// Reads the bundle's requirements; a bad file is a 400 naming its line. With `upgrade`
    /// a `requirements.lock` in the bundle is ignored.
    pub fn from_bundle(files: &BTreeMap<String, Bytes>, upgrade: bool) -> Result<Self> {
        let file = match files.contains_key("requirements.txt") {
            true => Some(ReqFile::parse("requirements.txt", files).map_err(Error::InvalidInput)?),
            false => None,
        };
        if !upgrade && let Some(text) = files.get("requirements.lock") {
            let text = std::str::from_utf8(text)
                .map_err(|_| Error::InvalidInput("requirements.lock is not UTF-8 text".into()))?;
            return Ok(Request::Lock(
                Lock::parse(text).map_err(Error::InvalidInput)?,
                file,
            ));
        }
        Ok(match file {
            Some(f) if !f.requirements.is_empty() => Request::File(f),
            _ => Request::None,
        })
    }
}

/// What an install did.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    /// The wheels, on disk.
    pub wheels: Vec<PathBuf>,
    /// What they are.
    pub lock: Lock,
    /// Time spent resolving (zero when a lock or an earlier resolution was used).
    pub resolve: Duration,
    /// Time spent fetching the chosen wheels after resolving (wheels fetched while resolving,
    /// to read the metadata of those without a PEP 658 file, count in `resolve`).
    pub download: Duration,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// An earlier resolution of the same inputs was reused.
    pub reused_resolution: bool,
    /// Whether anything went to the network.
    pub networked: bool,
}

/// Installs requirements for deploys. Cheap to clone.
#[derive(Clone)]
pub struct Installer {
    client: reqwest::Client,
    public: reqwest::Client,
    settings: Arc<Settings>,
    cache: cache::Cache,
}

impl Installer {
    /// An installer with the node's `settings`, caching in `dir`.
    pub fn new(settings: Settings, dir: &Path) -> Result<Self> {
        let make = |public_only| {
            index::client(
                settings.cert.as_deref(),
                Duration::from_secs(60),
                public_only,
            )
            .map_err(|e| Error::InvalidInput(format!("package index settings: {e}")))
        };
        Ok(Self {
            client: make(false)?,
            public: make(true)?,
            settings: Arc::new(settings),
            cache: cache::Cache::open(dir)?,
        })
    }

    fn sources(&self, file: Option<&ReqFile>) -> index::Sources {
        let s = &self.settings;
        let opts = file.map(|f| f.index.clone()).unwrap_or_default();
        let mut src = index::Sources {
            bundle_dirs: vec!["wheels".into()],
            ..Default::default()
        };
        // the node's sources are its operator's; the file's are the bundle's (guard.rs)
        let node = |url: &String| index::Remote {
            url: url.clone(),
            trusted: true,
        };
        let bundle = |url: &String| index::Remote {
            url: url.clone(),
            trusted: false,
        };
        if !(s.no_index || opts.no_index) {
            src.indexes.push(match (&opts.index_url, &s.index_url) {
                (Some(u), _) => bundle(u),
                (None, Some(u)) => node(u),
                (None, None) => node(&DEFAULT_INDEX.to_string()),
            });
            src.indexes.extend(s.extra_index_urls.iter().map(node));
            src.indexes.extend(opts.extra_index_urls.iter().map(bundle));
        }
        for l in &s.find_links {
            if l.starts_with("http://") || l.starts_with("https://") {
                src.link_pages.push(node(l));
            } else {
                src.local_dirs
                    .push(PathBuf::from(l.strip_prefix("file://").unwrap_or(l)));
            }
        }
        for l in &opts.find_links {
            if l.contains("://") {
                src.link_pages.push(bundle(l));
            } else if !src.bundle_dirs.contains(l) {
                src.bundle_dirs.push(l.clone());
            }
        }
        src
    }

    /// Installs what `req` asks for: wheels fetched (or found in the cache) and checked,
    /// bundle wheels written to `scratch`; all of it within [`MAX_INSTALL`].
    pub async fn install(
        &self,
        req: &Request,
        files: Arc<BTreeMap<String, Bytes>>,
        scratch: &Path,
        upgrade: bool,
    ) -> Result<Installed> {
        tokio::time::timeout(
            MAX_INSTALL,
            self.install_inner(req, files, scratch, upgrade),
        )
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "installing requirements took longer than {} s (a slow package index?)",
                MAX_INSTALL.as_secs()
            ))
        })?
    }

    async fn install_inner(
        &self,
        req: &Request,
        files: Arc<BTreeMap<String, Bytes>>,
        scratch: &Path,
        upgrade: bool,
    ) -> Result<Installed> {
        std::fs::create_dir_all(scratch)?;
        let (file, lock) = match req {
            Request::None => return Ok(Installed::default()),
            Request::File(f) => (Some(f), None),
            Request::Lock(l, f) => (f.as_ref(), Some(l.clone())),
        };
        let sources = self.sources(file);
        let index = index::Index::new(self.client.clone(), self.public.clone(), files.clone());
        let hashes = file.filter(|f| f.require_hashes).map(|f| {
            let mut m: HashMap<String, HashSet<String>> = HashMap::new();
            for r in f.requirements.iter().chain(&f.constraints) {
                if !r.hashes.is_empty() {
                    m.entry(r.req.name.to_string())
                        .or_default()
                        .extend(r.hashes.iter().cloned());
                }
            }
            m
        });
        let key = file.map(|f| resolution_key(f, &sources, &files));
        let make = |sources: index::Sources| {
            Arc::new(fetch::Fetcher::new(
                index.clone(),
                sources,
                self.cache.clone(),
                scratch.to_path_buf(),
                hashes.clone(),
            ))
        };
        // the bundle's own wheels (and the node's wheelhouse) first: when they satisfy the
        // requirements by themselves no index is asked, so vendored bundles deploy offline
        let local = index::Sources {
            indexes: vec![],
            link_pages: vec![],
            ..sources.clone()
        };
        let has_local = !local.local_dirs.is_empty()
            || local.bundle_dirs.iter().any(|d| {
                let p = format!("{d}/");
                files
                    .range(p.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&p))
            });
        let fetcher = make(sources.clone());
        let mut out = Installed::default();
        let earlier = match (&lock, &key) {
            (None, Some(k)) if !upgrade => self.cache.resolution(k),
            _ => None,
        };
        let lock = match (lock, earlier) {
            (Some(l), _) => l,
            (None, Some(l)) => {
                out.reused_resolution = true;
                l
            }
            (None, None) => {
                let Some(file) = file else {
                    return Ok(out);
                };
                let t = Instant::now();
                let mut dists = None;
                let mut fetcher = fetcher;
                if has_local && !sources.offline() {
                    let f = make(local);
                    if let Ok(d) = solve(f.clone(), file).await? {
                        dists = Some(d);
                        fetcher = f;
                    }
                }
                let dists = match dists {
                    Some(d) => d,
                    None => solve(fetcher.clone(), file).await?.map_err(classify)?,
                };
                out.resolve = t.elapsed();
                let t = Instant::now();
                let fetched =
                    fetch_all(
                        &fetcher,
                        dists.clone(),
                        |f, d| async move { f.wheel(&d).await },
                    )
                    .await;
                let mut wheels = Vec::new();
                for (d, f) in dists.iter().zip(fetched) {
                    let (path, sha) = f.map_err(classify)?;
                    out.wheels.push(path);
                    wheels.push(Locked {
                        name: target::parse_file(&d.file)
                            .map(|f| f.name)
                            .unwrap_or_default(),
                        version: d.version.to_string(),
                        file: d.file.clone(),
                        sha256: sha,
                        url: match &d.location {
                            index::Location::Url(u) => Some(index::redact(u)),
                            _ => None,
                        },
                    });
                }
                out.download = t.elapsed();
                out.lock = Lock::new(wheels);
                if let Some(k) = &key {
                    self.cache.put_resolution(k, &out.lock);
                }
                out.downloaded_bytes = fetcher.downloaded.load(Ordering::Relaxed);
                out.networked = fetcher.networked.load(Ordering::Relaxed);
                return Ok(out);
            }
        };
        // a lock: exactly its wheels (in hash-checking mode, only wheels the file allows)
        if let Some(h) = &fetcher.hashes {
            for w in &lock.wheels {
                if !h.get(&w.name).is_some_and(|set| set.contains(&w.sha256)) {
                    return Err(Error::InvalidInput(format!(
                        "requirements.lock: {} {} (sha256 {}) matches no --hash of requirements.txt",
                        w.name, w.version, w.sha256
                    )));
                }
            }
        }
        let t = Instant::now();
        let fetched = fetch_all(&fetcher, lock.wheels.clone(), |f, w| async move {
            f.locked_wheel(&w).await
        })
        .await;
        for f in fetched {
            out.wheels.push(f.map_err(classify)?);
        }
        out.download = t.elapsed();
        out.lock = lock;
        out.downloaded_bytes = fetcher.downloaded.load(Ordering::Relaxed);
        out.networked = fetcher.networked.load(Ordering::Relaxed);
        Ok(out)
    }
}

/// `fetch(fetcher, item)` for every item, [`PARALLEL`] at a time, in order. Each future owns
/// what it uses (a borrowed item across the stream is not `Send` for every lifetime).
async fn fetch_all<T, R, F, Fut>(fetcher: &Arc<fetch::Fetcher>, items: Vec<T>, fetch: F) -> Vec<R>
where
    F: Fn(Arc<fetch::Fetcher>, T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let jobs: Vec<Fut> = items
        .into_iter()
        .map(|i| fetch(fetcher.clone(), i))
        .collect();
    futures::stream::iter(jobs)
        .buffered(PARALLEL)
        .collect()
        .await
}

/// Runs the solver on a blocking thread: the outer error is ours, the inner the resolution's.
async fn solve(
    fetcher: Arc<fetch::Fetcher>,
    file: &ReqFile,
) -> Result<std::result::Result<Vec<index::Dist>, String>> {
    let provider = resolve::Provider::new(tokio::runtime::Handle::current(), fetcher, file);
    tokio::task::spawn_blocking(move || resolve::solve(&provider))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
}

/// An index that could not be reached is the network's fault (503), anything else the
/// bundle's (400).
fn classify(e: String) -> Error {
    if e.starts_with("GET ") && !e.contains(": HTTP 4") && !e.contains("public address") {
        Error::Unavailable(format!("package index: {e}"))
    } else {
        Error::InvalidInput(e)
    }
}

/// Names everything a resolution depends on but the index's state: the requirements, the
/// sources, the bundle's wheels and the target.
fn resolution_key(f: &ReqFile, s: &index::Sources, files: &BTreeMap<String, Bytes>) -> String {
    let mut h = Sha256::new();
    h.update(format!("v1\0{}\0", target::PYTHON_FULL_VERSION));
    for r in f.requirements.iter().chain(&f.constraints) {
        h.update(format!("{}\0{:?}\0", r.req, r.hashes));
    }
    h.update(format!(
        "{:?}{:?}{}{}\0",
        f.index, s, f.pre, f.require_hashes
    ));
    for dir in &s.bundle_dirs {
        for (path, data) in files.range(format!("{dir}/")..) {
            if !path.starts_with(&format!("{dir}/")) {
                break;
            }
            h.update(format!("{path}\0{}\0", index::sha256_hex(data)));
        }
    }
    crate::executor::wasm::load::hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_conf_sections_in_pips_order() {
        let kv = pip_conf(
            "[install]\nindex-url = https://install.example/simple\n[global]\nindex-url=https://global.example/simple\nfind-links =\n    /opt/a\n    /opt/b\ncert = /etc/ca.pem\n[freeze]\ntimeout=1\n",
        );
        let mut s = Settings::default();
        for (k, v) in kv {
            s.set(&k, &v);
        }
        // [install] overrides [global]
        assert_eq!(
            s.index_url.as_deref(),
            Some("https://install.example/simple")
        );
        assert_eq!(s.find_links, ["/opt/a", "/opt/b"]);
        assert_eq!(s.cert.as_deref(), Some(Path::new("/etc/ca.pem")));
    }
}
