//! Publishing outputs with group commit. An invocation's output, `/outputs` directory and logs
//! are stored in one add without waiting for the disk, and its answer goes out at once; a
//! committer makes them durable at most every [`COMMIT_INTERVAL`], with one `syncfs` for every
//! block written since, then pins, then result cache records (a record never points at blocks a
//! crash could lose).

use super::cache::CacheRecord;
use crate::error::{Result, io_err};
use crate::executor::{Produced, Publish, Published};
use crate::store::Store;
use crate::store::add::AddOptions;
use cid::Cid;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long outputs may wait for the group commit that makes them durable.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// Published but not yet durable: its blocks, pins and cache record wait for a group commit.
struct Pending {
    cids: Vec<Cid>,
    record: Option<(PathBuf, CacheRecord)>,
}

/// Stores outputs and commits them in groups.
pub(crate) struct Publisher {
    store: Store,
    pending: Mutex<Vec<Pending>>,
    /// Records of the batch a commit is writing: still answered from here until they are on
    /// disk (a repeat arriving during the commit's sync would otherwise miss the cache).
    committing: Mutex<Vec<(PathBuf, CacheRecord)>>,
    flush_now: Arc<tokio::sync::Notify>,
}

impl Publisher {
    /// A publisher with its committer task, which ends once the publisher is dropped.
    pub fn start(store: Store) -> Arc<Self> {
        let this = Arc::new(Self {
            store,
            pending: Mutex::new(Vec::new()),
            committing: Mutex::new(Vec::new()),
            flush_now: Arc::new(tokio::sync::Notify::new()),
        });
        // the group committer: wakes on new outputs, commits at most every COMMIT_INTERVAL
        let weak = Arc::downgrade(&this);
        let wake = this.flush_now.clone();
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                tokio::time::sleep(COMMIT_INTERVAL).await;
                let Some(this) = weak.upgrade() else { return };
                if let Err(e) = this.commit().await {
                    tracing::error!("group commit of invocation outputs failed: {e}");
                }
            }
        });
        this
    }

    /// A [`Publish`] for one invocation; `record` is where its result cache record goes (none
    /// for functions that are not cached).
    pub fn for_invocation(self: &Arc<Self>, record: Option<PathBuf>) -> Publish {
        let this = self.clone();
        Box::new(move |p: Produced<'_>| this.publish(p, record))
    }

    /// Stores what a function produced in one add, without waiting for the disk; returns the
    /// CIDs and queues them for the next group commit. Blocking (file I/O).
    fn publish(&self, p: Produced<'_>, record: Option<PathBuf>) -> Result<Published> {
        let outputs = match p.outputs {
            Some(dir) if std::fs::read_dir(dir)?.next().is_some() => Some(dir),
            _ => None,
        };
        let opts = AddOptions {
            pin: false,
            durable: false,
            ..AddOptions::default()
        };
        let out = self.store.add_blocking(opts, |a| {
            a.bytes("output", p.body)?;
            if !p.logs.is_empty() {
                a.bytes("logs", p.logs)?;
            }
            if let Some(dir) = outputs {
                a.local(dir, "outputs", true, true, &mut |_, _| {})?;
            }
            Ok(())
        })?;
        let root = |name: &str| out.roots.iter().find(|r| r.path == name).map(|r| r.cid);
        let output = root("output").ok_or_else(|| io_err("no output root"))?;
        let (outputs_cid, logs_cid) = (root("outputs"), root("logs"));
        let published = Published {
            output: output.to_string(),
            outputs: outputs_cid.map(|c| c.to_string()),
            logs: logs_cid.map(|c| c.to_string()),
        };
        let cids: Vec<Cid> = [Some(output), outputs_cid, logs_cid]
            .into_iter()
            .flatten()
            .collect();
        let record = record.map(|path| (path, CacheRecord::new(&published, p.content_type)));
        self.pending.lock().unwrap().push(Pending { cids, record });
        self.flush_now.notify_one();
        Ok(published)
    }

    /// Queues blocks stored without waiting for the disk (a raw request body, say) for the next
    /// group commit, which syncs and then pins them. Until then they are safe from garbage
    /// collection (an add that did not pin keeps its roots in the store's unpinned set).
    pub fn commit_later(&self, cids: Vec<Cid>) {
        self.pending
            .lock()
            .unwrap()
            .push(Pending { cids, record: None });
        self.flush_now.notify_one();
    }

    /// The record waiting for its commit at `path`, if any.
    pub fn pending_record(&self, path: &std::path::Path) -> Option<CacheRecord> {
        let queued = {
            let pending = self.pending.lock().unwrap();
            pending
                .iter()
                .rev()
                .filter_map(|p| p.record.as_ref())
                .find(|(p, _)| p == path)
                .map(|(_, r)| r.clone())
        };
        queued.or_else(|| {
            let committing = self.committing.lock().unwrap();
            committing
                .iter()
                .rev()
                .find(|(p, _)| p == path)
                .map(|(_, r)| r.clone())
        })
    }

    /// One group commit: a `syncfs` for every block written, then pins, then cache records.
    pub async fn commit(&self) -> Result<()> {
        // the batch's records move to `committing` under the same lock, so a lookup always
        // finds them in one of the two until they are written
        let (batch, records) = {
            let mut pending = self.pending.lock().unwrap();
            let batch: Vec<Pending> = std::mem::take(&mut *pending);
            let records: Vec<(PathBuf, CacheRecord)> =
                batch.iter().filter_map(|p| p.record.clone()).collect();
            self.committing
                .lock()
                .unwrap()
                .extend(records.iter().cloned());
            (batch, records)
        };
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.commit_batch(batch).await;
        let mut committing = self.committing.lock().unwrap();
        for (path, _) in &records {
            if let Some(i) = committing.iter().position(|(p, _)| p == path) {
                committing.remove(i);
            }
        }
        result
    }

    async fn commit_batch(&self, batch: Vec<Pending>) -> Result<()> {
        let cids: Vec<Cid> = batch.iter().flat_map(|p| p.cids.iter().copied()).collect();
        if let Err(e) = self.store.sync_and_pin(cids).await {
            // keep the batch (and its records out of the cache) for the next commit
            let mut pending = self.pending.lock().unwrap();
            let newer = std::mem::replace(&mut *pending, batch);
            pending.extend(newer);
            return Err(e);
        }
        // the blocks are durable; a torn record after a crash is unreadable and ignored
        for p in batch {
            if let Some((path, rec)) = p.record {
                rec.write(&path)?;
            }
        }
        Ok(())
    }
}

impl Drop for Publisher {
    /// Lets the group committer see that it is the last one left, and stop.
    fn drop(&mut self) {
        self.flush_now.notify_one();
    }
}
