//! Small blocks read recently, kept in memory by CID: the directory nodes and file roots that
//! every invocation and every listing reads first. Reading one from disk costs a trip to a
//! blocking thread and a file open; from here it costs a lookup. A block never changes under its
//! CID, so an entry is never stale while the block is stored; a garbage collection clears the
//! cache. When the cache is full it starts over rather than
//! tracking recency: the entries that matter are read again at once.

use bytes::Bytes;
use cid::Cid;
use std::collections::HashMap;
use std::sync::Mutex;

/// Blocks up to this size are kept (a node of ~100 links, or a small file's only block).
pub const MAX_BLOCK: usize = 4 << 10;
/// Entries kept before the cache starts over (at most 16 MiB of blocks).
pub const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct SmallBlocks {
    map: Mutex<HashMap<Cid, Bytes>>,
}

impl SmallBlocks {
    pub fn get(&self, cid: &Cid) -> Option<Bytes> {
        self.lock().get(cid).cloned()
    }

    /// Keeps `data` if it is small enough to be worth it.
    pub fn put(&self, cid: &Cid, data: &Bytes) {
        if data.len() > MAX_BLOCK {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES && !map.contains_key(cid) {
            map.clear();
        }
        map.insert(*cid, data.clone());
    }

    /// Forgets every block (a garbage collection removed some).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, Bytes>> {
        // a panic while holding the lock cannot leave a half-made entry: keep using it
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(i: u32, len: usize) -> (Cid, Bytes) {
        let mut data = vec![0u8; len];
        data[..4].copy_from_slice(&i.to_le_bytes());
        (
            Cid::new_v1(0x55, crate::unixfs::sha256(&data)),
            Bytes::from(data),
        )
    }

    #[test]
    fn keeps_small_blocks_only_and_starts_over_when_full() {
        let c = SmallBlocks::default();
        let (small, small_data) = block(0, 100);
        let (big, big_data) = block(1, MAX_BLOCK + 1);
        c.put(&small, &small_data);
        c.put(&big, &big_data);
        assert_eq!(c.get(&small), Some(small_data.clone()));
        assert_eq!(c.get(&big), None);

        // filling it up clears everything older, then keeps going
        for i in 1..MAX_ENTRIES as u32 {
            let (cid, data) = block(i + 10, 8);
            c.put(&cid, &data);
        }
        assert_eq!(
            c.get(&small),
            Some(small_data.clone()),
            "full, not yet over"
        );
        let (next, next_data) = block(u32::MAX, 8);
        c.put(&next, &next_data);
        assert_eq!(c.get(&small), None);
        assert_eq!(c.get(&next), Some(next_data));
        // putting a block that is already there never clears
        c.put(&next, &block(u32::MAX, 8).1);
        assert_eq!(c.lock().len(), 1);
    }
}
