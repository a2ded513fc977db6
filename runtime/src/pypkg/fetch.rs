//! Fetching for one install: each project's usable files (listed once, shared by every
//! question about it), metadata, and wheels through the node's cache. Calls for the same
//! thing share one request, so the resolver can ask ahead (see `resolve::Provider::prefetch`).

use super::cache::{Cache, sha256_file};
use super::index::{Dist, Index, Location, Sources};
use super::lock::Locked;
use super::metadata::{self, MAX_METADATA, Metadata};
use super::target::{self, FileKind};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Most bytes one install may download (wheels tried while resolving included).
pub const MAX_DOWNLOADS: u64 = 2 << 30;

type Shared<T> = Arc<OnceCell<Result<Arc<T>, String>>>;

/// A project's files.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every file the sources offer.
    pub all: Vec<Dist>,
    /// One file per version the guest can use, highest version first.
    pub usable: Vec<Dist>,
}

impl Listing {
    /// Why no file of this project can be used at all, if none can.
    pub fn unusable_reason(&self, hash_mode: bool) -> Option<String> {
        if !self.usable.is_empty() {
            return None;
        }
        let has = |k: FileKind| self.all.iter().any(|d| d.kind == k);
        Some(if self.all.is_empty() {
            "not found on the package index".into()
        } else if has(FileKind::Pure) && hash_mode {
            "no file matches the --hash values given (hash-checking mode)".into()
        } else if has(FileKind::Pure) {
            format!(
                "every pure-Python wheel requires a Python other than {}",
                target::TARGET_NAME
            )
        } else if has(FileKind::Other) {
            format!(
                "no pure-Python wheel for {} (only native wheels)",
                target::TARGET_NAME
            )
        } else {
            "only source distributions (ipfaas installs wheels; it does not build from source)"
                .into()
        })
    }
}

/// What one install fetches with.
pub struct Fetcher {
    index: Index,
    sources: Sources,
    cache: Cache,
    /// Bundle wheels are written here (never into the cache).
    scratch: PathBuf,
    /// Hash-checking mode: the digests allowed per project.
    pub hashes: Option<HashMap<String, HashSet<String>>>,
    listings: Mutex<HashMap<String, Shared<Listing>>>,
    metas: Mutex<HashMap<String, Shared<Metadata>>>,
    wheels: Mutex<HashMap<String, Shared<(PathBuf, String)>>>,
    /// Bytes downloaded.
    pub downloaded: AtomicU64,
    /// Whether anything went to the network.
    pub networked: AtomicBool,
}

fn rank(l: &Location) -> u8 {
    match l {
        Location::Bundle(_) => 0,
        Location::Local(_) => 1,
        Location::Url(_) => 2,
    }
}

fn shared<T>(map: &Mutex<HashMap<String, Shared<T>>>, key: &str) -> Shared<T> {
    map.lock()
        .unwrap()
        .entry(key.to_string())
        .or_default()
        .clone()
}

impl Fetcher {
    /// A fetcher over `sources`.
    pub fn new(
        index: Index,
        sources: Sources,
        cache: Cache,
        scratch: PathBuf,
        hashes: Option<HashMap<String, HashSet<String>>>,
    ) -> Self {
        Self {
            index,
            sources,
            cache,
            scratch,
            hashes,
            listings: Default::default(),
            metas: Default::default(),
            wheels: Default::default(),
            downloaded: AtomicU64::new(0),
            networked: AtomicBool::new(false),
        }
    }

