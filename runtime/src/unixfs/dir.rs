//! Directory nodes: a basic (flat) directory, or a HAMT shard tree once the directory's estimated
//! size exceeds the profile's threshold — the rule boxo applies (`> threshold`, never `>=`).
//!
//! HAMT layout as boxo writes it: fanout 256, so each level consumes one byte of the entry name's
//! murmur3-x64-64 hash (the first 64 bits of murmur3 x64_128, big-endian); a slot holding two or
//! more names becomes a child shard; links are named with the slot index as two upper-case hex
//! digits, followed by the entry name for entries; the shard's data carries the occupied-slot
//! bitfield as a big-endian integer without leading zero bytes.

use super::pb::{DataType, Link, Node, UnixFs};
use super::{BlockSink, ImportOptions, Imported, SizeEstimation};
use std::collections::BTreeMap;
use std::io;

const HAMT_FANOUT: u64 = 256;
const MURMUR3_X64_64: u64 = 0x22;

/// Builds the directory node(s) for `entries` (name → imported child). Names must be unique
/// (guaranteed by the map) and valid path components (checked by the caller).
pub fn build<S: BlockSink>(
    entries: &BTreeMap<String, Imported>,
    opts: &ImportOptions,
    sink: &mut S,
) -> io::Result<Imported> {
    let links: Vec<Link> = entries
        .iter()
        .map(|(name, e)| Link {
            cid: e.cid,
            name: name.clone(),
            tsize: e.tsize,
        })
        .collect();
    let data = UnixFs::new(DataType::Directory).encode();
    let block = Node::encode(&links, Some(&data));
    let estimate = match opts.size_estimation {
        SizeEstimation::Links => links
            .iter()
            .map(|l| l.name.len() + l.cid.encoded_len())
            .sum(),
        SizeEstimation::Block => block.len(),
    };
    if estimate > opts.hamt_threshold {
        return hamt(links, opts, sink);
    }
    let cid = opts.pb_cid(&block);
    sink.put(&cid, &block)?;
    let tsize = block.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>();
    Ok(Imported {
        cid,
        tsize,
        size: 0,
    })
}

enum Slot {
    Entry(Link, [u8; 8]),
    Shard(Shard),
}

#[derive(Default)]
struct Shard {
    slots: BTreeMap<u8, Slot>,
}

pub(crate) fn name_hash(name: &str) -> [u8; 8] {
    // murmur3 x64_128 returns h1 in the low 64 bits; boxo uses h1 big-endian
    (fastmurmur3::hash(name.as_bytes()) as u64).to_be_bytes()
}

impl Shard {
    fn insert(&mut self, depth: usize, link: Link, hash: [u8; 8]) -> io::Result<()> {
        let idx = *hash.get(depth).ok_or_else(|| {
            io::Error::other(format!(
                "HAMT: 64-bit hash collision on directory entry {:?}",
                link.name
            ))
        })?;
        match self.slots.remove(&idx) {
            None => {
                self.slots.insert(idx, Slot::Entry(link, hash));
            }
            Some(Slot::Entry(other, other_hash)) => {
                let mut child = Shard::default();
                child.insert(depth + 1, other, other_hash)?;
                child.insert(depth + 1, link, hash)?;
                self.slots.insert(idx, Slot::Shard(child));
            }
            Some(Slot::Shard(mut child)) => {
                child.insert(depth + 1, link, hash)?;
                self.slots.insert(idx, Slot::Shard(child));
            }
        }
        Ok(())
    }

    fn write<S: BlockSink>(
        self,
        opts: &ImportOptions,
        sink: &mut S,
    ) -> io::Result<(cid::Cid, u64)> {
        let mut bitfield = [0u8; (HAMT_FANOUT / 8) as usize];
        let mut links = Vec::with_capacity(self.slots.len());
        for (idx, slot) in self.slots {
            bitfield[bitfield.len() - 1 - idx as usize / 8] |= 1 << (idx % 8);
            links.push(match slot {
                Slot::Entry(l, _) => Link {
                    name: format!("{idx:02X}{}", l.name),
                    ..l
                },
                Slot::Shard(child) => {
                    let (cid, tsize) = child.write(opts, sink)?;
                    Link {
                        cid,
                        name: format!("{idx:02X}"),
                        tsize,
                    }
                }
            });
        }
        let first = bitfield
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bitfield.len());
        let mut fs = UnixFs::new(DataType::HamtShard);
        fs.data = Some(&bitfield[first..]);
        fs.hash_type = Some(MURMUR3_X64_64);
        fs.fanout = Some(HAMT_FANOUT);
        let block = Node::encode(&links, Some(&fs.encode()));
        let cid = opts.pb_cid(&block);
        sink.put(&cid, &block)?;
        Ok((
            cid,
            block.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>(),
        ))
    }
}

fn hamt<S: BlockSink>(
    links: Vec<Link>,
    opts: &ImportOptions,
    sink: &mut S,
) -> io::Result<Imported> {
    let mut root = Shard::default();
    for l in links {
        let h = name_hash(&l.name);
        root.insert(0, l, h)?;
    }
    let (cid, tsize) = root.write(opts, sink)?;
    Ok(Imported {
        cid,
        tsize,
        size: 0,
    })
}
