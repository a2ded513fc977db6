//! A deploy bundle: the files of a function directory, read from a tar or zip body, a multipart
//! upload or a local directory, validated; and the rule for function names.

use super::manifest::{Manifest, Spec};
use crate::error::{Error, Result};
use crate::store::add::clean_path;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest bundle accepted (all files together).
pub const MAX_BUNDLE: u64 = 256 << 20;
/// Most files a bundle may hold (a function with its vendored packages has hundreds to a few
/// thousand).
pub const MAX_BUNDLE_FILES: usize = 20_000;

/// Relative path → contents, sorted (so the bundle's CID does not depend on upload order).
#[derive(Debug, Default, Clone)]
pub struct Bundle {
    /// The files.
    pub files: BTreeMap<String, Bytes>,
    /// The files' bytes together, kept so that a bundle of many entries is not summed again
    /// for each one.
    bytes: u64,
}

fn too_large() -> Error {
    Error::InvalidInput(format!(
        "the bundle is over the {} MiB limit",
        MAX_BUNDLE >> 20
    ))
}

fn too_many() -> Error {
    Error::InvalidInput(format!(
        "the bundle holds more than {MAX_BUNDLE_FILES} files"
    ))
}

impl Bundle {
    /// Adds a file; the path must be relative and clean, and new.
    pub fn insert(&mut self, path: &str, data: Bytes) -> Result<()> {
        let parts = clean_path(path)?;
        let path = parts.join("/");
        let total = self.bytes + data.len() as u64;
        if total > MAX_BUNDLE {
            return Err(too_large());
        }
        if self.files.contains_key(&path) {
            return Err(Error::InvalidInput(format!(
                "{path:?} appears twice in the bundle"
            )));
        }
        if self.files.len() >= MAX_BUNDLE_FILES {
            return Err(too_many());
        }
        self.files.insert(path, data);
        self.bytes = total;
        Ok(())
    }

    /// Reads one archive member without trusting the size its header claims (a 1.5 KB tar can
    /// claim a TiB, a zip member can inflate a thousandfold): at most what is left of the
    /// bundle limit is read, and memory grows only with what actually arrives.
    fn read_member(&self, r: &mut impl Read, name: &str) -> Result<Bytes> {
        let room = MAX_BUNDLE.saturating_sub(self.bytes);
        let mut data = Vec::new();
        r.take(room + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::InvalidInput(format!("{name:?}: {e}")))?;
        if data.len() as u64 > room {
            return Err(too_large());
        }
        Ok(data.into())
    }

    /// Reads a tar (plain) or zip body; the format is told by its first bytes. Takes time in
    /// proportion to the body (up to [`MAX_BUNDLE`]): call it from a blocking thread.
    pub fn from_archive(body: &[u8]) -> Result<Self> {
        let mut b = if body.starts_with(b"PK\x03\x04") || body.starts_with(b"PK\x05\x06") {
            Self::from_zip(body)?
        } else if body.starts_with(&[0x1f, 0x8b]) {
            return Err(Error::InvalidInput(
                "compressed tar is not supported: send a plain tar or a zip".into(),
            ));
        } else {
            Self::from_tar(body)?
        };
        b.strip_common_root();
        Ok(b)
    }

    fn from_tar(body: &[u8]) -> Result<Self> {
        let bad = |e: std::io::Error| {
            Error::InvalidInput(format!("the body is not a valid tar or zip archive: {e}"))
        };
        let mut out = Self::default();
        let mut ar = tar::Archive::new(body);
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let kind = entry.header().entry_type();
            let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
                continue;
            }
            if !kind.is_file() {
                return Err(Error::InvalidInput(format!(
                    "{path:?}: bundles hold regular files and directories only"
                )));
            }
            let data = out.read_member(&mut entry, &path)?;
            out.insert(path.trim_start_matches("./"), data)?;
        }
        if out.files.is_empty() {
            return Err(Error::InvalidInput(
                "the bundle is empty (or not a tar or zip archive)".into(),
            ));
        }
        Ok(out)
    }

    fn from_zip(body: &[u8]) -> Result<Self> {
        let bad =
            |e: zip::result::ZipError| Error::InvalidInput(format!("invalid zip archive: {e}"));
        let mut out = Self::default();
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(body)).map_err(bad)?;
        // directories count too: a bundle of that many entries is refused before any is read
        if z.len() > 2 * MAX_BUNDLE_FILES {
            return Err(too_many());
        }
        for i in 0..z.len() {
            let mut f = z.by_index(i).map_err(bad)?;
            if f.is_dir() {
                continue;
            }
            let name = f.name().to_string();
            let data = out.read_member(&mut f, &name)?;
            out.insert(&name, data)?;
        }
        Ok(out)
    }

    /// Reads a local directory (hidden files and `__pycache__` skipped).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        fn walk(out: &mut Bundle, root: &Path, rel: &str) -> Result<()> {
            let mut entries: Vec<_> =
                std::fs::read_dir(root.join(rel))?.collect::<std::io::Result<_>>()?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name == "__pycache__" {
                    continue;
                }
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let ty = e.file_type()?;
                if ty.is_dir() {
                    walk(out, root, &path)?;
                } else if ty.is_file() {
                    out.insert(&path, std::fs::read(e.path())?.into())?;
                }
            }
            Ok(())
        }
        let mut out = Self::default();
        walk(&mut out, dir, "")?;
        Ok(out)
    }

    /// An archive made of a directory `foo/` holding everything means the files of `foo/`.
    fn strip_common_root(&mut self) {
        if self.files.contains_key("function.py") || self.files.contains_key("ipfaas.toml") {
            return;
        }
        let Some(first) = self.files.keys().next() else {
            return;
        };
        let Some((root, _)) = first.split_once('/') else {
            return;
        };
        let prefix = format!("{root}/");
        if self.files.keys().all(|k| k.starts_with(&prefix)) {
            self.files = std::mem::take(&mut self.files)
                .into_iter()
                .map(|(k, v)| (k[prefix.len()..].to_string(), v))
                .collect();
        }
    }

    /// The bundle's `ipfaas.toml`, or a Python function with default limits without one.
    pub fn manifest(&self) -> Result<Manifest> {
        match self.files.get("ipfaas.toml") {
            None => Ok(Manifest {
                name: None,
                spec: Spec::Python(Default::default()),
            }),
            Some(b) => Manifest::from_toml(b),
        }
    }
}

