//! The links of a block whatever its codec: what a whole-DAG walk (a CAR export with
//! `dag-scope=all`) follows. dag-pb links come from the node; dag-cbor links are tag 42 byte
//! strings, found by a flat scan of the item headers (no recursion, so a block nested a million
//! levels deep costs a loop, not the stack); dag-json links are `{"/": "<cid>"}` objects
//! (serde_json stops at 128 levels). Raw blocks and unknown codecs have none.

use super::pb::Node;
use cid::Cid;

/// Multicodec of dag-cbor blocks.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec of dag-json blocks.
pub const DAG_JSON: u64 = 0x0129;

/// The CIDs `block` links to, in block order; `Err` when the block does not decode as its codec.
pub fn links(cid: &Cid, block: &[u8]) -> Result<Vec<Cid>, String> {
    match cid.codec() {
        super::DAG_PB => Node::decode(block)
            .map(|n| n.links.into_iter().map(|l| l.cid).collect())
            .map_err(|e| e.to_string()),
        DAG_CBOR => cbor_links(block),
        DAG_JSON => json_links(block),
        _ => Ok(Vec::new()),
    }
}

/// Tag-42 links of a dag-cbor block (each a byte string: a 0x00 prefix, then the binary CID).
fn cbor_links(mut b: &[u8]) -> Result<Vec<Cid>, String> {
    let mut out = Vec::new();
    let mut link_next = false;
    while !b.is_empty() {
        let (major, arg, rest) = head(b)?;
        b = rest;
        let is_link = std::mem::take(&mut link_next);
        match major {
            // byte and text strings: skip their bytes
            2 | 3 => {
                let n = usize::try_from(arg)
                    .ok()
                    .filter(|n| *n <= b.len())
                    .ok_or("a string runs past the block's end")?;
                if is_link {
                    if major != 2 || n == 0 || b[0] != 0 {
                        return Err("tag 42 on something other than a CID".into());
                    }
                    let cid = Cid::try_from(&b[1..n]).map_err(|e| format!("a bad link: {e}"))?;
                    out.push(cid);
                }
                b = &b[n..];
            }
            6 => link_next = arg == 42,
            // integers, array and map heads (their items follow inline), simple values, floats
            _ if is_link => return Err("tag 42 on something other than a CID".into()),
            _ => {}
        }
    }
    if link_next {
        return Err("the block ends after a tag".into());
    }
    Ok(out)
}

/// One CBOR item head: (major type, argument, the rest). Indefinite lengths are refused, as
/// dag-cbor does; a float's or simple value's bytes are its argument.
fn head(b: &[u8]) -> Result<(u8, u64, &[u8]), String> {
    let (&first, rest) = b.split_first().ok_or("empty item")?;
    let (major, info) = (first >> 5, first & 0x1f);
    let width = match info {
        0..=23 => return Ok((major, u64::from(info), rest)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return Err(format!("CBOR additional info {info} is not dag-cbor")),
    };
    if rest.len() < width {
        return Err("an item head runs past the block's end".into());
    }
    let arg = rest[..width]
        .iter()
        .fold(0u64, |a, &x| (a << 8) | u64::from(x));
    Ok((major, arg, &rest[width..]))
}

/// `{"/": "<cid>"}` links of a dag-json block, walked without recursion.
fn json_links(block: &[u8]) -> Result<Vec<Cid>, String> {
    let v: serde_json::Value = serde_json::from_slice(block).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut stack = vec![&v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(m) => {
                if let (1, Some(serde_json::Value::String(s))) = (m.len(), m.get("/")) {
                    out.push(s.parse().map_err(|e| format!("a bad link {s:?}: {e}"))?);
                } else {
                    stack.extend(m.values().rev());
                }
            }
            serde_json::Value::Array(a) => stack.extend(a.iter().rev()),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipld_core::ipld::Ipld;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn cid_of(n: u8) -> Cid {
        Cid::new_v1(0x55, super::super::sha256(&[n]))
    }

    /// Every link of `v`, in the order dag-cbor writes them (map keys sorted by length, then
    /// bytes), as the reference: serde_ipld_dagcbor's own encoder.
    fn reference_links(v: &Ipld, out: &mut Vec<Cid>) {
        match v {
            Ipld::Link(c) => out.push(*c),
            Ipld::List(l) => l.iter().for_each(|x| reference_links(x, out)),
            Ipld::Map(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
                for k in keys {
                    reference_links(&m[k], out);
                }
            }
            _ => {}
        }
    }

    fn ipld() -> impl Strategy<Value = Ipld> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(|i| Ipld::Integer(i.into())),
            any::<bool>().prop_map(Ipld::Bool),
            Just(Ipld::Null),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Ipld::Float),
            ".{0,40}".prop_map(Ipld::String),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Ipld::Bytes),
            any::<u8>().prop_map(|n| Ipld::Link(cid_of(n))),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Ipld::List),
                proptest::collection::btree_map(".{0,12}", inner, 0..8)
                    .prop_map(|m: BTreeMap<String, Ipld>| Ipld::Map(m)),
            ]
        })
    }

    proptest! {
        #[test]
        fn cbor_links_match_the_reference_encoder(v in ipld()) {
            let block = serde_ipld_dagcbor::to_vec(&v).unwrap();
            let mut want = Vec::new();
            reference_links(&v, &mut want);
            let cid = Cid::new_v1(DAG_CBOR, super::super::sha256(&block));
            prop_assert_eq!(links(&cid, &block).unwrap(), want);
        }

        #[test]
        fn json_links_match_the_reference_encoder(v in ipld()) {
            let block = serde_ipld_dagjson::to_vec(&v).unwrap();
            let mut want = Vec::new();
            reference_links(&v, &mut want);
            want.sort();
            let cid = Cid::new_v1(DAG_JSON, super::super::sha256(&block));
            let mut got = links(&cid, &block).unwrap();
            got.sort();
            prop_assert_eq!(got, want);
        }

        /// Whatever the bytes, the scan answers (no panic, no overflow).
        #[test]
        fn any_bytes_are_scanned_safely(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let cid = Cid::new_v1(DAG_CBOR, super::super::sha256(&b));
            let _ = links(&cid, &b);
        }
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        // a million nested one-element arrays around a link
        let link = serde_ipld_dagcbor::to_vec(&Ipld::Link(cid_of(1))).unwrap();
        let mut b = vec![0x81u8; 1 << 20];
        b.extend_from_slice(&link);
        let cid = Cid::new_v1(DAG_CBOR, super::super::sha256(&b));
        assert_eq!(links(&cid, &b).unwrap(), vec![cid_of(1)]);
        // dag-json: serde_json refuses past its depth limit, with an error
        let deep = "[".repeat(100_000);
        let cid = Cid::new_v1(DAG_JSON, super::super::sha256(deep.as_bytes()));
        assert!(links(&cid, deep.as_bytes()).is_err());
    }
}
