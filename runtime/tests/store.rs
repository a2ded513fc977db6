//! The backing store on a real on-disk repo with the real embedded rust-ipfs node.

mod common;
use bytes::Bytes;
use cid::Cid;
use futures::TryStreamExt;
use ipfaas_runtime::store::add::AddOptions;
use ipfaas_runtime::unixfs::read::{self, BlockSource};
use ipfaas_runtime::unixfs::{ImportOptions, Profile};
use ipfaas_runtime::{Error, Store, StoreConfig};
use ipfaas_testkit::rand_bytes;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

async fn open(repo: &Path) -> Store {
    Store::open(StoreConfig::offline(repo), &prometheus::Registry::new())
        .await
        .unwrap()
}

async fn add_bytes(store: &Store, name: &str, data: Vec<u8>, opts: AddOptions) -> Cid {
    let name = name.to_string();
    let out = store
        .add(opts, move |a| {
            a.file(&name, &mut &data[..], |_| {}).map(drop)
        })
        .await
        .unwrap();
    out.roots[0].cid
}

/// `ipfs add -r` of a local tree (hidden entries skipped), default options.
async fn add_tree(
    store: &Store,
    src: std::path::PathBuf,
    name: &'static str,
) -> ipfaas_runtime::store::add::AddOutcome {
    store
        .add(AddOptions::default(), move |a| {
            a.local(&src, name, true, false, &mut |_, _| {})
        })
        .await
        .unwrap()
}

async fn collect(s: read::ByteStream) -> Vec<u8> {
    s.try_fold(Vec::new(), |mut v, b| async move {
        v.extend_from_slice(&b);
        Ok(v)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn kubo_tree_vector_via_local_add_and_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("test_current_dir");
    std::fs::create_dir_all(src.join("hello")).unwrap();
    std::fs::write(src.join("hey"), "Hey\n").unwrap();
    std::fs::write(src.join("hello/world"), "World\n").unwrap();
    std::fs::write(src.join(".hidden"), "skipped like ipfs add -r").unwrap();
    let store = open(&tmp.path().join("repo")).await;
    let out = add_tree(&store, src, "test_current_dir").await;
    // Kubo t0040-add-and-cat.sh: `ipfs add -r .` of this tree
    let root = out.roots[0].cid;
    assert_eq!(
        root.to_string(),
        "QmZQWnfcqJ6hNkkPvrY9Q5X39GP3jUnUbAV4AbmbbR3Cb1"
    );
    let paths: Vec<_> = out.added.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "test_current_dir/hello/world",
            "test_current_dir/hey",
            "test_current_dir/hello",
            "test_current_dir"
        ]
    );
    assert!(store.is_pinned(&root));

    let names: Vec<_> = store
        .entries(&root)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["hello", "hey"]);
    let world = store.resolve(root, &["hello", "world"]).await.unwrap();
    let (size, s) = store.cat(world, 0, None).await.unwrap();
    assert_eq!((size, collect(s).await), (6, b"World\n".to_vec()));
    assert!(matches!(
        store.resolve(root, &["nope"]).await,
        Err(Error::NoSuchEntry { .. })
    ));
    assert!(matches!(
        store.cat(root, 0, None).await,
        Err(Error::IsADirectory(_))
    ));
    assert!(matches!(
        store.resolve(world, &["x"]).await,
        Err(Error::NotADirectory(_))
    ));
    store.shutdown().await;
}

/// Counts block fetches so a range read can be shown to touch only the blocks it needs.
#[derive(Clone)]
struct Counting(Store, Arc<AtomicUsize>);
impl BlockSource for Counting {
    async fn block(&self, cid: &Cid) -> ipfaas_runtime::Result<Bytes> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.block(cid).await
    }
}

