//! The IPFS Trustless Gateway (`?format=raw|car`, `Accept: application/vnd.ipld.*`), checked
//! the way its clients check it: every CAR is decoded with third-party libraries from PyPI
//! (`dag-cbor`, `multiformats` hashing each block against its CID), and what the blocks
//! hold is compared with the bytes that were added. Which blocks a scope or a byte range must
//! bring is computed here from the chunk size, not taken from the node.

mod common;

use bytes::Bytes;
use cid::Cid;
use common::*;
use ipfaas_runtime::unixfs::read::{self, BlockSource};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kubo's default chunk size, which the node's adds use.
const CHUNK: u64 = 262_144;

/// Decodes CAR files and hashes each block with `multiformats`: one JSON object per file,
/// `{"roots": [...], "blocks": [[cid, hex, verified], ...]}`. The header is decoded by
/// `dag_cbor` and each section's CID by `multiformats` (`ipld_car.decode`, which does both for
/// CIDv1, misreads CIDv0 sections in 0.0.1: it does not skip the digest's length byte).
const DECODE: &str = r#"
import json, sys, dag_cbor
from multiformats import CID, varint
out = []
for path in sys.argv[1:]:
    buf = open(path, "rb").read()
    n, k, _ = varint.decode_raw(buf)
    header = dag_cbor.decode(buf[k:k + n])
    assert header["version"] == 1, header
    i, blocks = k + n, []
    while i < len(buf):
        n, k, _ = varint.decode_raw(buf[i:])
        section, i = buf[i + k:i + k + n], i + k + n
        assert len(section) == n, "a section runs past the end"
        if section[:2] == b"\x12\x20":
            cid_len = 34
        else:
            _, a, _ = varint.decode_raw(section)
            _, b, _ = varint.decode_raw(section[a:])
            _, c, _ = varint.decode_raw(section[a + b:])
            dlen, d, _ = varint.decode_raw(section[a + b + c:])
            cid_len = a + b + c + d + dlen
        cid, data = CID.decode(section[:cid_len]), section[cid_len:]
        blocks.append([str(cid), data.hex(), cid.hashfun.digest(data) == cid.digest])
    out.append({"roots": [str(r) for r in header["roots"]], "blocks": blocks})
print(json.dumps(out))
"#;

fn python() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("car-reader-venv");
    ipfaas_testkit::python::venv(&dir, &["multiformats==0.3.1.post4", "dag-cbor==0.3.3"])
}

/// A CAR as its client sees it.
#[derive(Debug)]
struct Car {
    roots: Vec<Cid>,
    blocks: Vec<(Cid, Bytes)>,
}

impl Car {
    fn cids(&self) -> Vec<Cid> {
        self.blocks.iter().map(|(c, _)| *c).collect()
    }

    /// The blocks as a source the node's own UnixFS reader can read a DAG from.
    fn source(&self) -> Blocks {
        Blocks(Arc::new(self.blocks.iter().cloned().collect()))
    }
}

/// Decodes and verifies CAR bodies with the third-party reader.
fn decode(bodies: &[Bytes]) -> Vec<Car> {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = vec![];
    for (i, b) in bodies.iter().enumerate() {
        let p = dir.path().join(format!("{i}.car"));
        std::fs::write(&p, b).unwrap();
        paths.push(p);
    }
    let out = run_ok(
        std::process::Command::new(python())
            .arg("-c")
            .arg(DECODE)
            .args(&paths),
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|c| Car {
            roots: c["roots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().parse().unwrap())
                .collect(),
            blocks: c["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let cid: Cid = b[0].as_str().unwrap().parse().unwrap();
                    assert_eq!(b[2], true, "block {cid} does not match its CID");
                    let data = (0..b[1].as_str().unwrap().len() / 2)
                        .map(|i| u8::from_str_radix(&b[1].as_str().unwrap()[2 * i..2 * i + 2], 16))
                        .collect::<Result<Vec<u8>, _>>()
                        .unwrap();
                    (cid, Bytes::from(data))
                })
                .collect(),
        })
        .collect()
}

/// Blocks received in a CAR, and nothing else.
#[derive(Clone)]
struct Blocks(Arc<HashMap<Cid, Bytes>>);

