//! CIDs byte-identical to Kubo for both IPIP-499 profiles.
//!
//! Vectors come from Kubo's own tests: `test/cli/cid_profiles_test.go` (deterministic ChaCha20
//! inputs, files at/over the max-links boundary, directories exactly at and one byte over the HAMT
//! threshold), `test/sharness/t0260-sharding.sh` (2,000-file directory, flat and force-sharded,
//! CIDv0 and CIDv1), and well-known single-object CIDs.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use ipfaas_runtime::unixfs::file::{FileBuilder, import_bytes};
use ipfaas_runtime::unixfs::{HashOnly, ImportOptions, Imported, Profile, dir, symlink};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

fn v0() -> ImportOptions {
    ImportOptions::profile(Profile::UnixfsV0_2015)
}
fn v1() -> ImportOptions {
    ImportOptions::profile(Profile::UnixfsV1_2025)
}

fn file(data: &[u8], opts: &ImportOptions) -> Imported {
    import_bytes(data, opts, &mut HashOnly).unwrap()
}

/// Kubo's `testutils.DeterministicRandomReader`: ChaCha20 keystream, key = sha256(seed), zero nonce.
struct Keystream(ChaCha20);
impl Keystream {
    fn new(seed: &str) -> Self {
        let key: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
        Self(ChaCha20::new(&key.into(), &[0u8; 12].into()))
    }
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
        self.0.apply_keystream(buf);
    }
}

/// Streams `size` keystream bytes into a file import without holding them all.
fn deterministic_file(size: u64, seed: &str, opts: &ImportOptions) -> Imported {
    let mut ks = Keystream::new(seed);
    let mut sink = HashOnly;
    let mut b = FileBuilder::new(opts, &mut sink);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        ks.fill(&mut buf[..n]);
        b.write(&buf[..n]).unwrap();
        left -= n as u64;
    }
    b.finish().unwrap()
}

/// Kubo's `createDeterministicFiles`: names from a keystream over an easy alphabet, each file "x".
fn deterministic_dir(
    count: usize,
    name_len: usize,
    last_len: usize,
    seed: &str,
    opts: &ImportOptions,
) -> Imported {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz01234567890-_";
    let mut ks = Keystream::new(seed);
    let x = file(b"x", opts);
    let mut entries = BTreeMap::new();
    for i in 0..count {
        let len = if i == count - 1 { last_len } else { name_len };
        let mut raw = vec![0u8; len];
        ks.fill(&mut raw);
        let name: String = raw
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        entries.insert(name, x);
    }
    assert_eq!(entries.len(), count, "names collided");
    dir::build(&entries, opts, &mut HashOnly).unwrap()
}

/// t0260's `testdata`: file1..file2000, each holding "$i\n".
fn sharness_testdata(opts: &ImportOptions) -> Imported {
    let entries: BTreeMap<String, Imported> = (1..=2000)
        .map(|i| (format!("file{i}"), file(format!("{i}\n").as_bytes(), opts)))
        .collect();
    dir::build(&entries, opts, &mut HashOnly).unwrap()
}