#[tokio::test]
async fn range_reads_fetch_only_overlapping_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    let data = rand_bytes(3 * 1024 * 1024 + 123, 7);
    // 1 KiB chunks and 4 links per node: a 4-level tree of 3,073 leaves
    let import = ImportOptions {
        chunk_size: 1024,
        max_links: 4,
        ..Default::default()
    };
    let cid = add_bytes(
        &store,
        "f",
        data.clone(),
        AddOptions {
            import,
            ..Default::default()
        },
    )
    .await;
    let (size, s) = store.cat(cid, 0, None).await.unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(collect(s).await, data);

    for (off, len) in [
        (0u64, 1u64),
        (1023, 2),
        (1_000_000, 300_000),
        (data.len() as u64 - 5, 100),
        (5000, 0),
    ] {
        let n = Arc::new(AtomicUsize::new(0));
        let got = collect(read::cat(
            Counting(store.clone(), n.clone()),
            cid,
            off,
            Some(len),
        ))
        .await;
        let end = (off + len).min(data.len() as u64) as usize;
        assert_eq!(got, &data[off as usize..end], "range {off}+{len}");
        let leaves = (end as u64).div_ceil(1024) - off / 1024;
        // the range's leaves and their ancestors (~1/3 more for a 4-ary tree), never the ~1,000
        // leaves before offset 1,000,000
        let fetched = n.load(Ordering::SeqCst) as u64;
        assert!(
            fetched <= leaves + leaves / 3 + 16,
            "range {off}+{len}: fetched {fetched} blocks for {leaves} leaves"
        );
    }
    assert!(matches!(
        store.cat(cid, size + 1, None).await,
        Err(Error::RangeNotSatisfiable { .. })
    ));
    store.shutdown().await;
}

#[tokio::test]
async fn tar_stream_is_laid_out_like_ipfs_get() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tree");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::fs::write(src.join("héllo wörld.txt"), "grüße\n").unwrap();
    let big = rand_bytes(700_000, 3);
    std::fs::write(src.join("sub/deeper/big.bin"), &big).unwrap();
    std::os::unix::fs::symlink("../héllo wörld.txt", src.join("sub/link")).unwrap();
    let long = "n".repeat(150);
    std::fs::write(src.join(&long), "long name").unwrap();

    let store = open(&tmp.path().join("repo")).await;
    let out = add_tree(&store, src, "tree").await;
    let root = out.roots[0].cid;
    let bytes = collect(store.tar(root, root.to_string())).await;
    assert_eq!(bytes.len() % 512, 0);
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let kind = e.header().entry_type();
        assert_eq!(e.header().mtime().unwrap(), 0);
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        let rel = path
            .strip_prefix(&root.to_string())
            .unwrap()
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        match rel.as_str() {
            "sub/deeper/big.bin" => assert_eq!(content, big),
            "héllo wörld.txt" => assert_eq!(content, "grüße\n".as_bytes()),
            "sub/link" => {
                assert!(kind.is_symlink());
                assert_eq!(
                    e.link_name().unwrap().unwrap().to_str(),
                    Some("../héllo wörld.txt")
                );
            }
            r if r == long => assert_eq!(content, b"long name"),
            _ => assert!(kind.is_dir(), "{rel:?} should be a directory"),
        }
        seen.push(rel);
    }
    let want = [
        "",
        "empty",
        "héllo wörld.txt",
        &long,
        "sub",
        "sub/deeper",
        "sub/deeper/big.bin",
        "sub/link",
    ];
    assert_eq!(seen, want);
    // the same CID always gives the same archive
    assert_eq!(collect(store.tar(root, root.to_string())).await, bytes);

    // a single file is one entry named like the request
    let file = store
        .resolve(root, &["sub", "deeper", "big.bin"])
        .await
        .unwrap();
    let bytes = collect(store.tar(file, "big.bin".into())).await;
    let mut ar = tar::Archive::new(&bytes[..]);
    let entries: Vec<_> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().into_owned())
        .collect();
    assert_eq!(entries, [Path::new("big.bin")]);
    store.shutdown().await;
}

#[tokio::test]
async fn hamt_directories_list_resolve_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    // t0260's testdata, force-sharded: Kubo's CID, then read back through the shards
    let import = ImportOptions {
        hamt_threshold: 1,
        ..Default::default()
    };
    let out = store
        .add(
            AddOptions {
                import,
                ..Default::default()
            },
            |a| {
                for i in 1..=2000 {
                    a.file(
                        &format!("testdata/file{i}"),
                        &mut format!("{i}\n").as_bytes(),
                        |_| {},
                    )?;
                }
                Ok(())
            },
        )
        .await
        .unwrap();
    let root = out.roots[0].cid;
    assert_eq!(
        root.to_string(),
        "QmSCJD1KYLhVVHqBK3YyXuoEqHt7vggyJhzoFYbT8v1XYL"
    );
    let entries = store.entries(&root).await.unwrap();
    assert_eq!(entries.len(), 2000);
    let mut names: Vec<_> = (1..=2000).map(|i| format!("file{i}")).collect();
    names.sort();
    assert_eq!(
        entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        names
    );
    let f100 = store.resolve(root, &["file100"]).await.unwrap();
    assert_eq!(
        f100.to_string(),
        "QmZ3RfWk1u5LEGYLHA633B5TNJy3Du27K6Fny9wcxpowGS"
    );
    assert!(matches!(
        store.resolve(root, &["file2001"]).await,
        Err(Error::NoSuchEntry { .. })
    ));
    let bytes = collect(store.tar(root, "testdata".into())).await;
    let n = tar::Archive::new(&bytes[..]).entries().unwrap().count();
    assert_eq!(n, 2001);
    store.shutdown().await;
}