impl BlockSource for Blocks {
    async fn block(&self, cid: &Cid) -> ipfaas_runtime::Result<Bytes> {
        self.0
            .get(cid)
            .cloned()
            .ok_or_else(|| ipfaas_runtime::Error::NotFound {
                cid: cid.to_string(),
                waited: std::time::Duration::ZERO,
                cause: Some("not in the CAR".into()),
            })
    }
}

async fn read_all(src: &Blocks, cid: Cid, offset: u64, len: Option<u64>) -> Vec<u8> {
    use futures::StreamExt;
    let mut s = read::cat(src.clone(), cid, offset, len);
    let mut out = vec![];
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

/// GET `/ipfs/{path}` with an optional `Accept`; the response.
async fn get(s: &Server, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut r = client().get(format!("{}/ipfs/{path}", s.url));
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    r.send().await.unwrap()
}

/// GET a CAR, asserting a 200 with the CAR media type; (content type, body).
async fn car_body(s: &Server, path: &str, accept: Option<&str>) -> (String, Bytes) {
    let r = get(s, path, accept).await;
    assert_eq!(r.status(), 200, "{path}");
    let ct = header(&r, "content-type");
    assert!(
        ct.starts_with("application/vnd.ipld.car; version=1; order=dfs; dups="),
        "{ct}"
    );
    assert!(header(&r, "content-disposition").starts_with("attachment; filename=\""));
    (ct, r.bytes().await.unwrap())
}

async fn error_status(s: &Server, path: &str, accept: Option<&str>) -> (u16, String) {
    let r = get(s, path, accept).await;
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (st, v["error"].as_str().unwrap_or("").to_string())
}

fn cid(s: &str) -> Cid {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_blocks_and_whole_cars_verify_and_hold_what_was_added() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let data = rand_bytes(3 * CHUNK as usize + 1234, 7);
    for query in ["", "cid-version=1&raw-leaves=true"] {
        let root = add_cid(&s, query, &[("f", &data)]).await;

        // raw: the root block, by format or by Accept, whose hash is the CID's
        for (q, accept) in [
            ("?format=raw", None),
            ("", Some("application/vnd.ipld.raw")),
        ] {
            let r = get(&s, &format!("{root}{q}"), accept).await;
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "content-type"), "application/vnd.ipld.raw");
            assert_eq!(
                header(&r, "content-disposition"),
                format!("attachment; filename=\"{root}.bin\"")
            );
            assert_eq!(header(&r, "x-content-type-options"), "nosniff");
            let body = r.bytes().await.unwrap();
            assert_eq!(
                cid(&root).hash().digest(),
                Sha256::digest(&body).as_slice(),
                "the raw block is the CID's"
            );
        }

        // car: the whole file, depth-first from the root; the reader rebuilds the bytes
        let (ct, body) = car_body(&s, &format!("{root}?format=car"), None).await;
        assert!(ct.ends_with("dups=n"), "{ct}");
        let (_, by_accept) = car_body(&s, &root, Some("application/vnd.ipld.car")).await;
        assert_eq!(body, by_accept);
        let cars = decode(&[body]);
        let car = &cars[0];
        assert_eq!(car.roots, vec![cid(&root)]);
        assert_eq!(car.blocks[0].0, cid(&root), "the root comes first");
        // 4 chunks under one root
        assert_eq!(car.blocks.len(), 5, "{:?}", car.cids());
        assert_eq!(read_all(&car.source(), cid(&root), 0, None).await, data);
    }
    // the probe path: an empty identity block, a CAR naming it with no blocks
    let r = get(&s, "bafkqaaa?format=raw", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
    let (_, body) = car_body(&s, "bafkqaaa?format=car", None).await;
    let car = &decode(&[body])[0];
    assert_eq!(car.roots, vec![cid("bafkqaaa")]);
    assert!(car.blocks.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_select_the_path_the_entity_or_the_dag() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let big = rand_bytes(2 * CHUNK as usize + 10, 1);
    let files: Vec<(String, Vec<u8>)> = vec![
        ("d/a.txt".into(), b"alpha".to_vec()),
        ("d/sub/big.bin".into(), big.clone()),
        ("d/sub/c.txt".into(), b"gamma".to_vec()),
    ];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
    let d = add_cid(&s, "", &refs).await;

    // block: the blocks of the path, then the end's own block, nothing more
    let r = get(
        &s,
        &format!("{d}/sub/big.bin?format=car&dag-scope=block"),
        None,
    )
    .await;
    let chain: Vec<Cid> = header(&r, "x-ipfs-roots").split(',').map(cid).collect();
    assert_eq!(chain.len(), 3);
    let car = &decode(&[r.bytes().await.unwrap()])[0];
    assert_eq!(car.roots, vec![cid(&d)]);
    assert_eq!(car.cids(), chain, "d, sub, big.bin's root");

    // entity on a file: the path, then the whole file
    let (_, body) = car_body(
        &s,
        &format!("{d}/sub/big.bin?format=car&dag-scope=entity"),
        None,
    )
    .await;
    let car = &decode(&[body])[0];
    assert_eq!(car.cids()[..2], chain[..2]);
    assert_eq!(car.blocks.len(), 2 + 1 + 3, "{:?}", car.cids());
    assert_eq!(read_all(&car.source(), chain[2], 0, None).await, big);

    // entity on a directory: its node only; its entries can be listed but not read
    let (_, body) = car_body(&s, &format!("{d}/sub?format=car&dag-scope=entity"), None).await;
    let car = &decode(&[body])[0];
    assert_eq!(car.cids(), chain[..2].to_vec());
    let names: Vec<String> = read::entries(&car.source(), &chain[1])
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["big.bin", "c.txt"]);

    // all (the default): the whole tree, every file readable from the CAR alone
    let (_, body) = car_body(
        &s,
        &d,
        Some("application/vnd.ipld.car; version=1; order=dfs"),
    )
    .await;
    let car = &decode(&[body])[0];
    let src = car.source();
    for (p, want) in &files {
        let parts: Vec<&str> = p.split('/').skip(1).collect();
        let f = read::resolve(&src, cid(&d), &parts).await.unwrap();
        assert_eq!(read_all(&src, f, 0, None).await, *want, "{p}");
    }
    let mut seen = car.cids();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), car.blocks.len(), "dups=n sends each block once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hamt_directory_entity_is_all_its_shards_and_none_of_its_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    // enough long names that the directory is sharded (over 256 KiB of links)
    let names: Vec<String> = (0..4000)
        .map(|i| format!("h/{i:05}-a-rather-long-entry-name-to-fill-the-directory-up.txt"))
        .collect();
    let bodies: Vec<Vec<u8>> = (0..4000)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| (n.as_str(), &b[..]))
        .collect();
    let h = add_cid(&s, "", &files).await;
    let (_, body) = car_body(&s, &format!("{h}?format=car&dag-scope=entity"), None).await;
    let car = &decode(&[body])[0];
    assert!(car.blocks.len() > 1, "not sharded: {}", car.blocks.len());
    // listing from the CAR alone finds every entry, so every shard came
    let src = car.source();
    let listed = read::entries(&src, &cid(&h)).await.unwrap();
    assert_eq!(listed.len(), 4000);
    // and no entry's own block did
    for e in &listed {
        assert!(!src.0.contains_key(&e.cid), "entry {} was sent", e.name);
    }
    // a path through the HAMT brings the shards on the way, then the entry
    let name = names[1234].trim_start_matches("h/");
    let r = get(&s, &format!("{h}/{name}?format=car&dag-scope=block"), None).await;
    let chain: Vec<Cid> = header(&r, "x-ipfs-roots").split(',').map(cid).collect();
    let car = &decode(&[r.bytes().await.unwrap()])[0];
    assert!(car.blocks.len() >= 3, "{:?}", car.cids());
    assert_eq!(car.cids()[0], cid(&h));
    assert_eq!(*car.cids().last().unwrap(), chain[1]);
    let found = read::resolve(&car.source(), cid(&h), &[name])
        .await
        .unwrap();
    assert_eq!(found, chain[1]);
}

