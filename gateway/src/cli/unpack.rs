//! `ipfaas get`: extracts the `ipfs get`-style tar a node sends into a local directory.
//!
//! The archive comes from whatever node the client talks to, so it is untrusted: every entry
//! below the root is created through a directory handle on the destination (`cap-std`), which
//! resolves each path inside that directory and refuses any that would leave it — through `..`,
//! an absolute path, or a symlink the archive itself made earlier. Symlinks are recreated as
//! they are (as `ipfs get` does); they can point anywhere, but nothing is ever written through
//! one that leads out.

use anyhow::{Context, Result, bail};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Extracts the archive read from `r`; its first path component is renamed to `dest`.
pub fn unpack(r: impl Read, dest: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    let mut root: Option<Dir> = None;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rel = relative(&path)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // the root: where the user asked for it
            match kind {
                tar::EntryType::Directory => {
                    std::fs::create_dir_all(dest)
                        .with_context(|| format!("creating {}", dest.display()))?;
                    root = Some(Dir::open_ambient_dir(dest, ambient_authority())?);
                }
                tar::EntryType::Regular => {
                    let mut f = std::fs::File::create(dest)
                        .with_context(|| format!("writing {}", dest.display()))?;
                    std::io::copy(&mut entry, &mut f)?;
                }
                other => bail!("the archive's root is a {other:?}, not a file or directory"),
            }
            continue;
        }
        let Some(dir) = &root else {
            bail!(
                "{} comes before its root directory in the archive",
                path.display()
            );
        };
        let shown = dest.join(&rel);
        let within = |e: std::io::Error| {
            anyhow::Error::new(e).context(format!("writing {}", shown.display()))
        };
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            dir.create_dir_all(parent).map_err(within)?;
        }
        match kind {
            tar::EntryType::Directory => dir.create_dir_all(&rel).map_err(within)?,
            tar::EntryType::Regular => {
                let mut f = dir
                    .open_with(
                        &rel,
                        OpenOptions::new().write(true).create(true).truncate(true),
                    )
                    .map_err(within)?;
                std::io::copy(&mut entry, &mut f).map_err(within)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .with_context(|| format!("symlink {} without a target", path.display()))?;
                if dir.symlink_metadata(&rel).is_ok_and(|m| !m.is_dir()) {
                    dir.remove_file(&rel).map_err(within)?;
                }
                dir.symlink_contents(&target, &rel).map_err(within)?;
            }
            other => bail!("{}: unsupported entry type {other:?}", path.display()),
        }
    }
    Ok(())
}

/// The entry's path without its first component; only plain names are accepted.
fn relative(path: &Path) -> Result<PathBuf> {
    let mut comps = path.components();
    match comps.next() {
        Some(Component::Normal(_)) => {}
        _ => bail!("unsafe path {} in archive", path.display()),
    }
    let mut rel = PathBuf::new();
    for c in comps {
        match c {
            Component::Normal(p) => rel.push(p),
            _ => bail!("unsafe path {} in archive", path.display()),
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive with these entries in this order: (path, kind, data or link target).
    fn archive(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            match kind {
                tar::EntryType::Symlink => {
                    h.set_size(0);
                    b.append_link(&mut h, path, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    // set_path refuses `..`; hostile archives are written raw
                    let name = path.as_bytes();
                    h.as_old_mut().name[..name.len()].copy_from_slice(name);
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};

    #[test]
    fn a_tree_is_extracted_with_its_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let ar = archive(&[
            ("r", D, ""),
            ("r/a", F, "hello"),
            ("r/s", D, ""),
            ("r/s/b", F, "deep"),
            ("r/link", L, "/etc/passwd"),
        ]);
        unpack(&ar[..], &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"hello");
        assert_eq!(std::fs::read(dest.join("s/b")).unwrap(), b"deep");
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        // again, over what is there: files are replaced
        let ar = archive(&[("r", D, ""), ("r/a", F, "again")]);
        unpack(&ar[..], &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"again");
    }

    #[test]
    fn nothing_is_written_outside_the_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let victim = outside.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let o = outside.to_str().unwrap();
        let v = victim.to_str().unwrap();
        let attacks: Vec<Vec<(&str, tar::EntryType, &str)>> = vec![
            // a symlink to the victim, then a file of the same name
            vec![("r", D, ""), ("r/x", L, v), ("r/x", F, "pwned")],
            // a symlink to a directory outside, then a file below it
            vec![("r", D, ""), ("r/d", L, o), ("r/d/victim", F, "pwned")],
            vec![
                ("r", D, ""),
                ("r/d", L, "../outside"),
                ("r/d/victim", F, "pwned"),
            ],
            // a directory entry below a symlink outside, then a file in it
            vec![
                ("r", D, ""),
                ("r/d", L, o),
                ("r/d/new", D, ""),
                ("r/d/new/f", F, "x"),
            ],
            // dot-dot and absolute names
            vec![("r", D, ""), ("r/../outside/victim", F, "pwned")],
            vec![("r", D, ""), ("/r/victim", F, "pwned")],
            // a child before its root
            vec![("r/victim", F, "pwned")],
        ];
        for (i, a) in attacks.iter().enumerate() {
            let dest = tmp.path().join(format!("dest{i}"));
            let r = unpack(&archive(a)[..], &dest);
            assert!(r.is_err(), "attack {i} was extracted: {a:?}");
            assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "attack {i}");
            let listed: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
            assert_eq!(listed.len(), 1, "attack {i} created a file outside");
        }
    }
}
