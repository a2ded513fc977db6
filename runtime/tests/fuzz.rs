//! Property tests over the parsers that take data from anyone: dag-pb / UnixFS nodes, bundles
//! (tar and zip), manifests and definitions, and whole crafted trees walked by the tar stream
//! and the WASM input layout. Arbitrary and mutated input must give a value or an error, never
//! a panic; well-formed trees must read back exactly as a model of them says.
//!
//! The case counts keep this well inside the test suite's time; `PROPTEST_CASES=100000 cargo
//! test --test fuzz` runs longer (see `bench/README.md`).

mod common;
use cid::Cid;
use common::*;
use ipfaas_runtime::Error;
use ipfaas_runtime::registry::bundle::Bundle;
use ipfaas_runtime::registry::def::Def;
use ipfaas_runtime::registry::manifest::Manifest;
use ipfaas_runtime::unixfs::ImportOptions;
use ipfaas_runtime::unixfs::pb::{Node, UnixFs};
use ipfaas_runtime::unixfs::read::kind_of;
use proptest::prelude::*;
use std::io::Write;

/// Well-formed blocks of each kind, to mutate.
fn seed_blocks() -> Vec<(Cid, Vec<u8>)> {
    let opts = ImportOptions::default().with_chunker("size-64").unwrap();
    let mut v = import_blocks(&[7u8; 300], &opts);
    let file = v.last().unwrap().0;
    v.push(dir_block(&[("a", file), ("b", file)]));
    v.push(hamt_block(&[("00", file), ("41name", file)]));
    v.push(symlink_block("../x", &opts));
    v
}

/// Applies `edits` (position, byte; a byte of 0 deletes, odd positions insert) to `block`.
fn mutate(block: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut b = block.to_vec();
    for &(pos, byte) in edits {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let p = pos % b.len();
        match (byte, pos % 2) {
            (0, _) => {
                b.remove(p);
            }
            (_, 1) => b.insert(p, byte),
            _ => b[p] = byte,
        }
    }
    b.truncate(b.len().saturating_sub(cut % 8));
    b
}