#[tokio::test]
async fn repo_survives_restart_with_identity_pins_and_data() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    let peer = store.peer_id();
    let data = rand_bytes(2 << 20, 11);
    let v1 = AddOptions {
        import: ImportOptions::profile(Profile::UnixfsV1_2025),
        ..Default::default()
    };
    let cid = add_bytes(&store, "data.bin", data.clone(), v1).await;
    let unpinned = add_bytes(
        &store,
        "tmp",
        b"scratch".to_vec(),
        AddOptions {
            pin: false,
            ..Default::default()
        },
    )
    .await;
    // the repo is owned by one process at a time
    match Store::open(
        StoreConfig::offline(tmp.path()),
        &prometheus::Registry::new(),
    )
    .await
    {
        Err(Error::RepoLocked { .. }) => {}
        Err(e) => panic!("expected RepoLocked, got {e}"),
        Ok(_) => panic!("expected RepoLocked, got a second store"),
    }
    store.shutdown().await;

    let store = open(tmp.path()).await;
    assert_eq!(store.peer_id(), peer);
    assert!(store.is_pinned(&cid));
    assert!(!store.is_pinned(&unpinned));
    assert_eq!(store.pins().unwrap(), vec![cid]);
    let (_, s) = store.cat(cid, 0, None).await.unwrap();
    assert_eq!(collect(s).await, data);
    assert!(store.unpin(&cid).await.unwrap());
    assert!(!store.unpin(&cid).await.unwrap());
    store.shutdown().await;
}

#[tokio::test]
async fn missing_blocks_are_not_found_after_the_configured_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        repo: tmp.path().into(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap: vec![],
        fetch_timeout: Duration::from_millis(700),
        offline: false,
        storage_max: None,
        p2p_max_memory: None,
        protocols: vec![],
    };
    let store = Store::open(cfg, &prometheus::Registry::new())
        .await
        .unwrap();
    let t = Instant::now();
    while store.addresses().await.unwrap().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the node never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let absent: Cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        .parse()
        .unwrap();
    let t = Instant::now();
    assert!(matches!(
        store.stat(&absent).await,
        Err(Error::NotFound { .. })
    ));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(10),
        "waited {waited:?}"
    );
    assert!(matches!(
        store.stat(&absent).await.unwrap_err().class(),
        ipfaas_runtime::error::Class::NotFound
    ));
    // a corrupt DAG is an error, not a panic: a dag-pb CID whose block is not dag-pb
    let junk = b"\xff\xff not protobuf".to_vec();
    let forged = Cid::new_v1(0x70, ipfaas_runtime::unixfs::sha256(&junk));
    common::put_blocks(&store, vec![(forged, junk)]).await;
    assert!(matches!(
        store.stat(&forged).await,
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        store.entries(&forged).await,
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        store.cat(forged, 0, None).await,
        Err(Error::Malformed { .. })
    ));
    store.shutdown().await;
}

/// Every block of the DAG at `root`, as the reader walks it (the reference for "reachable"):
/// reading the whole file succeeds only if each is present.
async fn readable(store: &Store, root: Cid) -> bool {
    common::read_all(store, root).await.is_ok()
}

