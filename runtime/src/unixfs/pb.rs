//! dag-pb (`PBNode`/`PBLink`) and UnixFS `Data` protobuf codec.
//!
//! Hand-written rather than generated: the two messages have eight scalar fields between them,
//! and the importer needs exact control over field presence and order to produce blocks that are
//! byte-identical to Kubo's (links before data, `Name` always present on links, `Data` omitted
//! for empty leaves, non-packed `blocksizes`). The decoder is strict about wire types and lengths
//! and never panics on malformed input.

use cid::Cid;
use std::fmt;

/// UnixFS node types (`unixfs.proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Bare bytes inside a dag-pb node (legacy); read like a file.
    Raw = 0,
    /// A basic directory: one link per entry.
    Directory = 1,
    /// A file or part of one: inline data and/or links to its chunks.
    File = 2,
    /// Legacy metadata wrapper; neither written nor read here.
    Metadata = 3,
    /// A symlink; `data` holds the target.
    Symlink = 4,
    /// A node of a HAMT-sharded directory.
    HamtShard = 5,
}

impl DataType {
    fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Raw,
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Metadata,
            4 => Self::Symlink,
            5 => Self::HamtShard,
            _ => return None,
        })
    }
}

/// The UnixFS `Data` message, borrowed from the block it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFs<'a> {
    /// `Type`: what the node is.
    pub kind: DataType,
    /// `Data`: file bytes, a symlink target, or a HAMT node's bitfield.
    pub data: Option<&'a [u8]>,
    /// `filesize`: total file bytes below this node.
    pub filesize: Option<u64>,
    /// `blocksizes`: file bytes below each link, in link order.
    pub blocksizes: Vec<u64>,
    /// `hashType`: the HAMT's hash function (murmur3-x64-64 here).
    pub hash_type: Option<u64>,
    /// `fanout`: the HAMT's width (256 here).
    pub fanout: Option<u64>,
}

impl<'a> UnixFs<'a> {
    /// A message of type `kind` with every other field absent.
    pub fn new(kind: DataType) -> Self {
        Self {
            kind,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
        }
    }

    /// Serializes the message, fields in tag order as Kubo writes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(16 + self.data.map_or(0, <[u8]>::len) + 4 * self.blocksizes.len());
        put_varint_field(&mut out, 1, self.kind as u64);
        if let Some(d) = self.data {
            put_bytes_field(&mut out, 2, d);
        }
        if let Some(s) = self.filesize {
            put_varint_field(&mut out, 3, s);
        }
        for b in &self.blocksizes {
            put_varint_field(&mut out, 4, *b);
        }
        if let Some(h) = self.hash_type {
            put_varint_field(&mut out, 5, h);
        }
        if let Some(f) = self.fanout {
            put_varint_field(&mut out, 6, f);
        }
        out
    }

    /// Parses a `Data` message; unknown fields are skipped, a missing type is an error.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut kind = None;
        let mut me = UnixFs::new(DataType::Raw);
        let mut r = Reader { buf, pos: 0 };
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, WIRE_VARINT) => {
                    kind = Some(
                        DataType::from_u64(r.varint()?)
                            .ok_or(DecodeError("unknown UnixFS type"))?,
                    )
                }
                (2, WIRE_LEN) => me.data = Some(r.bytes()?),
                (3, WIRE_VARINT) => me.filesize = Some(r.varint()?),
                (4, WIRE_VARINT) => me.blocksizes.push(r.varint()?),
                (4, WIRE_LEN) => {
                    // tolerate packed encoding from other writers
                    let mut p = Reader {
                        buf: r.bytes()?,
                        pos: 0,
                    };
                    while p.pos < p.buf.len() {
                        me.blocksizes.push(p.varint()?);
                    }
                }
                (5, WIRE_VARINT) => me.hash_type = Some(r.varint()?),
                (6, WIRE_VARINT) => me.fanout = Some(r.varint()?),
                _ => r.skip(wire)?,
            }
        }
        me.kind = kind.ok_or(DecodeError("UnixFS data without a type"))?;
        Ok(me)
    }
}

/// Writes the dag-pb file leaf `{Data: UnixFs{File, data, filesize}}` into `out` (cleared
/// first), with no intermediate buffer: the hot path of every dag-pb import, so `out` is meant to
/// be reused from leaf to leaf. Same bytes as `Node::encode(&[], Some(&fs.encode()))`.
pub fn encode_file_leaf(out: &mut Vec<u8>, data: &[u8]) {
    let n = data.len() as u64;
    let data_field = if data.is_empty() {
        0
    } else {
        1 + varint_len(n) + data.len()
    };
    let inner = 2 + data_field + 1 + varint_len(n);
    out.clear();
    out.reserve(1 + varint_len(inner as u64) + inner);
    out.push(1 << 3 | WIRE_LEN);
    put_varint(out, inner as u64);
    put_varint_field(out, 1, DataType::File as u64);
    if !data.is_empty() {
        put_bytes_field(out, 2, data);
    }
    put_varint_field(out, 3, n);
}

/// One `PBLink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `Hash`: the child's CID.
    pub cid: Cid,
    /// `Name`: the entry name in a directory; empty for file chunks.
    pub name: String,
    /// `Tsize`: cumulative size of the child's DAG.
    pub tsize: u64,
}

