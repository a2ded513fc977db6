//! Trees crafted by an attacker (a peer's DAG, a bundle, a Docker input) on the real store:
//! writing one out never touches anything outside its destination.
//!
//! The blocks are encoded by hand with the dag-pb encoder (`common`), as a peer could send
//! them, and put into the store beside a normal add.

mod common;
use cid::Cid;
use common::*;
use ipfaas_runtime::store::add::AddOptions;
use ipfaas_runtime::unixfs::file::import_bytes;
use ipfaas_runtime::unixfs::{HashOnly, ImportOptions, sha256, symlink};
use ipfaas_runtime::{Error, Store};

#[tokio::test(flavor = "multi_thread")]
async fn a_name_listed_twice_cannot_write_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    // the attacker's target: a file outside the export, which must stay as it is
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let victim_str = victim.to_str().unwrap().to_string();

    // the blocks: a file, a symlink to the victim, and directories that name an entry twice:
    // "pwn" → the symlink, then "pwn" → the file; and a directory listing that one twice
    let opts = ImportOptions::default();
    let payload = b"overwritten!".to_vec();
    let file = import_bytes(&payload, &opts, &mut HashOnly).unwrap();
    let link = symlink(&victim_str, &opts, &mut HashOnly).unwrap();
    let top = dir_block(&[("pwn", link.cid), ("pwn", file.cid)]);
    let inner = dir_block(&[("sub", top.0), ("sub", top.0)]);
    let fine = dir_block(&[("a", link.cid), ("b", file.cid)]);
    let roots = [top.0, inner.0, fine.0];
    let mut blocks = vec![top, inner, fine];
    blocks.extend(import_blocks(&payload, &opts));
    blocks.push(symlink_block(&victim_str, &opts));
    put_blocks(&store, blocks).await;

    for root in &roots[..2] {
        let err = store.entries(root).await.unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("more than once"), "{err}");
        let dest = tmp.path().join(format!("export-{root}"));
        let err = store.export_tree(*root, &dest, u64::MAX).await.unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    // a well-formed tree with a symlink exports, and the symlink is only a symlink
    let dest = tmp.path().join("export-ok");
    store.export_tree(roots[2], &dest, u64::MAX).await.unwrap();
    assert_eq!(std::fs::read_link(dest.join("a")).unwrap(), victim);
    assert_eq!(std::fs::read(dest.join("b")).unwrap(), b"overwritten!");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // exporting again over it refuses to write through what is there
    assert!(store.write_file(roots[2], &dest.join("a")).await.is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_lies_about_its_size_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    let big = vec![7u8; 1 << 20];
    let raw = Cid::new_v1(0x55, sha256(&big));
    // declares 10 bytes, links a MiB (claimed as a MiB, and claimed as 10)
    let small_claim = file_block(&[(raw, 1 << 20)], b"", 10);
    let lying_child = file_block(&[(raw, 10)], b"", 10);
    // a 0-byte file whose data holds a tar header: a tar stream would carry a forged entry
    let mut h = tar::Header::new_gnu();
    h.set_path("forged").unwrap();
    h.set_size(0);
    h.set_cksum();
    let hidden = file_block(&[], h.as_bytes(), 0);
    let honest = file_block(&[(raw, 1 << 20)], b"", 1 << 20);
    let dir = dir_block(&[("x", hidden.0)]);
    let blocks = [
        small_claim.clone(),
        lying_child.clone(),
        hidden.clone(),
        honest.clone(),
        dir.clone(),
    ];
    let mut blocks = blocks.to_vec();
    blocks.push((raw, big));
    put_blocks(&store, blocks).await;
    for bad in [small_claim.0, lying_child.0, hidden.0] {
        let e = read_all(&store, bad).await.unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{bad}: {e}");
        assert_eq!(e.http_status(), 400, "the request named bad data: a 4xx");
    }
    assert_eq!(read_all(&store, honest.0).await.unwrap().len(), 1 << 20);
    // the tar of a tree holding the forged file fails instead of carrying its header
    use futures::TryStreamExt;
    let tarred: Result<Vec<bytes::Bytes>, Error> = store.tar(dir.0, "d".into()).try_collect().await;
    assert!(tarred.is_err());
    store.shutdown().await;
}

