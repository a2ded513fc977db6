//! Crafted blocks, as a peer could send them: a small dag-pb / UnixFS encoder whose blocks go
//! into a real store as they are, plus a store on a scratch repo.
#![allow(dead_code)]

use cid::Cid;
use ipfaas_runtime::store::add::AddOptions;
use ipfaas_runtime::unixfs::file::import_bytes;
use ipfaas_runtime::unixfs::pb::{DataType, Link, Node, UnixFs};
use ipfaas_runtime::unixfs::{BlockSink, ImportOptions, sha256, symlink};
use ipfaas_runtime::{Error, Store, StoreConfig};

/// The dag-pb codec.
pub const DAG_PB: u64 = 0x70;

/// A dag-pb block with exactly these named links, in this order (duplicates too), and `fs`.
pub fn pb_block(links: &[(&str, Cid)], fs: &UnixFs) -> (Cid, Vec<u8>) {
    let links: Vec<Link> = links
        .iter()
        .map(|(name, cid)| Link {
            cid: *cid,
            name: name.to_string(),
            tsize: 0,
        })
        .collect();
    let block = Node::encode(&links, Some(&fs.encode()));
    (Cid::new_v1(DAG_PB, sha256(&block)), block)
}

/// A basic UnixFS directory block with exactly these links.
pub fn dir_block(links: &[(&str, Cid)]) -> (Cid, Vec<u8>) {
    pb_block(links, &UnixFs::new(DataType::Directory))
}

/// Puts crafted blocks into the store as they are, unpinned (as blocks fetched from a peer).
pub async fn put_blocks(store: &Store, blocks: Vec<(Cid, Vec<u8>)>) {
    store
        .add(
            AddOptions {
                pin: false,
                ..Default::default()
            },
            move |a| {
                for (cid, block) in &blocks {
                    a.sink().put(cid, block)?;
                }
                // an add must add something by name
                a.file("anchor", &mut &b"x"[..], |_| {}).map(drop)
            },
        )
        .await
        .unwrap();
}

/// The blocks of a file as an add makes them.
pub fn import_blocks(data: &[u8], opts: &ImportOptions) -> Vec<(Cid, Vec<u8>)> {
    let mut sink = Collect(Vec::new());
    import_bytes(data, opts, &mut sink).unwrap();
    sink.0
}

/// The block of a symlink.
pub fn symlink_block(target: &str, opts: &ImportOptions) -> (Cid, Vec<u8>) {
    let mut sink = Collect(Vec::new());
    symlink(target, opts, &mut sink).unwrap();
    sink.0.pop().unwrap()
}

/// A sink that keeps every block.
pub struct Collect(pub Vec<(Cid, Vec<u8>)>);
impl BlockSink for Collect {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        self.0.push((*cid, data.to_vec()));
        Ok(())
    }
}

/// A store on a repo under `dir`, with no network.
pub async fn open(dir: &std::path::Path) -> Store {
    Store::open(
        StoreConfig::offline(dir.join("repo")),
        &prometheus::Registry::new(),
    )
    .await
    .unwrap()
}
/// A file node with these links (and their claimed sizes), data and declared `filesize`.
pub fn file_block(links: &[(Cid, u64)], data: &[u8], filesize: u64) -> (Cid, Vec<u8>) {
    let mut fs = UnixFs::new(DataType::File);
    fs.data = (!data.is_empty()).then_some(data);
    fs.filesize = Some(filesize);
    fs.blocksizes = links.iter().map(|(_, s)| *s).collect();
    let links: Vec<Link> = links
        .iter()
        .map(|(cid, s)| Link {
            cid: *cid,
            name: String::new(),
            tsize: *s,
        })
        .collect();
    let block = Node::encode(&links, Some(&fs.encode()));
    (Cid::new_v1(DAG_PB, sha256(&block)), block)
}

/// Reads a whole stream of the store, or its first error.
pub async fn read_all(store: &Store, cid: Cid) -> Result<Vec<u8>, Error> {
    use futures::TryStreamExt;
    let (_, s) = store.cat(cid, 0, None).await?;
    let chunks: Vec<bytes::Bytes> = s.try_collect().await?;
    Ok(chunks.concat())
}
/// A HAMT shard block (fanout 256, murmur3) with exactly these links.
pub fn hamt_block(links: &[(&str, Cid)]) -> (Cid, Vec<u8>) {
    let mut fs = UnixFs::new(DataType::HamtShard);
    fs.fanout = Some(256);
    fs.hash_type = Some(0x22);
    let bitfield = [0xffu8; 32];
    fs.data = Some(&bitfield);
    pb_block(links, &fs)
}