#[test]
fn single_objects_v0() {
    let o = v0();
    assert_eq!(
        file(b"hello world\n", &o).cid.to_string(),
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    );
    assert_eq!(
        file(b"hello world", &o).cid.to_string(),
        "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    );
    assert_eq!(
        file(b"", &o).cid.to_string(),
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
    let zeros = file(&vec![0u8; 1 << 20], &o);
    assert_eq!(
        zeros.cid.to_string(),
        "QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU"
    );
    assert_eq!(zeros.size, 1 << 20);
    let empty = dir::build(&BTreeMap::new(), &o, &mut HashOnly).unwrap();
    assert_eq!(
        empty.cid.to_string(),
        "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    );
    // t0260: file100 inside the sharded directory resolves to this
    assert_eq!(
        file(b"100\n", &o).cid.to_string(),
        "QmZ3RfWk1u5LEGYLHA633B5TNJy3Du27K6Fny9wcxpowGS"
    );
}

#[test]
fn single_objects_v1() {
    let o = v1();
    assert_eq!(
        file(b"hello world", &o).cid.to_string(),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
    let empty = dir::build(&BTreeMap::new(), &o, &mut HashOnly).unwrap();
    assert_eq!(
        empty.cid.to_string(),
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    );
    assert_eq!(
        deterministic_file(1 << 20, "chunk-v1-seed", &o)
            .cid
            .to_string(),
        "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta"
    );
    assert_eq!(
        deterministic_file((1 << 20) + 1, "chunk-v1-seed", &o)
            .cid
            .to_string(),
        "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"
    );
}

#[test]
fn file_at_and_over_max_links_v0() {
    let o = v0();
    // 174 leaves: one level; 175: Kubo deepens the tree
    assert_eq!(
        deterministic_file(44544 * 1024, "v0-seed", &o)
            .cid
            .to_string(),
        "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"
    );
    assert_eq!(
        deterministic_file(44800 * 1024, "v0-seed", &o)
            .cid
            .to_string(),
        "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"
    );
}

#[test]
fn file_at_and_over_max_links_v1() {
    let o = v1();
    // 1 GiB and 1 GiB + 1 MiB of keystream; hashing only, nothing is stored
    assert_eq!(
        deterministic_file(1024 << 20, "v1-2025-seed", &o)
            .cid
            .to_string(),
        "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm"
    );
    assert_eq!(
        deterministic_file(1025 << 20, "v1-2025-seed", &o)
            .cid
            .to_string(),
        "bafybeihmzokxxjqwxjcryerhp5ezpcog2wcawfryb2xm64xiakgm4a5jue"
    );
}

#[test]
fn hamt_threshold_links_estimation_v0() {
    let o = v0();
    // 4096 * (30 + 34) = 262144: exactly at the threshold stays flat
    assert_eq!(
        deterministic_dir(4096, 30, 30, "hamt-unixfs-v0-2015", &o)
            .cid
            .to_string(),
        "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN"
    );
    // 4033 * (31 + 34) = 262145: one byte over becomes a HAMT
    assert_eq!(
        deterministic_dir(4033, 31, 31, "hamt-unixfs-v0-2015", &o)
            .cid
            .to_string(),
        "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP"
    );
}

#[test]
fn hamt_threshold_block_estimation_v1() {
    let o = v1();
    assert_eq!(
        deterministic_dir(4766, 11, 21, "hamt-unixfs-v1-2025", &o)
            .cid
            .to_string(),
        "bafybeic3h7rwruealwxkacabdy45jivq2crwz6bufb5ljwupn36gicplx4"
    );
    assert_eq!(
        deterministic_dir(4766, 11, 22, "hamt-unixfs-v1-2025", &o)
            .cid
            .to_string(),
        "bafybeiegvuterwurhdtkikfhbxcldohmxp566vpjdofhzmnhv6o4freidu"
    );
}

#[test]
fn sharness_2000_files_flat_and_force_sharded() {
    let flat = sharness_testdata(&v0());
    assert_eq!(
        flat.cid.to_string(),
        "QmavrTrQG4VhoJmantURAYuw3bowq3E2WcvP36NRQDAC1N"
    );
    // Internal.UnixFSShardingSizeThreshold = "1B"
    let forced = ImportOptions {
        hamt_threshold: 1,
        ..v0()
    };
    assert_eq!(
        sharness_testdata(&forced).cid.to_string(),
        "QmSCJD1KYLhVVHqBK3YyXuoEqHt7vggyJhzoFYbT8v1XYL"
    );
    // ... and `ipfs add --cid-version=1` (raw leaves, CIDv1 nodes), still force-sharded
    let forced_v1 = ImportOptions {
        hamt_threshold: 1,
        ..v0().with_cid_version(true)
    };
    assert_eq!(
        sharness_testdata(&forced_v1).cid.to_string(),
        "bafybeibiemewfzzdyhq2l74wrd6qj2oz42usjlktgnlqv4yfawgouaqn4u"
    );
}

#[test]
fn symlink_and_options() {
    let s = symlink("target/file", &v0(), &mut HashOnly).unwrap();
    assert_eq!(s.cid.version(), cid::Version::V0);
    assert_eq!(v0().with_chunker("size-1024").unwrap().chunk_size, 1024);
    assert!(v0().with_chunker("rabin-1-2-3").is_err());
    assert!(v0().with_chunker("size-0").is_err());
    assert!(v0().with_chunker("size-99999999").is_err());
    assert!("unixfs-v9".parse::<Profile>().is_err());
    // cid-version=1 turns raw leaves on, like Kubo
    assert!(v0().with_cid_version(true).raw_leaves);
}
