//! CAR walks over DAGs whose subtrees repeat (files of repeated content share intermediate
//! nodes): a byte range must still bring every block that range needs, and the walk stays
//! bounded when a crafted DAG repeats a subtree many times.

mod common;
use bytes::Bytes;
use cid::Cid;
use common::*;
use futures::StreamExt;
use ipfaas_runtime::unixfs::ImportOptions;
use ipfaas_runtime::unixfs::car::{self, CarSpec, Scope};
use ipfaas_runtime::unixfs::pb::{DataType, UnixFs};
use ipfaas_runtime::unixfs::read::{self, BlockSource};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
struct Mem(Arc<HashMap<Cid, Bytes>>);

impl BlockSource for Mem {
    async fn block(&self, cid: &Cid) -> ipfaas_runtime::Result<Bytes> {
        self.0
            .get(cid)
            .cloned()
            .ok_or_else(|| ipfaas_runtime::Error::NotFound {
                cid: cid.to_string(),
                waited: std::time::Duration::ZERO,
                cause: None,
            })
    }
}

/// The blocks of a CAR stream, in order (the header skipped).
async fn sections(src: Mem, spec: CarSpec) -> Vec<(Cid, Bytes)> {
    let mut s = car::car(src, spec);
    let mut buf = Vec::new();
    while let Some(b) = s.next().await {
        buf.extend_from_slice(&b.unwrap());
    }
    let mut out = vec![];
    let mut r = &buf[..];
    let mut first = true;
    while !r.is_empty() {
        let (mut len, mut used) = (0u64, 0);
        while r[used] & 0x80 != 0 {
            len |= u64::from(r[used] & 0x7f) << (7 * used);
            used += 1;
        }
        len |= u64::from(r[used]) << (7 * used);
        let (section, rest) = r[used + 1..].split_at(len as usize);
        r = rest;
        if std::mem::take(&mut first) {
            continue;
        }
        let mut c = std::io::Cursor::new(section);
        let cid = Cid::read_bytes(&mut c).unwrap();
        out.push((
            cid,
            Bytes::copy_from_slice(&section[c.position() as usize..]),
        ));
    }
    out
}

async fn read_range(src: Mem, root: Cid, start: u64, len: u64) -> ipfaas_runtime::Result<Vec<u8>> {
    let mut s = read::cat(src, root, start, Some(len));
    let mut out = vec![];
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

fn spec(root: Cid, bytes: Option<std::ops::Range<u64>>, dups: bool) -> CarSpec {
    CarSpec {
        root,
        path: vec![],
        end: root,
        scope: Scope::Entity,
        bytes,
        dups,
    }
}

#[tokio::test]
async fn ranges_over_repeated_subtrees_bring_every_block_they_need() {
    // 64-byte chunks, 174 per inner node: a repeated 174-chunk unit makes every inner node the
    // same block, so each is met again at another offset
    let opts = ImportOptions::default()
        .with_cid_version(true)
        .with_chunker("size-64")
        .unwrap();
    let unit = ipfaas_testkit::rand_bytes(64 * 174, 5);
    let data: Vec<u8> = unit.iter().copied().cycle().take(unit.len() * 4).collect();
    let blocks = import_blocks(&data, &opts);
    let root = blocks.last().unwrap().0;
    let mem = Mem(Arc::new(
        blocks
            .into_iter()
            .map(|(c, b)| (c, Bytes::from(b)))
            .collect(),
    ));
    let n = data.len() as u64;
    for (a, b) in [
        (unit.len() as u64 / 2, unit.len() as u64 * 3 / 2),
        (100, n - 100),
        (n / 3, n / 3 + 1),
        (0, n),
    ] {
        let got = sections(mem.clone(), spec(root, Some(a..b), false)).await;
        let only = Mem(Arc::new(got.iter().cloned().collect()));
        assert_eq!(
            read_range(only, root, a, b - a).await.unwrap(),
            data[a as usize..b as usize],
            "{a}..{b}"
        );
        let mut cids: Vec<Cid> = got.iter().map(|(c, _)| *c).collect();
        let all = cids.len();
        cids.sort();
        cids.dedup();
        assert_eq!(cids.len(), all, "dups=n sent a block twice");
    }
}

#[tokio::test]
async fn a_crafted_diamond_dag_is_walked_once_per_distinct_node() {
    // 40 levels, each node linking its child twice: 2^40 paths, 41 distinct blocks
    let leaf = Bytes::from_static(b"0123456789abcdef");
    let leaf_cid = Cid::new_v1(0x55, ipfaas_runtime::unixfs::sha256(&leaf));
    let mut map = HashMap::from([(leaf_cid, leaf.clone())]);
    let (mut below, mut size) = (leaf_cid, leaf.len() as u64);
    for _ in 0..40 {
        let mut fs = UnixFs::new(DataType::File);
        fs.blocksizes = vec![size, size];
        fs.filesize = Some(size * 2);
        let (c, b) = pb_block(&[("", below), ("", below)], &fs);
        map.insert(c, Bytes::from(b));
        below = c;
        size *= 2;
    }
    let mem = Mem(Arc::new(map));
    // the whole file, and a range across its middle: each distinct block once
    for bytes in [None, Some(size / 2 - 5..size / 2 + 5)] {
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sections(mem.clone(), spec(below, bytes.clone(), false)),
        )
        .await
        .expect("the walk is bounded");
        assert_eq!(got.len(), 41, "{bytes:?}");
    }
}