    /// The files of project `name` (normalised).
    pub async fn listing(&self, name: &str) -> Result<Arc<Listing>, String> {
        let cell = shared(&self.listings, name);
        cell.get_or_init(|| async {
            if !self.sources.offline() {
                self.networked.store(true, Ordering::Relaxed);
            }
            let mut all = self.index.project(&self.sources, name).await?;
            for d in &mut all {
                if let Location::Local(p) = &d.location
                    && d.kind == FileKind::Pure
                {
                    d.sha256 = sha256_file(p).ok();
                }
            }
            let allowed = self.hashes.as_ref().map(|h| h.get(name));
            let mut usable: Vec<Dist> = all
                .iter()
                .filter(|d| {
                    d.kind == FileKind::Pure && target::python_ok(d.requires_python.as_deref())
                })
                .filter(|d| match allowed {
                    None => true,
                    Some(set) => d
                        .sha256
                        .as_ref()
                        .is_some_and(|h| set.is_some_and(|s| s.contains(h))),
                })
                .cloned()
                .collect();
            usable.sort_by(|a, b| {
                b.version
                    .cmp(&a.version)
                    .then(rank(&a.location).cmp(&rank(&b.location)))
            });
            usable.dedup_by(|b, a| a.version == b.version);
            Ok(Arc::new(Listing { all, usable }))
        })
        .await
        .clone()
    }

    /// The metadata of `dist`: the cache, the index's metadata file (PEP 658), or the wheel.
    pub async fn metadata(&self, dist: &Dist) -> Result<Arc<Metadata>, String> {
        let key = format!("{:?}", dist.location);
        let cell = shared(&self.metas, &key);
        cell.get_or_init(|| async {
            let text = self.metadata_text(dist).await?;
            metadata::parse(&text)
                .map(Arc::new)
                .map_err(|e| format!("{}: {e}", dist.file))
        })
        .await
        .clone()
    }