/// A decoded `PBNode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<'a> {
    /// `Links`, in block order.
    pub links: Vec<Link>,
    /// `Data`: the encoded UnixFS message, if any.
    pub data: Option<&'a [u8]>,
}

impl<'a> Node<'a> {
    /// Canonical dag-pb encoding: links first, then data.
    pub fn encode(links: &[Link], data: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.map_or(0, <[u8]>::len) + links.len() * 48 + 8);
        let mut scratch = Vec::with_capacity(64);
        for l in links {
            scratch.clear();
            put_bytes_field(&mut scratch, 1, &l.cid.to_bytes());
            put_bytes_field(&mut scratch, 2, l.name.as_bytes());
            put_varint_field(&mut scratch, 3, l.tsize);
            put_bytes_field(&mut out, 2, &scratch);
        }
        if let Some(d) = data {
            put_bytes_field(&mut out, 1, d);
        }
        out
    }

    /// Parses a `PBNode`, refusing any field dag-pb does not define.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut node = Node {
            links: Vec::new(),
            data: None,
        };
        let mut r = Reader { buf, pos: 0 };
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, WIRE_LEN) => node.data = Some(r.bytes()?),
                (2, WIRE_LEN) => node.links.push(decode_link(r.bytes()?)?),
                _ => return Err(DecodeError("unexpected field in PBNode")),
            }
        }
        Ok(node)
    }
}

fn decode_link(buf: &[u8]) -> Result<Link, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let (mut cid, mut name, mut tsize) = (None, String::new(), 0);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, WIRE_LEN) => {
                cid = Some(
                    Cid::try_from(r.bytes()?).map_err(|_| DecodeError("invalid CID in PBLink"))?,
                )
            }
            (2, WIRE_LEN) => {
                name = String::from_utf8(r.bytes()?.to_vec())
                    .map_err(|_| DecodeError("PBLink name is not UTF-8"))?
            }
            (3, WIRE_VARINT) => tsize = r.varint()?,
            _ => return Err(DecodeError("unexpected field in PBLink")),
        }
    }
    Ok(Link {
        cid: cid.ok_or(DecodeError("PBLink without a hash"))?,
        name,
        tsize,
    })
}

/// Why a block did not decode, in a few words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed dag-pb/UnixFS block: {}", self.0)
    }
}
impl std::error::Error for DecodeError {}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// Bytes a varint of `v` takes.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u8, v: u64) {
    out.push(field << 3 | WIRE_VARINT);
    put_varint(out, v);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    out.push(field << 3 | WIRE_LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(DecodeError("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }

    fn key(&mut self) -> Result<Option<(u64, u8)>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DecodeError("truncated field"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        let n = match wire {
            WIRE_VARINT => return self.varint().map(drop),
            WIRE_LEN => return self.bytes().map(drop),
            WIRE_I64 => 8,
            WIRE_I32 => 4,
            _ => return Err(DecodeError("unsupported wire type")),
        };
        if self.pos + n > self.buf.len() {
            return Err(DecodeError("truncated field"));
        }
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_and_dir_blocks_match_kubo_bytes() {
        let mut f = UnixFs::new(DataType::File);
        f.filesize = Some(0);
        assert_eq!(
            Node::encode(&[], Some(&f.encode())),
            [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]
        );
        let d = UnixFs::new(DataType::Directory);
        assert_eq!(
            Node::encode(&[], Some(&d.encode())),
            [0x0a, 0x02, 0x08, 0x01]
        );
    }

    #[test]
    fn leaf_encoder_matches_the_general_one() {
        let mut out = vec![9u8; 3];
        for len in [0usize, 1, 127, 128, 16_384, 262_144, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut fs = UnixFs::new(DataType::File);
            fs.data = (!data.is_empty()).then_some(&data[..]);
            fs.filesize = Some(len as u64);
            encode_file_leaf(&mut out, &data);
            assert_eq!(out, Node::encode(&[], Some(&fs.encode())), "len {len}");
        }
    }

    #[test]
    fn roundtrip_and_varint_len() {
        let cid: Cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
            .parse()
            .unwrap();
        let links = vec![
            Link {
                cid,
                name: "a b".into(),
                tsize: 300,
            },
            Link {
                cid,
                name: String::new(),
                tsize: 0,
            },
        ];
        let mut fs = UnixFs::new(DataType::File);
        fs.blocksizes = vec![1, 1 << 20];
        fs.filesize = Some((1 << 20) + 1);
        let data = fs.encode();
        let enc = Node::encode(&links, Some(&data));
        let dec = Node::decode(&enc).unwrap();
        assert_eq!(dec.links, links);
        assert_eq!(UnixFs::decode(dec.data.unwrap()).unwrap(), fs);
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[0x0a, 0x05, 0x08][..],
            &[0x12, 0x80],
            &[0xff; 11],
            &[0x1a, 0x00],
            &[0x12, 0x02, 0x18, 0x01],
        ] {
            assert!(Node::decode(bad).is_err(), "{bad:?}");
        }
        assert!(UnixFs::decode(&[0x08, 0x09]).is_err());
        assert!(UnixFs::decode(&[0x18, 0x01]).is_err());
    }
}