fn decode_all(cid: &Cid, block: &[u8]) {
    if let Ok(node) = Node::decode(block) {
        for l in &node.links {
            let _ = (l.name.len(), l.tsize, l.cid);
        }
        let _ = UnixFs::decode(node.data.unwrap_or(&[]));
    }
    let _ = kind_of(cid, block);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_node_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let cid = Cid::new_v1(DAG_PB, ipfaas_runtime::unixfs::sha256(&bytes));
        decode_all(&cid, &bytes);
        let _ = UnixFs::decode(&bytes);
    }

    #[test]
    fn mutated_blocks_never_panic_the_node_decoders(
        which in 0usize..16,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let seeds = seed_blocks();
        let (cid, block) = &seeds[which % seeds.len()];
        decode_all(cid, &mutate(block, &edits, cut));
    }

    #[test]
    fn mutated_archives_never_panic_the_bundle_reader(
        zip in any::<bool>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
    ) {
        let archive = if zip { zip_of(&[("f/function.py", b"def main(i, p):\n  return b''\n"), ("f/ipfaas.toml", b"memory = \"64MiB\"\n")]) }
            else { tar_of(&[("f/function.py", b"def main(i, p):\n  return b''\n"), ("f/requirements.txt", b"")]) };
        let body = mutate(&archive, &edits, cut);
        if let Ok(b) = Bundle::from_archive(&body) {
            // whatever was read is bounded by what arrived (no claim is trusted)
            let total: usize = b.files.values().map(|f| f.len()).sum();
            prop_assert!(total <= body.len() * 1100, "{total} from {} bytes", body.len());
            for name in b.files.keys() {
                prop_assert!(!name.starts_with('/') && !name.split('/').any(|c| c == ".."), "{name}");
            }
            let _ = b.manifest();
        }
    }

    #[test]
    fn arbitrary_manifests_and_definitions_never_panic(
        text in "[a-z_]{1,12} = (\"[a-zA-Z0-9 ./:-]{0,20}\"|[0-9]{1,25}|-[0-9]{1,5}|true|\\[\\]|\\{\\})(\n[a-z_]{1,12} = \"[0-9a-zA-Z]{0,12}\"){0,4}",
        json in "\\{(\"(ipfaas|kind|bundle|site|component|limits|builder|image|image_id|cmd|memory|fuel)\": (1|\"python\"|\"docker\"|\"[a-z0-9]{0,60}\"|\\{\\}|\\[\\]|-1|18446744073709551616), ){0,6}\"x\": 0\\}",
    ) {
        let _ = Manifest::from_toml(text.as_bytes());
        if let Ok(v) = serde_json::from_str(&json) {
            let _ = Manifest::from_json(v);
        }
        let _ = Def::parse("bafkqaaa", json.as_bytes());
        let _ = Def::parse("bafkqaaa", text.as_bytes());
    }
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// A tree as the test thinks of it: names may repeat within a directory (which is malformed).
#[derive(Debug, Clone)]
enum Tree {
    File(Vec<u8>),
    Dir(Vec<(String, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = proptest::collection::vec(any::<u8>(), 0..300).prop_map(Tree::File);
    leaf.prop_recursive(4, 24, 4, |inner| {
        proptest::collection::vec(("[ab]{1,2}", inner), 0..4).prop_map(Tree::Dir)
    })
}

/// The tree's blocks, and its root.
fn blocks_of(t: &Tree, out: &mut Vec<(Cid, Vec<u8>)>) -> Cid {
    match t {
        Tree::File(data) => {
            let opts = ImportOptions::default().with_chunker("size-100").unwrap();
            let v = import_blocks(data, &opts);
            let root = v.last().unwrap().0;
            out.extend(v);
            root
        }
        Tree::Dir(children) => {
            let links: Vec<(String, Cid)> = children
                .iter()
                .map(|(n, c)| (n.clone(), blocks_of(c, out)))
                .collect();
            let refs: Vec<(&str, Cid)> = links.iter().map(|(n, c)| (n.as_str(), *c)).collect();
            let d = dir_block(&refs);
            out.push(d.clone());
            d.0
        }
    }
}

/// What `ipfs get` would write, in order: (path, file bytes or None for a directory); `None`
/// when some directory names an entry twice.
fn model(t: &Tree, path: &str, out: &mut Vec<(String, Option<Vec<u8>>)>) -> Option<()> {
    match t {
        Tree::File(d) => out.push((path.to_string(), Some(d.clone()))),
        Tree::Dir(children) => {
            out.push((path.to_string(), None));
            let mut sorted: Vec<&(String, Tree)> = children.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
                return None;
            }
            for (n, c) in sorted {
                model(c, &format!("{path}/{n}"), out)?;
            }
        }
    }
    Some(())
}

/// A tar archive's entries as (path, file bytes or None).
fn entries_of(tar_bytes: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    use std::io::Read;
    let mut ar = tar::Archive::new(tar_bytes);
    let mut v = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let body = if e.header().entry_type().is_dir() {
            None
        } else {
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            Some(b)
        };
        v.push((path, body));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Crafted directory trees read back as the model says through the tar stream and through
    /// the WASM input layout (the same archive without its root entry), or are refused as
    /// malformed exactly when a directory names an entry twice.
    #[test]
    fn crafted_trees_read_back_as_modelled(
        t in proptest::collection::vec(("[ab]{1,2}", tree()), 0..5).prop_map(Tree::Dir)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let store = open(tmp.path()).await;
            let mut blocks = Vec::new();
            let root = blocks_of(&t, &mut blocks);
            put_blocks(&store, blocks).await;
            let mut want = Vec::new();
            let ok = model(&t, "r", &mut want);
            use futures::TryStreamExt;
            let got: Result<Vec<bytes::Bytes>, Error> = store.tar(root, "r".into()).try_collect().await;
            match ok {
                None => {
                    let e = got.unwrap_err();
                    assert!(matches!(e, Error::Malformed { .. }), "{e}");
                }
                Some(()) => {
                    let tarred = got.unwrap().concat();
                    assert_eq!(entries_of(&tarred), want);
                    // the input layout: the same entries below the root, read at random sizes
                    use ipfaas_runtime::executor::wasm::InputReader;
                    use ipfaas_runtime::executor::wasm::mount::StoreInput;
                    let mut input = StoreInput::open(&store, root).await.unwrap();
                    let laid = tokio::task::spawn_blocking(move || {
                        let mut all = Vec::new();
                        let mut step = 1u32;
                        while (all.len() as u64) < input.size() {
                            let b = input.read_at(all.len() as u64, step).unwrap();
                            assert!(!b.is_empty());
                            all.extend(b);
                            step = step * 7 % 70_001 + 1;
                        }
                        all
                    }).await.unwrap();
                    let below: Vec<_> = want[1..].iter()
                        .map(|(p, b)| (p["r/".len()..].to_string(), b.clone()))
                        .collect();
                    assert_eq!(entries_of(&laid), below);
                }
            }
            store.shutdown().await;
        });
    }
}
