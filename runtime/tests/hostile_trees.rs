//! Trees crafted by an attacker (a peer's DAG, a bundle, a Docker input) on the real store:
//! writing one out never touches anything outside its destination.
//!
//! The directory blocks are encoded here by hand with the dag-pb encoder, as a peer could send
//! them, and put into the store beside a normal add.

use cid::Cid;
use ipfaas_runtime::store::add::AddOptions;
use ipfaas_runtime::unixfs::file::import_bytes;
use ipfaas_runtime::unixfs::pb::{DataType, Link, Node, UnixFs};
use ipfaas_runtime::unixfs::{BlockSink, HashOnly, ImportOptions, sha256, symlink};
use ipfaas_runtime::{Error, Store, StoreConfig};

const DAG_PB: u64 = 0x70;

/// A basic UnixFS directory block with exactly these links, in this order (duplicates too).
fn dir_block(links: &[(&str, Cid)]) -> (Cid, Vec<u8>) {
    let links: Vec<Link> = links
        .iter()
        .map(|(name, cid)| Link {
            cid: *cid,
            name: name.to_string(),
            tsize: 0,
        })
        .collect();
    let data = UnixFs::new(DataType::Directory).encode();
    let block = Node::encode(&links, Some(&data));
    (Cid::new_v1(DAG_PB, sha256(&block)), block)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_listed_twice_cannot_write_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::offline(tmp.path().join("repo")),
        &prometheus::Registry::new(),
    )
    .await
    .unwrap();
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
    store
        .add(
            AddOptions {
                pin: false,
                ..Default::default()
            },
            move |a| {
                a.file("payload", &mut &payload[..], |_| {})?;
                symlink(&victim_str, &opts, a.sink())?;
                for (cid, block) in [top, inner, fine] {
                    a.sink().put(&cid, &block)?;
                }
                Ok(())
            },
        )
        .await
        .unwrap();

    for root in &roots[..2] {
        let err = store.entries(root).await.unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("more than once"), "{err}");
        let dest = tmp.path().join(format!("export-{root}"));
        let err = ipfaas_runtime::mount::export_tree(&store, *root, &dest)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    // a well-formed tree with a symlink exports, and the symlink is only a symlink
    let dest = tmp.path().join("export-ok");
    ipfaas_runtime::mount::export_tree(&store, roots[2], &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read_link(dest.join("a")).unwrap(), victim);
    assert_eq!(std::fs::read(dest.join("b")).unwrap(), b"overwritten!");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // exporting again over it refuses to write through what is there
    assert!(
        ipfaas_runtime::mount::write_file(&store, roots[2], &dest.join("a"))
            .await
            .is_err()
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    store.shutdown().await;
}
