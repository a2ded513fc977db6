//! The on-disk block store: the same flatfs layout rust-ipfs reads (`<root>/<shard>/<cidv1>.data`,
//! shard = next-to-last two characters), so the embedded node serves over bitswap every block
//! written here — but written with batch durability instead of an fsync per block.
//!
//! Crash consistency: a block becomes visible under its final name only by an atomic rename of a
//! fully written temp file, so a crash can leave stray temp files (removed at open) but never a
//! torn block. Blocks are written by a thread of the add's own, and each asks the kernel to start
//! write-back at once (`sync_file_range`), so disk and file system work while the importer hashes; [`BatchWriter::commit`] then waits for everything with one
//! `syncfs`. A CID is handed out only after its add committed (see `store::add`), so every CID an
//! add returned survives `kill -9` and power loss.

use super::super::unixfs::BlockSink;
use cid::Cid;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A flatfs block store rooted at one directory: one file per block.
#[derive(Debug, Clone)]
pub struct FlatFs {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FlatFs {
    /// Opens (creating) the store and removes temp files an interrupted writer left behind.
    /// The caller holds the repo lock, so no live writer owns them.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        for shard in fs::read_dir(&root)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(shard.path())? {
                let f = f?;
                if f.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
        Ok(Self { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rust_ipfs::repo::paths::block_path`, which is private to rust-ipfs.
    pub fn path(&self, cid: &Cid) -> PathBuf {
        let key = if cid.version() == cid::Version::V1 {
            cid.to_string()
        } else {
            Cid::new_v1(cid.codec(), cid.hash().to_owned()).to_string()
        };
        let mut p = self.root.clone();
        match key.len().checked_sub(3) {
            Some(start) => p.push(&key[start..start + 2]),
            None => p.push("_"),
        }
        p.push(format!("{key}.data"));
        p
    }

    /// Whether the block `cid` is on disk here.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.path(cid).is_file()
    }

    /// The block `cid` read from disk, or `None` if it is not stored here.
    pub fn get(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>> {
        let mut f = match File::open(self.path(cid)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Vec::with_capacity(f.metadata()?.len() as usize);
        f.read_to_end(&mut buf)?;
        Ok(Some(buf))
    }

    /// Number of blocks and their total size (a directory walk; run it off the hot path).
    pub fn usage(&self) -> io::Result<(u64, u64)> {
        Self::usage_of(&self.root)
    }

    /// [`FlatFs::usage`] of the store at `root`.
    pub fn usage_of(root: &Path) -> io::Result<(u64, u64)> {
        let (mut n, mut bytes) = (0, 0);
        for shard in fs::read_dir(root)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(shard.path())? {
                let f = f?;
                if f.file_name().to_string_lossy().ends_with(".data") {
                    n += 1;
                    bytes += f.metadata()?.len();
                }
            }
        }
        Ok((n, bytes))
    }

    /// Starts one add's writer. The first [`INLINE_BYTES`] are written on the caller's
    /// thread, so a small add (an invocation's output) starts no thread. Past that, blocks go
    /// to [`WRITERS`] threads of their own, so hashing and encoding (the importer's thread)
    /// overlap with the file system's work: copying a block into the page cache costs more CPU
    /// than hashing it.
    pub fn writer(&self) -> BatchWriter<'_> {
        BatchWriter {
            fs: self,
            state: WriterState::Inline {
                bytes: 0,
                shards: HashSet::new(),
            },
            new_blocks: 0,
            new_bytes: 0,
        }
    }

    fn spawn_writers(&self) -> io::Result<WriterState> {
        let (mut txs, mut workers) = (Vec::new(), Vec::new());
        for i in 0..WRITERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Cid, Vec<u8>)>(WRITE_QUEUE);
            let fs = self.clone();
            let worker = std::thread::Builder::new()
                .name(format!("ipfaas-block-writer-{i}"))
                .spawn(move || -> io::Result<(u64, u64)> {
                    let (mut shards, mut blocks, mut bytes) = (HashSet::new(), 0, 0);
                    for (cid, data) in rx {
                        if fs.put(&cid, &data, &mut shards)? {
                            blocks += 1;
                            bytes += data.len() as u64;
                        }
                    }
                    Ok((blocks, bytes))
                });
            match worker {
                Ok(w) => {
                    txs.push(tx);
                    workers.push(w);
                }
                Err(e) => {
                    // the writers already started see their queues close and end
                    drop(txs);
                    for w in workers {
                        let _ = w.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(WriterState::Threads { txs, workers })
    }

    fn put(&self, cid: &Cid, data: &[u8], shards: &mut HashSet<PathBuf>) -> io::Result<bool> {
        let target = self.path(cid);
        if target.is_file() {
            return Ok(false);
        }
        let dir = target.parent().expect("block path has a shard directory");
        if !shards.contains(dir) {
            fs::create_dir_all(dir)?;
            shards.insert(dir.to_path_buf());
        }
        let mut tmp = target.clone().into_os_string();
        tmp.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = PathBuf::from(tmp);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            start_writeback(&f);
            fs::rename(&tmp, &target)
        };
        write().inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        Ok(true)
    }
}

fn start_writeback(f: &File) {
    // Advisory: failure only means the final syncfs has more to do.
    #[cfg(target_os = "linux")]
    // SAFETY: valid open fd; flags are a documented combination.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Blocks queued per writer thread (each up to a chunk, 1 MiB in the v1 profile).
const WRITE_QUEUE: usize = 8;

/// Writer threads per add. A block goes to the writer its CID picks, so a block repeated within
/// an add (runs of zeros, duplicate files) always meets the same writer, which finds it written.
const WRITERS: usize = 2;

/// Bytes of an add written on the importer's own thread before the writer threads start.
const INLINE_BYTES: u64 = 1 << 20;

/// Collects the blocks of one add; nothing is durable until [`BatchWriter::commit`].
pub struct BatchWriter<'a> {
    fs: &'a FlatFs,
    state: WriterState,
    /// Blocks and bytes that were new to the store; complete once the writes are finished.
    pub new_blocks: u64,
    /// Bytes of those new blocks.
    pub new_bytes: u64,
}

enum WriterState {
    /// Small so far: blocks are written by the caller.
    Inline {
        bytes: u64,
        shards: HashSet<PathBuf>,
    },
    /// One queue per writer thread.
    Threads {
        txs: Vec<std::sync::mpsc::SyncSender<(Cid, Vec<u8>)>>,
        workers: Vec<std::thread::JoinHandle<io::Result<(u64, u64)>>>,
    },
    /// Flushed or committed: no more blocks.
    Closed,
}

impl BatchWriter<'_> {
    /// Waits for the writer threads; the first I/O error, if any, is the add's error.
    fn finish_writes(&mut self) -> io::Result<()> {
        let WriterState::Threads { txs, workers } =
            std::mem::replace(&mut self.state, WriterState::Closed)
        else {
            return Ok(());
        };
        drop(txs);
        let mut first_err = None;
        for w in workers {
            match w.join() {
                Ok(Ok((blocks, bytes))) => {
                    self.new_blocks += blocks;
                    self.new_bytes += bytes;
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(io::Error::other("block writer thread panicked"));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes out every block put so far without waiting for the disk; a later
    /// [`sync_filesystem`] makes them durable.
    pub fn flush(&mut self) -> io::Result<()> {
        self.finish_writes()
    }

    /// Writes out every block put so far and makes them durable (data and directory entries)
    /// with one `syncfs`.
    pub fn commit(&mut self) -> io::Result<()> {
        self.finish_writes()?;
        if self.new_blocks == 0 {
            return Ok(());
        }
        sync_filesystem(self.fs.root())
    }
}

impl BlockSink for BatchWriter<'_> {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        if let WriterState::Inline { bytes, shards } = &mut self.state {
            if *bytes + data.len() as u64 <= INLINE_BYTES {
                *bytes += data.len() as u64;
                if self.fs.put(cid, data, shards)? {
                    self.new_blocks += 1;
                    self.new_bytes += data.len() as u64;
                }
                return Ok(());
            }
            self.state = self.fs.spawn_writers()?;
        }
        let sent = match &self.state {
            WriterState::Threads { txs, .. } => {
                // the digest's last byte: uniform, and the same for every copy of a block
                let pick = *cid.hash().digest().last().unwrap_or(&0) as usize % txs.len();
                txs[pick].send((*cid, data.to_vec())).is_ok()
            }
            _ => false,
        };
        if sent {
            return Ok(());
        }
        // the writer stopped, or the add was already flushed: report why
        self.finish_writes()?;
        Err(io::Error::other("block writer is closed"))
    }
}

impl Drop for BatchWriter<'_> {
    /// An abandoned add still waits for its writes, so nothing writes after the add returned.
    fn drop(&mut self) {
        let _ = self.finish_writes();
    }
}

/// Flushes the file system holding `path` (`syncfs` on Linux, `fsync` of the directory elsewhere).
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    #[cfg(target_os = "linux")]
    {
        // SAFETY: valid open fd.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    dir.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_rust_ipfs_flatfs() {
        // vector from rust-ipfs' own repo/paths.rs tests
        let fs = FlatFs {
            root: PathBuf::from("another_root"),
        };
        let v0: Cid = "QmTEn8ypAkbJXZUXCRHBorwF2jM8uTUW9yRLzrcQouSoD4"
            .parse()
            .unwrap();
        let v1: Cid = "bafybeicizfmyaovkw4pnrwpa4kcirzaveabyw4vsixt45mrrhr2xm2d5lm"
            .parse()
            .unwrap();
        let want = Path::new(
            "another_root/5l/bafybeicizfmyaovkw4pnrwpa4kcirzaveabyw4vsixt45mrrhr2xm2d5lm.data",
        );
        assert_eq!(fs.path(&v0), want);
        assert_eq!(fs.path(&v1), want);
    }

    #[test]
    fn put_get_dedup_and_stale_temp_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FlatFs::open(dir.path()).unwrap();
        let cid = Cid::new_v1(0x55, crate::unixfs::sha256(b"abc"));
        let mut w = fs.writer();
        w.put(&cid, b"abc").unwrap();
        w.put(&cid, b"abc").unwrap();
        w.commit().unwrap();
        assert_eq!((w.new_blocks, w.new_bytes), (1, 3));
        assert_eq!(fs.get(&cid).unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(fs.usage().unwrap(), (1, 3));
        let stale = fs.path(&cid).with_extension("data.1.2.tmp");
        std::fs::write(&stale, b"torn").unwrap();
        let fs = FlatFs::open(dir.path()).unwrap();
        assert!(!stale.exists());
        assert!(fs.get(&cid).unwrap().is_some());
        assert_eq!(fs.usage().unwrap(), (1, 3));
    }

    #[test]
    fn small_adds_stay_inline_and_large_ones_count_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FlatFs::open(dir.path()).unwrap();
        let blocks: Vec<(Cid, Vec<u8>)> = (0..8u8)
            .map(|i| {
                let data = vec![i; 256 << 10];
                (Cid::new_v1(0x55, crate::unixfs::sha256(&data)), data)
            })
            .collect();
        let mut w = fs.writer();
        for (cid, data) in &blocks[..4] {
            w.put(cid, data).unwrap();
        }
        assert!(matches!(w.state, WriterState::Inline { .. }));
        // repeats of inline blocks, then past the inline budget
        for (cid, data) in blocks[..4].iter().chain(&blocks) {
            w.put(cid, data).unwrap();
        }
        assert!(matches!(w.state, WriterState::Threads { .. }));
        w.commit().unwrap();
        assert_eq!((w.new_blocks, w.new_bytes), (8, 8 * (256 << 10)));
        for (cid, data) in &blocks {
            assert_eq!(fs.get(cid).unwrap().as_deref(), Some(&data[..]));
        }
        let (cid, data) = &blocks[0];
        let e = w.put(cid, data).unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
    }
}
