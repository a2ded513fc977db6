//! The backing store: an embedded IPFS node (rust-ipfs, libp2p inside) over an on-disk repo.
//!
//! Layout of a repo directory:
//! - `blockstore/` — blocks, flatfs layout shared with rust-ipfs (see [`blockstore`]);
//! - `datastore/`, `repo_lock` — rust-ipfs' own;
//! - `pins/` — recursive pins (see [`pins`]);
//! - `identity.key` — the node's libp2p keypair (protobuf), so the peer id survives restarts;
//! - `ipfaas.lock` — held (flock) by the one process that owns the repo.
//!
//! Executors do not read this directly: each brings its own mounting mechanism on top of
//! [`crate::unixfs::read`] (a byte stream, a tar stream, an exported tree).

pub mod add;
pub mod blockstore;
mod cache;
pub mod export;
mod fetch;
pub mod gc;
mod listing;
pub mod metrics;
pub mod pins;

use crate::error::{Error, Result};
use crate::path::IpfsPath;
use crate::unixfs::read::{self, ByteStream, Kind};
use add::{AddOptions, AddOutcome, Adder};
use blockstore::FlatFs;
use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use libp2p_memory_connection_limits as memory_limits;
use metrics::StoreMetrics;
use pins::Pins;
use rust_ipfs::builder::IpfsBuilder;
use rust_ipfs::{DhtMode, Ipfs, Keypair, Multiaddr, PeerId, RequestResponseConfig};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Incoming libp2p connections still in their handshake, at most.
pub const MAX_PENDING_INCOMING: u32 = 128;
/// Established incoming libp2p connections, at most.
pub const MAX_ESTABLISHED_INCOMING: u32 = 1024;
/// Established libp2p connections to one peer, at most (both directions).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 8;
/// The default memory bound on new libp2p connections: the node's resident memory as a share
/// of the machine's. Past it the node keeps the connections it has (and answers on them) but
/// neither accepts nor dials new ones, so a flood of peers cannot push it into the OOM killer.
pub const DEFAULT_P2P_MEMORY_SHARE: f64 = 0.8;

/// Where the store keeps its repo and how its node joins the network.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The repo directory (created if missing).
    pub repo: PathBuf,
    /// libp2p listen addresses; none = no transport at all (offline).
    pub listen: Vec<Multiaddr>,
    /// Peers the node dials at start (with their `/p2p/` ids).
    pub bootstrap: Vec<Multiaddr>,
    /// How long a read waits for a block that is not local before answering "not found".
    pub fetch_timeout: Duration,
    /// Never ask peers; a missing block is "not found" at once.
    pub offline: bool,
    /// Collect garbage (see [`gc`]) when the blocks stored pass 90% of this many bytes.
    pub storage_max: Option<u64>,
    /// New libp2p connections (in and out) are refused while the process's resident memory is
    /// past this many bytes; `None` = [`DEFAULT_P2P_MEMORY_SHARE`] of the machine's memory.
    pub p2p_max_memory: Option<u64>,
    /// Request-response protocols spoken over libp2p besides the IPFS ones (the invocations
    /// between ipfaas nodes: see [`crate::invoke::remote::protocol`]). The first is the one
    /// requests and responses without a named protocol travel on.
    pub protocols: Vec<Protocol>,
}

/// A libp2p request-response protocol the node speaks: its name and its bounds.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// The protocol name, e.g. `/ipfaas/invoke/1.0.0`.
    pub name: &'static str,
    /// Longest a request may take before the caller gives up on that peer.
    pub timeout: Duration,
    /// Largest request accepted, in bytes.
    pub max_request: usize,
    /// Largest response accepted, in bytes.
    pub max_response: usize,
}

impl StoreConfig {
    /// A store at `repo` that never touches the network (tools, tests).
    pub fn offline(repo: impl Into<PathBuf>) -> Self {
        Self {
            repo: repo.into(),
            listen: vec![],
            bootstrap: vec![],
            fetch_timeout: Duration::ZERO,
            offline: true,
            storage_max: None,
            p2p_max_memory: None,
            protocols: vec![],
        }
    }
}

/// The backing store: the repo and its embedded IPFS node. Cheap to clone; clones share one node.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// Whether a block that is not local may be fetched from peers (see [`Store::local_only`]).
    fetch: bool,
}

