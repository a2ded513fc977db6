//! A file reader tells its block source what it will read next (`BlockSource::prefetch`), so a
//! source that fetches from peers overlaps the round trips: every block after the first is
//! hinted before it is read, the hinted blocks not yet read stay within a window (about
//! `READ_AHEAD` stack entries), and no hint names a block the range does not need.

mod common;
use bytes::Bytes;
use cid::Cid;
use common::*;
use futures::StreamExt;
use ipfaas_runtime::unixfs::ImportOptions;
use ipfaas_runtime::unixfs::read::{self, BlockSource, READ_AHEAD};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Hint(Cid),
    Read(Cid),
}

/// Blocks in memory, recording hints and reads in order.
#[derive(Clone)]
struct Recording {
    blocks: Arc<HashMap<Cid, Bytes>>,
    log: Arc<Mutex<Vec<Event>>>,
}

impl BlockSource for Recording {
    async fn block(&self, cid: &Cid) -> ipfaas_runtime::Result<Bytes> {
        self.log.lock().unwrap().push(Event::Read(*cid));
        Ok(self.blocks[cid].clone())
    }

    fn prefetch(&self, cids: &[Cid]) {
        let mut log = self.log.lock().unwrap();
        log.extend(cids.iter().map(|c| Event::Hint(*c)));
    }
}

#[tokio::test]
async fn hints_run_ahead_of_the_reader_within_the_window_and_the_range() {
    // 64-byte chunks: 3,000 leaves under a two-level tree (174 links per node)
    let opts = ImportOptions::default()
        .with_cid_version(true)
        .with_chunker("size-64")
        .unwrap();
    let data = ipfaas_testkit::rand_bytes(64 * 3000, 11);
    let blocks = import_blocks(&data, &opts);
    let root = blocks.last().unwrap().0;
    let map: HashMap<Cid, Bytes> = blocks
        .into_iter()
        .map(|(c, b)| (c, Bytes::from(b)))
        .collect();
    let blocks = Arc::new(map);
    for (start, len) in [
        (0u64, None),
        (64 * 1000 + 5, Some(64 * 700)),
        (100, Some(10)),
        (64 * 2990, None),
    ] {
        let src = Recording {
            blocks: blocks.clone(),
            log: Default::default(),
        };
        let mut s = read::cat(src.clone(), root, start, len);
        let mut got = vec![];
        while let Some(b) = s.next().await {
            got.extend_from_slice(&b.unwrap());
        }
        let end = len.map_or(data.len(), |l| (start + l) as usize);
        assert_eq!(got, data[start as usize..end], "{start} {len:?}");

        let log = src.log.lock().unwrap().clone();
        let reads: Vec<Cid> = log
            .iter()
            .filter_map(|e| match e {
                Event::Read(c) => Some(*c),
                _ => None,
            })
            .collect();
        let position: HashMap<Cid, usize> =
            reads.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let mut hinted = std::collections::HashSet::new();
        let mut outstanding = std::collections::HashSet::new();
        let mut done = 0usize;
        for e in &log {
            match e {
                Event::Hint(c) => {
                    // only blocks this read goes on to need, not yet read
                    let at = *position
                        .get(c)
                        .unwrap_or_else(|| panic!("hinted {c}, which the read never needs"));
                    assert!(at >= done, "hinted {c} after it was read");
                    hinted.insert(*c);
                    outstanding.insert(*c);
                    // a window of READ_AHEAD stack entries: the blocks in flight are bounded
                    // (leaves ahead, plus the inner nodes waiting under them)
                    assert!(
                        outstanding.len() <= 2 * READ_AHEAD,
                        "{} hinted blocks not yet read",
                        outstanding.len()
                    );
                }
                Event::Read(c) => {
                    // every block but the root was hinted before its read
                    if done > 0 {
                        assert!(hinted.contains(c), "read {c} (#{done}) without a hint");
                    }
                    outstanding.remove(c);
                    done += 1;
                }
            }
        }
        assert_eq!(hinted.len() + 1, reads.len());
    }
}