/// `entity-bytes` brings exactly the chunks its range touches (plus the root), and reading the
/// range from the CAR alone gives the file's bytes, over ranges drawn across chunk boundaries.
#[tokio::test(flavor = "multi_thread")]
async fn entity_bytes_bring_exactly_the_chunks_of_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let size = 6 * CHUNK + 777;
    let data = rand_bytes(size as usize, 3);
    let root = cid(&add_cid(&s, "cid-version=1&raw-leaves=true", &[("f", &data)]).await);
    let mut seed = 0x1234_5678u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // (spec, the inclusive range it names)
    let mut cases: Vec<(String, u64, u64)> = vec![
        ("0:*".into(), 0, size - 1),
        ("0:0".into(), 0, 0),
        (format!("{}:{}", CHUNK - 1, CHUNK), CHUNK - 1, CHUNK),
        (format!("{CHUNK}:*"), CHUNK, size - 1),
        ("-1:*".into(), size - 1, size - 1),
        ("-1000:*".into(), size - 1000, size - 1),
        (format!("10:-{}", CHUNK), 10, size - CHUNK),
        (format!("0:{}", size * 2), 0, size - 1),
    ];
    for _ in 0..24 {
        let a = next(size);
        let b = a + next(size - a);
        cases.push((format!("{a}:{b}"), a, b));
    }
    let mut bodies = vec![];
    for (spec, _, _) in &cases {
        let (_, body) = car_body(&s, &format!("{root}?format=car&entity-bytes={spec}"), None).await;
        bodies.push(body);
    }
    let cars = decode(&bodies);
    for ((spec, a, b), car) in cases.iter().zip(&cars) {
        let chunks = b / CHUNK - a / CHUNK + 1;
        assert_eq!(car.blocks.len() as u64, 1 + chunks, "entity-bytes={spec}");
        assert_eq!(car.blocks[0].0, root);
        let got = read_all(&car.source(), root, *a, Some(b - a + 1)).await;
        assert!(
            got == data[*a as usize..=*b as usize],
            "entity-bytes={spec}"
        );
    }
    // an empty range is the root block alone; one past the end is refused upfront
    let (_, body) = car_body(&s, &format!("{root}?format=car&entity-bytes=50:10"), None).await;
    assert_eq!(decode(&[body])[0].cids(), vec![root]);
    let (st, e) = error_status(
        &s,
        &format!("{root}?format=car&entity-bytes={size}:*"),
        None,
    )
    .await;
    assert_eq!(st, 400, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_caching_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    // offline: a missing block is a 404 at once, not after asking peers
    let s = Server::start(tmp.path(), &["--offline"]);
    // four identical chunks: one block, linked four times
    let zeros = vec![0u8; 4 * CHUNK as usize];
    let root = add_cid(&s, "cid-version=1&raw-leaves=true", &[("z", &zeros)]).await;
    let (ct_n, once) = car_body(&s, &format!("{root}?format=car"), None).await;
    let (ct_y, every) = car_body(
        &s,
        &root,
        Some("application/vnd.ipld.car; version=1; order=dfs; dups=y"),
    )
    .await;
    assert!(
        ct_n.ends_with("dups=n") && ct_y.ends_with("dups=y"),
        "{ct_n} {ct_y}"
    );
    let cars = decode(&[once, every]);
    assert_eq!(cars[0].blocks.len(), 2);
    assert_eq!(cars[1].blocks.len(), 5);
    // the query wins over Accept
    let (ct, _) = car_body(
        &s,
        &format!("{root}?format=car&car-dups=n"),
        Some("application/vnd.ipld.car; dups=y"),
    )
    .await;
    assert!(ct.ends_with("dups=n"), "{ct}");

    // tags differ by representation and scope; a matching If-None-Match is a 304; HEAD is bare
    let tag = |q: &str| {
        let url = format!("{}/ipfs/{root}{q}", s.url);
        async move { header(&client().head(url).send().await.unwrap(), "etag") }
    };
    let tags = [
        tag("?format=raw").await,
        tag("?format=car").await,
        tag("?format=car&dag-scope=block").await,
        tag("?format=car&entity-bytes=0:10").await,
        tag("").await,
    ];
    for (i, a) in tags.iter().enumerate() {
        assert!(!a.is_empty());
        for b in &tags[i + 1..] {
            assert_ne!(a, b);
        }
    }
    let r = client()
        .get(format!("{}/ipfs/{root}?format=car", s.url))
        .header("if-none-match", &tags[1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = client()
        .head(format!("{}/ipfs/{root}?format=raw", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());

    // refusals, each a JSON error before any byte
    let missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    for (path, accept, want) in [
        (format!("{root}/x?format=raw"), None, 400),
        (format!("{root}?format=car&dag-scope=most"), None, 400),
        (format!("{root}?format=car&car-version=2"), None, 400),
        (format!("{root}?format=car&car-order=bfs"), None, 400),
        (format!("{root}?format=car&car-dups=maybe"), None, 400),
        (format!("{root}?format=car&entity-bytes=1-2"), None, 400),
        (
            root.to_string(),
            Some("application/vnd.ipld.car; version=2"),
            400,
        ),
        (format!("{missing}?format=raw"), None, 404),
        (format!("{missing}?format=car"), None, 404),
        // a path through a file, as the path gateway answers it
        (format!("{root}/nosuch?format=car"), None, 400),
    ] {
        let (st, e) = error_status(&s, &path, accept).await;
        assert_eq!(st, want, "{path}: {e}");
        assert!(!e.is_empty(), "{path}");
    }
    // only-if-cached: a root that is not here is a 412
    let r = client()
        .get(format!("{}/ipfs/{missing}?format=raw", s.url))
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = client()
        .get(format!("{}/ipfs/{root}?format=raw", s.url))
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Blocks put straight into the store: a dag-cbor node (whose links `all` follows), and a file
/// DAG with a block missing mid-way: the answer has started (200), so the stream is cut short;
/// the client's reader sees an incomplete CAR, and the node stays up.
#[tokio::test(flavor = "multi_thread")]
async fn a_block_missing_mid_stream_cuts_the_car_short() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &[]);
    let data = rand_bytes(4 * CHUNK as usize, 9);
    let root = add_cid(&s, "cid-version=1&raw-leaves=true", &[("f", &data)]).await;
    let car = &decode(&[car_body(&s, &format!("{root}?format=car"), None).await.1])[0];
    s.stop();
    // the third chunk's block goes away
    let gone = car.blocks[3].0;
    let blocks =
        ipfaas_runtime::store::blockstore::FlatFs::open(tmp.path().join("blockstore")).unwrap();
    std::fs::remove_file(blocks.path(&gone)).unwrap();
    let s = Server::start(tmp.path(), &["--offline"]);
    // a dag-cbor node linking the file: `all` follows its links, `entity` is its block alone
    let other = add_cid(&s, "", &[("o", b"other")]).await;
    let node = ipld_core::ipld::Ipld::Map(
        [
            ("file".to_string(), ipld_core::ipld::Ipld::Link(cid(&other))),
            ("n".to_string(), ipld_core::ipld::Ipld::Integer(7)),
        ]
        .into(),
    );
    let cbor = serde_ipld_dagcbor::to_vec(&node).unwrap();
    let cbor_cid = Cid::new_v1(0x71, ipfaas_runtime::unixfs::sha256(&cbor));
    let p = blocks.path(&cbor_cid);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &cbor).unwrap();
    let (_, all) = car_body(&s, &format!("{cbor_cid}?format=car"), None).await;
    let (_, entity) = car_body(&s, &format!("{cbor_cid}?format=car&dag-scope=entity"), None).await;
    let cars = decode(&[all, entity]);
    assert_eq!(cars[0].cids(), vec![cbor_cid, cid(&other)]);
    assert_eq!(cars[1].cids(), vec![cbor_cid]);
    assert_eq!(&cars[0].blocks[0].1[..], &cbor[..]);

    let r = get(&s, &format!("{root}?format=car"), None).await;
    assert_eq!(r.status(), 200);
    let got = r.bytes().await;
    let complete = match got {
        Err(_) => false,
        Ok(b) => {
            let cut = &decode(&[b])[0];
            assert!(!cut.cids().contains(&gone));
            cut.blocks.len() == car.blocks.len()
        }
    };
    assert!(!complete, "the CAR claimed to be whole");
    assert!(!get_text(&format!("{}/healthz", s.url)).await.is_empty());
}