/// Function names: 1-64 characters, each a letter or digit (any script: `é`, `日`, `٣`) or one of
/// `-`, `_`, `.`; not starting with `.`, and never something that parses as a CID (in any
/// base) or starts like one (`Qm`, `bafy`), so that `/v1/functions/{name|cid}` is never
/// ambiguous. Names travel percent-encoded in URL paths; the server decodes each segment.
pub fn check_name(name: &str) -> Result<()> {
    let chars = name.chars().count();
    let ok = (1..=64).contains(&chars)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.')
        && !name.starts_with("Qm")
        && !name.starts_with("bafy")
        && cid::Cid::try_from(name).is_err();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "invalid function name {name:?}: use 1-64 letters (any script), digits, '-', '_' or '.', not starting with '.' and not a CID"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_sizes_are_not_trusted() {
        // a tar header claiming 1 TiB in a body of a few KB: an error, not an allocation
        let mut h = tar::Header::new_gnu();
        h.set_path("function.py").unwrap();
        h.set_size(1 << 40);
        h.set_mode(0o644);
        h.set_cksum();
        let mut body = h.as_bytes().to_vec();
        body.extend_from_slice(&[b'x'; 2048]);
        assert!(Bundle::from_archive(&body).is_err());

        // a zip member that inflates past the bundle limit is refused once it passes it
        let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zw.start_file("function.py", opts).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(MAX_BUNDLE >> 20) + 1 {
            std::io::Write::write_all(&mut zw, &zeros).unwrap();
        }
        let zip = zw.finish().unwrap().into_inner();
        assert!(
            zip.len() < 2 << 20,
            "the bomb is small: {} bytes",
            zip.len()
        );
        let e = Bundle::from_archive(&zip).unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");
    }

    #[test]
    fn archive_root_is_stripped_and_paths_checked() {
        let mut t = tar::Builder::new(Vec::new());
        for (p, d) in [
            ("fn/function.py", &b"def main(i): pass\n"[..]),
            ("fn/lib/x.py", b""),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            t.append_data(&mut h, p, d).unwrap();
        }
        let b = Bundle::from_archive(&t.into_inner().unwrap()).unwrap();
        assert_eq!(
            b.files.keys().collect::<Vec<_>>(),
            ["function.py", "lib/x.py"]
        );
        // the same bundle as a zip
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("function.py", o).unwrap();
        std::io::Write::write_all(&mut z, b"def main(i): pass\n").unwrap();
        z.add_directory("lib/", o).unwrap();
        z.start_file("lib/x.py", o).unwrap();
        let zb = Bundle::from_archive(&z.finish().unwrap().into_inner()).unwrap();
        assert_eq!(zb.files, b.files);
        let e = Bundle::from_archive(b"\x1f\x8b\x08\x00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("compressed"), "{e}");
        assert!(check_name("wordcount").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("QmFoo").is_err());
        for good in [
            "csv-stats",
            "a_b.c",
            "v2",
            "données",
            "日本語",
            "x".repeat(64).as_str(),
        ] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        // CIDs in other bases than the two prefixes above would shadow themselves
        for cid in [
            "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8",
            "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",
            "bagaaierasords4njcts6vs7qvdjfcvgnume4hqohf65zsfguprqphs3icwea",
        ] {
            assert!(check_name(cid).is_err(), "{cid}");
        }
        for bad in [
            "",
            ".x",
            "a/b",
            "a b",
            "a%2Db",
            "x\u{0}",
            "a\u{202e}b",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