/// A collection removes exactly what no pin reaches: an unpinned add, the blocks an unpinned
/// file does not share with a pinned one; it keeps shared blocks, pinned trees whole, and the
/// roots of adds that await their pin.
#[tokio::test]
async fn garbage_collection_removes_only_what_no_pin_reaches() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&tmp.path().join("repo")).await;
    let chunk = ImportOptions::default().chunk_size;
    // (the generator's seed is made odd: distinct odd seeds give distinct data)
    // a and b share their first two chunks
    let shared = rand_bytes(2 * chunk, 11);
    let a_data = [shared.clone(), rand_bytes(chunk + 17, 13)].concat();
    let b_data = [shared, rand_bytes(3 * chunk, 15)].concat();
    let a = add_bytes(&store, "a", a_data.clone(), AddOptions::default()).await;
    let b = add_bytes(&store, "b", b_data, AddOptions::default()).await;
    let loose = add_bytes(
        &store,
        "loose",
        rand_bytes(5 * chunk, 17),
        AddOptions {
            pin: false,
            ..Default::default()
        },
    )
    .await;
    // an output-to-be: written without a pin, waiting for its group commit
    let waiting = add_bytes(
        &store,
        "waiting",
        rand_bytes(2 * chunk, 19),
        AddOptions {
            pin: false,
            durable: false,
            ..Default::default()
        },
    )
    .await;
    let tree_dir = tmp.path().join("tree");
    std::fs::create_dir_all(tree_dir.join("sub")).unwrap();
    std::fs::write(tree_dir.join("sub/x"), rand_bytes(chunk * 2, 21)).unwrap();
    std::fs::write(tree_dir.join("y"), b"y").unwrap();
    let tree = add_tree(&store, tree_dir, "tree").await.roots[0].cid;
    assert!(store.unpin(&b).await.unwrap());

    let blocks = |s: &Store| s.blocks_usage().unwrap().0;
    let before = blocks(&store);
    let r = store.gc().await.unwrap();
    // b: a root and 5 leaves, 2 of them shared with a; loose: a root and 5 leaves
    assert_eq!(r.removed_blocks, 4 + 6, "{r:?}");
    assert_eq!(blocks(&store), before - r.removed_blocks);
    // a, the tree, and the add awaiting its pin
    assert_eq!(r.roots, 3, "{r:?}");
    // reported as stored: as version 1
    let v1 = |c: Cid| Cid::new_v1(c.codec(), c.hash().to_owned());
    assert!(r.removed.contains(&v1(b)) && r.removed.contains(&v1(loose)));
    assert!(readable(&store, a).await);
    assert_eq!(common::read_all(&store, a).await.unwrap(), a_data);
    assert!(readable(&store, waiting).await);
    let x = store.resolve(tree, &["sub", "x"]).await.unwrap();
    assert!(readable(&store, x).await);
    assert!(!readable(&store, b).await);
    assert!(!readable(&store, loose).await);
    // the output-to-be is pinned at its commit, and then kept as any pin
    store.sync_and_pin(vec![waiting]).await.unwrap();
    let again = store.gc().await.unwrap();
    assert_eq!(again.removed_blocks, 0, "{again:?}");
    assert!(store.is_pinned(&waiting));
    // CIDv1 with raw leaves (the CIDs above are v0, stored under their v1 names)
    let v1_chunk = ImportOptions::profile(Profile::UnixfsV1_2025).chunk_size;
    let v1 = add_bytes(
        &store,
        "v1",
        rand_bytes(v1_chunk * 2 + 1, 23),
        AddOptions {
            import: ImportOptions::profile(Profile::UnixfsV1_2025),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(v1.version(), cid::Version::V1);
    assert_eq!(store.gc().await.unwrap().removed_blocks, 0);
    assert!(readable(&store, v1).await);
    assert!(store.unpin(&v1).await.unwrap());
    // its root and three raw leaves
    assert_eq!(store.gc().await.unwrap().removed_blocks, 4);
}

/// Adds racing collections: every pinned add stays whole, including adds whose blocks were
/// already stored (deduplicated) when a collection was about to remove them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_never_breaks_a_concurrent_add() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(&tmp.path().join("repo")).await;
    let chunk = ImportOptions::default().chunk_size;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                store.gc().await.unwrap();
                runs += 1;
            }
            runs
        })
    };
    let mut adders = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        adders.push(tokio::spawn(async move {
            let mut roots = Vec::new();
            for i in 0..40u64 {
                // the content of an unpinned add, added again with a pin: the second add finds
                // its blocks stored, which a collection is about to remove
                let data = rand_bytes(chunk + 1, 1001 + 2 * (w * 40 + i));
                let unpinned = AddOptions {
                    pin: false,
                    ..Default::default()
                };
                add_bytes(&store, "u", data.clone(), unpinned).await;
                let cid = add_bytes(&store, "p", data.clone(), AddOptions::default()).await;
                roots.push((cid, data));
            }
            roots
        }));
    }
    let mut all = Vec::new();
    for a in adders {
        all.extend(a.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let runs = collector.await.unwrap();
    assert!(runs > 0);
    store.gc().await.unwrap();
    for (cid, data) in all {
        let back = common::read_all(&store, cid)
            .await
            .unwrap_or_else(|e| panic!("{cid} lost blocks: {e}"));
        assert!(back == data, "{cid} reads back other bytes");
    }
}
