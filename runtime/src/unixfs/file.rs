//! Streaming file importer: fixed-size chunks laid out as Kubo's balanced DAG.
//!
//! Kubo builds the tree by repeatedly deepening a root; the result is the tree whose leaves fill
//! complete `max_links`-ary subtrees from the left, with every node on the right-most path an
//! internal node even when it has a single child. Building it bottom-up with one pending list per
//! level, flushing a level only when an item arrives for a full one, yields the same tree while
//! holding at most `max_links` links per level in memory.

use super::pb::{DataType, Link, Node, UnixFs};
use super::{BlockSink, ImportOptions, Imported, RAW, sha256};
use cid::Cid;
use std::io;

#[derive(Clone)]
struct Child {
    link: Link,
    /// File bytes below this child (`blocksizes` entry in the parent).
    size: u64,
}

/// Imports one file from bytes written in any pieces, putting each block into the sink as soon
/// as it is complete.
pub struct FileBuilder<'a, S: BlockSink> {
    opts: &'a ImportOptions,
    sink: &'a mut S,
    buf: Vec<u8>,
    levels: Vec<Vec<Child>>,
    total: u64,
    /// Reused for every dag-pb leaf: a fresh 256 KiB+ allocation per leaf costs more than hashing.
    leaf_block: Vec<u8>,
}

impl<'a, S: BlockSink> FileBuilder<'a, S> {
    /// An empty file, to be shaped by `opts` and stored in `sink`.
    pub fn new(opts: &'a ImportOptions, sink: &'a mut S) -> Self {
        Self {
            // grows to a chunk only if the data needs it: most invocation outputs are small
            buf: Vec::new(),
            opts,
            sink,
            levels: Vec::new(),
            total: 0,
            leaf_block: Vec::new(),
        }
    }

    /// Appends `data`, emitting a leaf (and any internal nodes it completes) per full chunk.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.total += data.len() as u64;
        let cs = self.opts.chunk_size;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= cs {
                // whole chunk straight from the caller's buffer
                let (chunk, rest) = data.split_at(cs);
                self.leaf(chunk)?;
                data = rest;
                continue;
            }
            let take = (cs - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == cs {
                let chunk = std::mem::take(&mut self.buf);
                self.leaf(&chunk)?;
                self.buf = chunk;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Writes everything `r` yields, calling `progress` with the running total after each read.
    /// Returns the total. Read sizes do not matter: leaves are cut at chunk boundaries regardless.
    pub fn write_from(
        &mut self,
        r: &mut impl io::Read,
        mut progress: impl FnMut(u64),
    ) -> io::Result<u64> {
        let mut buf = vec![0u8; self.opts.chunk_size.max(64 * 1024)];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(self.total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.write(&buf[..n])?;
            progress(self.total);
        }
    }

    /// Emits the last partial leaf and the right-most path, and returns the root. An empty
    /// file still gets a (empty) leaf; a one-chunk file is its leaf.
    pub fn finish(mut self) -> io::Result<Imported> {
        if !self.buf.is_empty() || self.levels.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.leaf(&chunk)?;
        }
        if self.levels.len() == 1 && self.levels[0].len() == 1 {
            let c = self.levels.pop().unwrap().pop().unwrap();
            return Ok(Imported {
                cid: c.link.cid,
                tsize: c.link.tsize,
                size: c.size,
            });
        }
        // close the right-most path bottom-up; a push may still deepen the tree
        let mut level = 0;
        while level + 1 < self.levels.len() {
            let children = std::mem::take(&mut self.levels[level]);
            let node = self.internal(children)?;
            self.push(level + 1, node)?;
            level += 1;
        }
        let children = std::mem::take(self.levels.last_mut().unwrap());
        let root = self.internal(children)?;
        Ok(Imported {
            cid: root.link.cid,
            tsize: root.link.tsize,
            size: root.size,
        })
    }

    fn leaf(&mut self, chunk: &[u8]) -> io::Result<()> {
        let child = if self.opts.raw_leaves {
            let cid = Cid::new_v1(RAW, sha256(chunk));
            self.sink.put(&cid, chunk)?;
            Child {
                link: Link {
                    cid,
                    name: String::new(),
                    tsize: chunk.len() as u64,
                },
                size: chunk.len() as u64,
            }
        } else {
            super::pb::encode_file_leaf(&mut self.leaf_block, chunk);
            let cid = self.opts.pb_cid(&self.leaf_block);
            self.sink.put(&cid, &self.leaf_block)?;
            let tsize = self.leaf_block.len() as u64;
            Child {
                link: Link {
                    cid,
                    name: String::new(),
                    tsize,
                },
                size: chunk.len() as u64,
            }
        };
        self.push(0, child)
    }

    fn push(&mut self, level: usize, child: Child) -> io::Result<()> {
        if self.levels.len() == level {
            self.levels.push(Vec::with_capacity(self.opts.max_links));
        }
        if self.levels[level].len() == self.opts.max_links {
            let full = std::mem::replace(
                &mut self.levels[level],
                Vec::with_capacity(self.opts.max_links),
            );
            let node = self.internal(full)?;
            self.push(level + 1, node)?;
        }
        self.levels[level].push(child);
        Ok(())
    }

    fn internal(&mut self, children: Vec<Child>) -> io::Result<Child> {
        let mut fs = UnixFs::new(DataType::File);
        fs.blocksizes = children.iter().map(|c| c.size).collect();
        let size: u64 = fs.blocksizes.iter().sum();
        fs.filesize = Some(size);
        let links: Vec<Link> = children.into_iter().map(|c| c.link).collect();
        let block = Node::encode(&links, Some(&fs.encode()));
        let cid = self.opts.pb_cid(&block);
        self.sink.put(&cid, &block)?;
        let tsize = block.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>();
        Ok(Child {
            link: Link {
                cid,
                name: String::new(),
                tsize,
            },
            size,
        })
    }
}

/// Imports `data` as one file.
pub fn import_bytes<S: BlockSink>(
    data: &[u8],
    opts: &ImportOptions,
    sink: &mut S,
) -> io::Result<Imported> {
    let mut b = FileBuilder::new(opts, sink);
    b.write(data)?;
    b.finish()
}