/// Every consumer that walks a whole tree (tar stream, the WASM input layout, an export to
/// disk) on `root`: each must fail with `OverLimit`, and the export must write nothing.
async fn every_walk_refuses(store: &Store, root: Cid, dest: &std::path::Path) {
    use futures::TryStreamExt;
    use ipfaas_runtime::executor::wasm::mount::StoreInput;
    let tarred: Result<Vec<bytes::Bytes>, Error> = store.tar(root, "t".into()).try_collect().await;
    let e = tarred.unwrap_err();
    assert!(matches!(e, Error::OverLimit { .. }), "tar: {e}");
    assert_eq!(e.http_status(), 400);
    let e = StoreInput::open(store, root)
        .await
        .err()
        .expect("layout refused");
    assert!(matches!(e, Error::OverLimit { .. }), "mount: {e}");
    let e = store.export_tree(root, dest, u64::MAX).await.unwrap_err();
    assert!(matches!(e, Error::OverLimit { .. }), "export: {e}");
    assert!(!dest.exists(), "an export past a limit writes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tree_that_names_one_child_many_times_stops_at_the_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    let opts = ImportOptions::default();
    let mut blocks = import_blocks(b"leaf", &opts);
    // 64 levels of "a" and "b" naming the same child: 2^64 paths in 65 blocks
    let mut child = blocks.last().unwrap().0;
    for _ in 0..64 {
        let d = dir_block(&[("a", child), ("b", child)]);
        child = d.0;
        blocks.push(d);
    }
    let wide = child;
    // 5,000 levels of one directory each: once a stack overflow that aborted the node
    let mut deep = blocks[0].0;
    for _ in 0..5000 {
        let d = dir_block(&[("d", deep)]);
        deep = d.0;
        blocks.push(d);
    }
    // two files that each claim 2^63 bytes (consistently, in blocks nobody has): their
    // layout would pass 2^64 bytes
    let absent = Cid::new_v1(0x55, sha256(b"absent"));
    let huge = file_block(&[(absent, 1 << 62), (absent, 1 << 62)], b"", 1 << 63);
    let claims = dir_block(&[("x", huge.0), ("y", huge.0)]);
    // and a file whose size field disagrees with its own blocks is malformed at a glance
    let liar = file_block(&[], b"", 1 << 40);
    blocks.extend([huge, claims.clone(), liar.clone()]);
    put_blocks(&store, blocks).await;
    every_walk_refuses(&store, wide, &tmp.path().join("wide")).await;
    every_walk_refuses(&store, deep, &tmp.path().join("deep")).await;
    use ipfaas_runtime::executor::wasm::mount::StoreInput;
    let e = StoreInput::open(&store, claims.0).await.err().unwrap();
    assert!(matches!(e, Error::OverLimit { .. }), "mount: {e}");
    let e = store
        .export_tree(claims.0, &tmp.path().join("c"), u64::MAX)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::OverLimit { .. }), "export: {e}");
    let e = store.stat(&liar.0).await.unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "stat: {e}");
    // a symlink target longer than PATH_MAX is refused where it is read
    let long = symlink_block(&"t/".repeat(2500), &opts);
    put_blocks(&store, vec![long.clone()]).await;
    let e = store.stat(&long.0).await.unwrap_err();
    assert!(matches!(e, Error::OverLimit { .. }), "stat: {e}");
    // the same shapes within the limits are fine: 8 levels of the shared child
    let mut ok = import_blocks(b"leaf", &opts);
    let mut c = ok.last().unwrap().0;
    for _ in 0..8 {
        let d = dir_block(&[("a", c), ("b", c)]);
        c = d.0;
        ok.push(d);
    }
    put_blocks(&store, ok).await;
    let dest = tmp.path().join("ok");
    assert_eq!(store.export_tree(c, &dest, u64::MAX).await.unwrap(), 4 << 8);
    assert_eq!(
        std::fs::read(dest.join("a/b/a/b/a/b/a/b")).unwrap(),
        b"leaf"
    );
    // and a byte budget is enforced before writing
    let e = store
        .export_tree(c, &tmp.path().join("small"), 100)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::OverLimit { .. }), "{e}");
    assert!(!tmp.path().join("small").exists());
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hamt_that_links_one_shard_twice_is_malformed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    let file = import_blocks(b"x", &ImportOptions::default());
    let shard = hamt_block(&[("41name", file[0].0)]);
    // every bucket of the root names the same shard: 256 listings of one block
    let buckets: Vec<String> = (0..256).map(|i| format!("{i:02X}")).collect();
    let links: Vec<(&str, Cid)> = buckets.iter().map(|b| (b.as_str(), shard.0)).collect();
    let root = hamt_block(&links);
    put_blocks(&store, vec![file[0].clone(), shard.clone(), root.clone()]).await;
    let e = store.entries(&root.0).await.unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("more than once"), "{e}");
    // one link to it lists normally
    let single = hamt_block(&[("00", shard.0)]);
    put_blocks(&store, vec![single.clone()]).await;
    let names: Vec<String> = store
        .entries(&single.0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["name"]);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_add_past_the_depth_limit_is_refused_without_harm() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    // 20,000 levels: once a stack overflow in the add (and O(depth²) memory)
    let deep = format!("{}f", "d/".repeat(20_000));
    let err = store
        .add(AddOptions::default(), move |a| {
            a.file(&deep, &mut &b"x"[..], |_| {}).map(drop)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("levels deep"), "{err}");
    // the deepest allowed path adds and reads back through every walk
    let limit = ipfaas_runtime::unixfs::limits::MAX_DEPTH;
    let ok = format!("{}f", "d/".repeat(limit - 1));
    let out = store
        .add(AddOptions::default(), move |a| {
            a.file(&ok, &mut &b"x"[..], |_| {}).map(drop)
        })
        .await
        .unwrap();
    let root = out.roots[0].cid;
    let dest = tmp.path().join("out");
    assert_eq!(store.export_tree(root, &dest, u64::MAX).await.unwrap(), 1);
    use ipfaas_runtime::executor::wasm::mount::StoreInput;
    StoreInput::open(&store, root).await.unwrap();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_a_whole_dag_through_stops_at_its_byte_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await;
    // 64 MiB claimed honestly from one 1 MiB block linked 64 times: cheap to send, costly to
    // fetch and keep (what a peer's "function" could ask of a rollback)
    let chunk = vec![3u8; 1 << 20];
    let raw = Cid::new_v1(0x55, sha256(&chunk));
    let links: Vec<(Cid, u64)> = (0..64).map(|_| (raw, 1 << 20)).collect();
    let file = file_block(&links, b"", 64 << 20);
    let dir = dir_block(&[("a", file.0), ("b", file.0)]);
    put_blocks(&store, vec![(raw, chunk), file.clone(), dir.clone()]).await;
    for root in [file.0, dir.0] {
        let e = store.read_through(root, 16 << 20).await.unwrap_err();
        assert!(matches!(e, Error::OverLimit { .. }), "{root}: {e}");
        assert_eq!(e.http_status(), 400);
    }
    store.read_through(file.0, 64 << 20).await.unwrap();
    store.read_through(dir.0, 128 << 20).await.unwrap();
    // a missing block is named, not skipped
    let absent = Cid::new_v1(0x55, sha256(b"never stored"));
    let hole = file_block(&[(absent, 5)], b"", 5);
    put_blocks(&store, vec![hole.clone()]).await;
    assert!(
        store
            .local_only()
            .read_through(hole.0, 1 << 20)
            .await
            .is_err()
    );
    store.shutdown().await;
}