struct Inner {
    repo: PathBuf,
    blocks: FlatFs,
    pins: Pins,
    node: Ipfs,
    metrics: StoreMetrics,
    fetch_timeout: Duration,
    offline: bool,
    /// Names of the request-response protocols spoken (see [`StoreConfig::protocols`]).
    protocols: Vec<&'static str>,
    /// Roots to announce in the DHT (see [`Store::announce`]).
    announce: Option<tokio::sync::mpsc::Sender<Cid>>,
    /// Directory nodes and file roots read recently.
    small: cache::SmallBlocks,
    /// Held shared by each add from its first block to its pin, exclusively by a garbage
    /// collection (see [`gc`]).
    gc_lock: std::sync::RwLock<()>,
    /// Roots of adds written without a pin that wait for one ([`Store::sync_and_pin`]): a
    /// collection keeps them.
    unpinned: std::sync::Mutex<std::collections::HashSet<Cid>>,
    /// Blocks being fetched ahead of a reader ([`BlockSource::prefetch`]).
    prefetching: std::sync::Mutex<std::collections::HashSet<Cid>>,
    _lock: File,
}

fn lock_repo(repo: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(repo.join("ipfaas.lock"))?;
    // SAFETY: valid fd; flock has no memory-safety preconditions.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Err(Error::RepoLocked {
                path: repo.display().to_string(),
            });
        }
        return Err(e.into());
    }
    Ok(f)
}