    /// The metadata file's text. The cache is shared by every deploy, so an entry is kept
    /// only under a digest that vouches for its content: the metadata file's own sha256 (PEP
    /// 658 files that state one), or the sha256 of the wheel bytes it was read from — never
    /// the wheel digest an index merely states, or one index could give a genuine wheel false
    /// dependencies for every later deploy.
    async fn metadata_text(&self, dist: &Dist) -> Result<String, String> {
        match &dist.metadata_url {
            Some((url, want)) => {
                if let Some(w) = want
                    && let Some(t) = self.cache.metadata(w)
                {
                    return Ok(t);
                }
                self.networked.store(true, Ordering::Relaxed);
                let bytes = self.index.get(url, MAX_METADATA, dist.trusted).await?;
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if let Some(want) = want {
                    let got = super::index::sha256_hex(&bytes);
                    if &got != want {
                        return Err(format!(
                            "{}: sha256 {got} is not the {want} the index gave",
                            super::index::redact(url)
                        ));
                    }
                    self.cache.put_metadata(want, &text);
                }
                Ok(text)
            }
            None => {
                // wheel metadata is kept as "w" + the wheel's verified digest
                if let Some(sha) = &dist.sha256
                    && let Some(t) = self.cache.metadata(&format!("w{sha}"))
                {
                    return Ok(t);
                }
                let (path, sha) = self.wheel(dist).await?;
                let file = dist.file.clone();
                let text = tokio::task::spawn_blocking(move || metadata::from_wheel(&path))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("{file}: {e}"))?;
                self.cache.put_metadata(&format!("w{sha}"), &text);
                Ok(text)
            }
        }
    }
    /// The wheel file of `dist` on disk, and its sha256 (checked against what the source
    /// stated, and in hash-checking mode against the hashes given).
    pub async fn wheel(&self, dist: &Dist) -> Result<(PathBuf, String), String> {
        let key = format!("{:?}", dist.location);
        let cell = shared(&self.wheels, &key);
        cell.get_or_init(|| async { self.fetch_wheel(dist).await.map(Arc::new) })
            .await
            .clone()
            .map(|a| (*a).clone())
    }

    async fn fetch_wheel(&self, dist: &Dist) -> Result<(PathBuf, String), String> {
        let file = &dist.file;
        let (path, sha) = match &dist.location {
            Location::Bundle(p) => {
                let data = self.index.bundle_file(p).ok_or("vanished")?;
                // its bundle path was checked when the bundle was read; name the copy by
                // the last part only
                let base = p.rsplit('/').next().unwrap_or(file);
                let dest = self.scratch.join(base);
                std::fs::write(&dest, data).map_err(|e| e.to_string())?;
                (dest, super::index::sha256_hex(data))
            }
            Location::Local(p) => (
                p.clone(),
                sha256_file(p).map_err(|e| format!("{}: {e}", p.display()))?,
            ),
            Location::Url(url) => {
                if let Some(sha) = &dist.sha256
                    && let Some(p) = self.cache.wheel(sha, file)
                {
                    return Ok((p, sha.clone()));
                }
                if !super::cache::plain(file) {
                    return Err(format!("{file:?} is not a file name this node keeps"));
                }
                self.networked.store(true, Ordering::Relaxed);
                let tmp =
                    tempfile::NamedTempFile::new_in(self.cache.tmp()).map_err(|e| e.to_string())?;
                let sha = self.index.download(url, tmp.path(), dist.trusted).await?;
                let size = tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
                let total = self.downloaded.fetch_add(size, Ordering::Relaxed) + size;
                if total > MAX_DOWNLOADS {
                    return Err(format!(
                        "requirements: more than {MAX_DOWNLOADS} bytes of wheels to download"
                    ));
                }
                if let Some(want) = &dist.sha256
                    && want != &sha
                {
                    return Err(format!(
                        "{}: the download's sha256 {sha} is not the {want} the index gave",
                        super::index::redact(url)
                    ));
                }
                let (_, tmp_path) = tmp.keep().map_err(|e| e.to_string())?;
                let p = self
                    .cache
                    .put_wheel(&tmp_path, &sha, file)
                    .map_err(|e| e.to_string())?;
                (p, sha)
            }
        };
        if let Some(want) = &dist.sha256
            && want != &sha
        {
            return Err(format!(
                "{file}: sha256 {sha} is not the {want} stated for it"
            ));
        }
        Ok((path, sha))
    }

    /// The wheel a lock names: from the cache, the bundle, its recorded URL, or any source
    /// that lists a file of that name; always checked against the locked digest.
    pub async fn locked_wheel(&self, w: &Locked) -> Result<PathBuf, String> {
        if let Some(p) = self.cache.wheel(&w.sha256, &w.file) {
            return Ok(p);
        }
        let mut tried = Vec::new();
        let mut candidates: Vec<Dist> = Vec::new();
        if let Some(url) = &w.url {
            candidates.push(Dist {
                location: Location::Url(url.clone()),
                ..locked_dist(w)
            });
        }
        for dir in &self.sources.bundle_dirs {
            let path = format!("{dir}/{}", w.file);
            if self.index.bundle_file(&path).is_some() {
                candidates.push(Dist {
                    location: Location::Bundle(path),
                    ..locked_dist(w)
                });
            }
        }
        candidates.sort_by_key(|d| rank(&d.location));
        for d in candidates {
            match self.fetch_wheel(&d).await {
                Ok((p, _)) => return Ok(p),
                Err(e) => tried.push(e),
            }
        }
        // not where it was: any source that lists a file of that name
        if let Ok(l) = self.listing(&target::normalize(&w.name)).await {
            for d in l.all.iter().filter(|d| d.file == w.file) {
                let d = Dist {
                    sha256: Some(w.sha256.clone()),
                    ..d.clone()
                };
                match self.fetch_wheel(&d).await {
                    Ok((p, _)) => return Ok(p),
                    Err(e) => tried.push(e),
                }
            }
        }
        Err(format!(
            "requirements.lock: {} ({}, sha256 {}): {}",
            w.name,
            w.file,
            w.sha256,
            if tried.is_empty() {
                "no source has this file".to_string()
            } else {
                tried.join("; ")
            }
        ))
    }
}

/// A file as a lock names it (its location set by the caller).
fn locked_dist(w: &Locked) -> Dist {
    Dist {
        file: w.file.clone(),
        version: target::parse_file(&w.file)
            .map(|f| f.version)
            .unwrap_or_else(|| pep508_rs::pep440_rs::Version::new([0])),
        kind: FileKind::Pure,
        location: Location::Bundle(String::new()),
        sha256: Some(w.sha256.clone()),
        requires_python: None,
        metadata_url: None,
        yanked: false,
        // a lock's URL is the bundle's word
        trusted: false,
    }
}