fn load_or_create_identity(repo: &Path) -> Result<Keypair> {
    let path = repo.join("identity.key");
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| Error::Node(format!("{} is not a valid libp2p key: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = Keypair::generate_ed25519();
            let bytes = kp
                .to_protobuf_encoding()
                .map_err(|e| Error::Node(e.to_string()))?;
            let tmp = repo.join("identity.key.tmp");
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            File::open(repo)?.sync_all()?;
            Ok(kp)
        }
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Locks and opens the repo (creating it and the node's identity if new), starts the node
    /// and registers the store metrics in `registry`. Fails with [`Error::RepoLocked`] if another
    /// process owns the repo.
    pub async fn open(cfg: StoreConfig, registry: &prometheus::Registry) -> Result<Self> {
        std::fs::create_dir_all(&cfg.repo)?;
        let repo = cfg.repo.canonicalize()?;
        let lock = lock_repo(&repo)?;
        let keypair = load_or_create_identity(&repo)?;
        let blocks = FlatFs::open(repo.join("blockstore"))?;
        let pins = Pins::open(repo.join("pins"))?;

        let memory_limit = cfg.p2p_max_memory;
        let mut b = IpfsBuilder::<memory_limits::Behaviour>::with_keypair(&keypair)
            .map_err(|e| Error::Node(e.to_string()))?
            .set_path(&repo)
            .with_bitswap()
            .with_identify(rust_ipfs::p2p::IdentifyConfiguration {
                agent_version: format!("ipfaas/{}", env!("CARGO_PKG_VERSION")),
                ..Default::default()
            });
        if !cfg.offline && !cfg.listen.is_empty() {
            b = b.enable_tcp();
            for a in &cfg.listen {
                b = b.add_listening_addr(a.clone());
            }
        }
        if !cfg.offline {
            // The swarm port is open to anyone: bound what connections may hold.
            b = b.set_connection_limits(|l| {
                l.with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                    .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            });
            // ... and what the node as a whole may hold when a peer opens one more.
            b = b.with_custom_behaviour(move |_| {
                Ok(match memory_limit {
                    Some(max) => memory_limits::Behaviour::with_max_bytes(
                        usize::try_from(max).unwrap_or(usize::MAX),
                    ),
                    None => memory_limits::Behaviour::with_max_percentage(DEFAULT_P2P_MEMORY_SHARE),
                })
            });
            // Kademlia (the standard /ipfs/kad/1.0.0) so a node finds who holds a CID, and
            // the caller's request-response protocols (invocations between ipfaas nodes).
            b = b.with_kademlia();
            if !cfg.protocols.is_empty() {
                b = b.with_request_response(
                    cfg.protocols
                        .iter()
                        .map(|p| {
                            RequestResponseConfig::new(p.name)
                                .set_timeout(p.timeout)
                                .set_max_request_size(p.max_request)
                                .set_max_response_size(p.max_response)
                        })
                        .collect(),
                );
            }
        }
        for a in &cfg.bootstrap {
            b = b.add_bootstrap(a.clone());
        }
        let node = b
            .start()
            .await
            .map_err(|e| Error::Node(format!("starting the IPFS node: {e:#}")))?;
        let announce = if cfg.offline {
            None
        } else {
            // Server mode: answer DHT queries even without a confirmed public address, which
            // is the normal case for a private network of nodes.
            node.dht_mode(DhtMode::Server)
                .await
                .map_err(|e| Error::Node(format!("DHT server mode: {e:#}")))?;
            Some(spawn_announcer(node.clone()))
        };

        let metrics = StoreMetrics::new(registry).map_err(|e| Error::Node(e.to_string()))?;
        let store = Store {
            inner: Arc::new(Inner {
                repo,
                blocks,
                pins,
                node,
                metrics,
                fetch_timeout: cfg.fetch_timeout,
                offline: cfg.offline,
                protocols: cfg.protocols.iter().map(|p| p.name).collect(),
                announce,
                small: cache::SmallBlocks::default(),
                gc_lock: Default::default(),
                unpinned: Default::default(),
                prefetching: Default::default(),
                _lock: lock,
            }),
            fetch: true,
        };
        // Block/byte gauges: one walk in the background, kept current afterwards by adds and
        // fetches. It holds only what it reads, so a quick shutdown still owns the node. An add
        // racing the walk may be counted twice; the gauges are an operator's view, not accounts.
        let (root, m) = (
            store.inner.blocks.root().to_path_buf(),
            store.inner.metrics.clone(),
        );
        tokio::task::spawn_blocking(move || {
            if let Ok((n, bytes)) = FlatFs::usage_of(&root) {
                m.blocks.add(n as i64);
                m.bytes.add(bytes as i64);
            }
        });
        if let Some(max) = cfg.storage_max {
            gc::spawn_auto_gc(&store, max);
        }
        // Announce what is pinned (best effort, in the background).
        if store.inner.announce.is_some() {
            let s = store.clone();
            tokio::spawn(async move {
                if let Ok(pins) = s.pins() {
                    s.announce(&pins);
                }
            });
        }
        Ok(store)
    }

    /// The embedded IPFS node, for the network layer.
    pub fn node(&self) -> &Ipfs {
        &self.inner.node
    }

    /// The request-response protocols this node speaks besides the IPFS ones.
    pub fn protocols(&self) -> &[&'static str] {
        &self.inner.protocols
    }

    /// Whether the node was started without the network.
    pub fn is_offline(&self) -> bool {
        self.inner.offline
    }

    /// Whether every block of the DAG at `cid`'s root is local; only the root is checked, as a
    /// cheap hint (a partially fetched DAG says yes).
    pub fn has_local_root(&self, cid: &Cid) -> bool {
        self.inner.blocks.contains(cid)
    }

    /// Announces `cids` as provided by this node in the DHT, in the background. Each announcement
    /// is a DHT query, so only roots are announced; when the queue is full the rest wait for the
    /// next start, which announces every pin again.
    pub fn announce(&self, cids: &[Cid]) {
        if let Some(tx) = &self.inner.announce {
            for c in cids {
                if tx.try_send(*c).is_err() {
                    tracing::debug!("DHT announce queue full; {c} is announced at the next start");
                }
            }
        }
    }

    /// The repo directory (canonical).
    pub fn repo(&self) -> &Path {
        &self.inner.repo
    }

    /// This node's libp2p peer id, stable across restarts (from `identity.key`).
    pub fn peer_id(&self) -> PeerId {
        self.inner.node.keypair().public().to_peer_id()
    }

    /// This node's public key in libp2p's protobuf encoding.
    pub fn public_key_protobuf(&self) -> Vec<u8> {
        self.inner.node.keypair().public().encode_protobuf()
    }

    /// Listen addresses, each with `/p2p/<peer id>`.
    pub async fn addresses(&self) -> Result<Vec<Multiaddr>> {
        let id = self.peer_id();
        let addrs = self
            .inner
            .node
            .listening_addresses()
            .await
            .map_err(|e| Error::Node(e.to_string()))?;
        Ok(addrs
            .into_iter()
            .map(|a| a.with(rust_ipfs::Protocol::P2p(id)))
            .collect())
    }

    /// Whether `cid` is a pinned root.
    pub fn is_pinned(&self, cid: &Cid) -> bool {
        self.inner.pins.is_pinned(cid)
    }

    /// Every pinned root, sorted.
    pub fn pins(&self) -> Result<Vec<Cid>> {
        Ok(self.inner.pins.list()?)
    }

    /// Runs one add on a blocking thread: `feed` imports entries into the [`Adder`]; if it
    /// succeeds the add is committed (durable) and its roots pinned before this returns.
    /// On error nothing is pinned and no CID is reported.
    pub async fn add<F>(&self, opts: AddOptions, feed: F) -> Result<AddOutcome>
    where
        F: FnOnce(&mut Adder<'_>) -> Result<()> + Send + 'static,
    {
        let this = self.clone();
        // the duration metric counts the wait for a blocking thread too: the caller waits it
        let t = Instant::now();
        tokio::task::spawn_blocking(move || this.add_since(t, opts, feed))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("add task failed: {e}"))))?
    }

    /// [`Store::add`] on the calling thread, for code already running on a blocking thread
    /// (it does file I/O and must not run on an async worker).
    pub fn add_blocking<F>(&self, opts: AddOptions, feed: F) -> Result<AddOutcome>
    where
        F: FnOnce(&mut Adder<'_>) -> Result<()>,
    {
        self.add_since(Instant::now(), opts, feed)
    }

    /// Adds a tree whose single root is `root` (default options: pinned, durable); returns
    /// the root's CID.
    pub async fn add_tree<F>(&self, root: &str, feed: F) -> Result<String>
    where
        F: FnOnce(&mut Adder<'_>) -> Result<()> + Send + 'static,
    {
        let out = self.add(AddOptions::default(), feed).await?;
        out.roots
            .iter()
            .find(|r| r.path == root)
            .map(|r| r.cid.to_string())
            .ok_or_else(|| crate::error::io_err(format!("add produced no {root:?} root")))
    }

    /// Adds bytes as one file (default import profile, pinned, durable); returns its CID.
    pub async fn add_bytes(&self, data: Bytes) -> Result<String> {
        self.add_tree("data", move |a| {
            a.bytes("data", &data)?;
            Ok(())
        })
        .await
    }

    /// An add whose caller started waiting at `t` (its duration metric counts from there).
    fn add_since<F>(&self, t: Instant, opts: AddOptions, feed: F) -> Result<AddOutcome>
    where
        F: FnOnce(&mut Adder<'_>) -> Result<()>,
    {
        let inner = &self.inner;
        let (pin, pin_durable) = (opts.pin, opts.pin && opts.durable);
        // a pin-to-be: its roots wait for `sync_and_pin`, and collections keep them meanwhile
        let pending = !opts.pin && !opts.durable;
        // no collection runs between the first block and the pin (see `gc`)
        let _no_gc = inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        let mut adder = Adder::new(&inner.blocks, opts);
        feed(&mut adder)?;
        let out = adder.finish()?;
        let roots: Vec<Cid> = out.roots.iter().map(|r| r.cid).collect();
        if pin {
            inner.pins.add(&roots)?;
        }
        if pending {
            let mut u = inner.unpinned.lock().unwrap_or_else(|p| p.into_inner());
            u.extend(roots.iter().copied());
        }
        let m = &inner.metrics;
        m.add_seconds.observe(t.elapsed().as_secs_f64());
        m.added_bytes.inc_by(out.content_bytes);
        m.blocks.add(out.new_blocks as i64);
        m.bytes.add(out.new_bytes as i64);
        if pin_durable {
            self.announce(&roots);
        }
        Ok(out)
    }

    /// Makes every block written so far durable (one `syncfs`), then pins `cids`: the second half
    /// of an add made with `durable: false` (whose roots, when it did not pin, a garbage
    /// collection keeps until then).
    pub async fn sync_and_pin(&self, cids: Vec<Cid>) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            blockstore::sync_filesystem(inner.blocks.root())?;
            if !cids.is_empty() {
                let _no_gc = inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
                inner.pins.add(&cids)?;
                let mut u = inner.unpinned.lock().unwrap_or_else(|p| p.into_inner());
                for c in &cids {
                    u.remove(c);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
    }

    /// Unpins `cid`; `false` if it was not pinned. Its blocks stay on disk until a garbage
    /// collection ([`Store::gc`]) finds no other pin reaching them.
    pub async fn unpin(&self, cid: &Cid) -> Result<bool> {
        let inner = self.inner.clone();
        let cid = *cid;
        tokio::task::spawn_blocking(move || inner.pins.remove(&cid))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
            .map_err(Error::from)
    }

    /// Resolves `cid[/path...]`.
    pub async fn resolve(&self, root: Cid, path: &[&str]) -> Result<Cid> {
        read::resolve(self, root, path).await
    }

    /// Resolves a user-written path (`CID`, `CID/a/b`, `/ipfs/CID/a/b`).
    pub async fn resolve_path(&self, path: &IpfsPath) -> Result<Cid> {
        let segs: Vec<&str> = path.segments.iter().map(String::as_str).collect();
        self.resolve(path.root, &segs).await
    }

    /// The same store, but reads through it never fetch from peers: a block that is not local
    /// is not found at once. For reads that may not make the node store others' data (an
    /// unauthenticated request, unless `--fetch-on-read` allows it).
    pub fn local_only(&self) -> Store {
        Store {
            inner: self.inner.clone(),
            fetch: false,
        }
    }

    /// What `cid` is: a file (with its size), a directory or a symlink.
    pub async fn stat(&self, cid: &Cid) -> Result<Kind> {
        read::stat(self, cid).await
    }

    /// The entries of the directory `cid` (basic or HAMT).
    pub async fn entries(&self, cid: &Cid) -> Result<Vec<read::Entry>> {
        read::entries(self, cid).await
    }

    /// A whole file in memory, refusing one over `max` bytes before reading any of it.
    pub async fn read_all(&self, cid: Cid, max: u64) -> Result<Bytes> {
        use futures::TryStreamExt;
        let (size, mut s) = self.cat(cid, 0, None).await?;
        if size > max {
            return Err(Error::InvalidInput(format!(
                "{cid} is {size} bytes, more than {max}"
            )));
        }
        // the size is a claim until the bytes arrive: grow with them past the first MiB
        let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
        while let Some(b) = s.try_next().await? {
            out.extend_from_slice(&b);
        }
        Ok(out.into())
    }

    /// Checks that `cid` is a file and the range starts inside it, then streams it.
    /// Returns the file size and the stream.
    pub async fn cat(&self, cid: Cid, offset: u64, len: Option<u64>) -> Result<(u64, ByteStream)> {
        let size = match self.stat(&cid).await? {
            Kind::File { size } => size,
            Kind::Directory => return Err(Error::IsADirectory(cid.to_string())),
            Kind::Symlink { target } => {
                return Err(Error::InvalidInput(format!(
                    "{cid} is a symlink to {target:?}"
                )));
            }
        };
        // like Kubo: starting exactly at the end reads nothing; past it is an error
        if offset > size {
            return Err(Error::RangeNotSatisfiable { offset, size });
        }
        Ok((
            size,
            self.measured(read::cat(self.clone(), cid, offset, len)),
        ))
    }

    /// Streams the tree at `cid` as tar (see [`read::tar`]).
    pub fn tar(&self, cid: Cid, root_name: String) -> ByteStream {
        self.measured(read::tar(self.clone(), cid, root_name))
    }

    /// Reads every block of the tree at `cid` (through this store: fetching from peers unless
    /// it is [`Store::local_only`]), stopping with [`Error::OverLimit`] past `max` bytes of
    /// content, so a peer's DAG cannot make the node fetch and keep without end; an error
    /// names the first block that is missing or malformed.
    pub async fn read_through(&self, cid: Cid, max: u64) -> Result<()> {
        let mut s = read::tar(self.clone(), cid, String::from("x"));
        let mut seen = 0u64;
        while let Some(chunk) = s.next().await {
            // tar headers and padding count too: a bound on bytes moved, slightly above content
            seen += chunk?.len() as u64;
            if seen > max.saturating_add(1 << 20) {
                return Err(Error::OverLimit {
                    cid: cid.to_string(),
                    reason: format!("more than {max} bytes"),
                });
            }
        }
        Ok(())
    }

    fn measured(&self, s: ByteStream) -> ByteStream {
        struct Timer(Instant, StoreMetrics);
        impl Drop for Timer {
            fn drop(&mut self) {
                self.1.read_seconds.observe(self.0.elapsed().as_secs_f64());
            }
        }
        let timer = Timer(Instant::now(), self.inner.metrics.clone());
        Box::pin(s.inspect(move |r| {
            if let Ok(b) = r {
                timer.1.read_bytes.inc_by(b.len() as u64);
            }
        }))
    }

    /// Stops the node and releases the repo.
    pub async fn shutdown(self) {
        if let Ok(inner) = Arc::try_unwrap(self.inner) {
            inner.node.exit_daemon().await;
        }
    }
}

/// Announces CIDs in the DHT, four at a time. libp2p's in-memory record store keeps at most
/// 1,024 provided keys; past that an announcement fails and is logged once.
fn spawn_announcer(node: Ipfs) -> tokio::sync::mpsc::Sender<Cid> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Cid>(4096);
    tokio::spawn(async move {
        let warned = std::sync::atomic::AtomicBool::new(false);
        tokio_stream_from(rx)
            .for_each_concurrent(4, |cid| {
                let (node, warned) = (&node, &warned);
                async move {
                    // No peers yet is fine: the record is kept locally and served to peers
                    // that ask later.
                    if let Err(e) = node.provide(cid).await {
                        let msg = format!("{e:#}");
                        // libp2p-kad's `store::Error::MaxProvidedKeys`
                        if msg.contains("cannot contain any more provider records") {
                            if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                                tracing::warn!("DHT announcements are full: {msg}");
                            }
                        } else {
                            tracing::debug!("announcing {cid}: {msg}");
                        }
                    }
                }
            })
            .await;
    });
    tx
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
