//! One add: files, directories and symlinks imported into the block store, assembled into
//! directory nodes at the end, committed durably, then pinned. Nothing is pinned and no CID is
//! reported before the commit, so a crash mid-add leaves only unreferenced blocks behind.

use super::blockstore::{BatchWriter, FlatFs};
use crate::error::{Error, Result};
use crate::unixfs::{self, BlockSink, ImportOptions, Imported, dir, file::FileBuilder};
use cid::Cid;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// How one add imports, pins and commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOptions {
    /// Chunking, layout and CID options, which decide the CIDs.
    pub import: ImportOptions,
    /// Wrap the top-level items in a directory (`--wrap-with-directory`).
    pub wrap: bool,
    /// Pin the roots (recursively) once the add has committed.
    pub pin: bool,
    /// Make the blocks durable before returning (one `syncfs`). Without it the caller must call
    /// [`crate::Store::sync_and_pin`] before relying on them surviving a crash.
    pub durable: bool,
}

impl Default for AddOptions {
    fn default() -> Self {
        Self {
            import: ImportOptions::default(),
            wrap: false,
            pin: true,
            durable: true,
        }
    }
}

/// One imported item, named by its path within the add ("" for a wrapping directory).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Added {
    /// Slash-separated path within the add.
    pub path: String,
    /// The item's root CID.
    #[serde(serialize_with = "ser_cid")]
    pub cid: Cid,
    /// Cumulative DAG size.
    pub tsize: u64,
    /// File bytes (0 for directories).
    pub size: u64,
}

fn ser_cid<S: serde::Serializer>(c: &Cid, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(c)
}

/// What one add produced.
#[derive(Debug, Clone, Default)]
pub struct AddOutcome {
    /// Files and symlinks in the order added, then directories children-first.
    pub added: Vec<Added>,
    /// The top-level items (or the wrapping directory).
    pub roots: Vec<Added>,
    /// Blocks that were not in the store before.
    pub new_blocks: u64,
    /// Bytes of those new blocks.
    pub new_bytes: u64,
    /// File content imported (symlinks and directory nodes not counted), new or not.
    pub content_bytes: u64,
}

/// Validates a slash-separated relative path: no absolute paths, no `.`/`..`, no empty parts,
/// and within the depth and name-length limits of [`crate::unixfs::limits`].
pub fn clean_path(p: &str) -> Result<Vec<&str>> {
    let bad = || Error::InvalidPath(p.to_string());
    if p.is_empty() || p.starts_with('/') || p.contains('\0') || p.contains('\\') {
        return Err(bad());
    }
    let parts: Vec<&str> = p.trim_end_matches('/').split('/').collect();
    if parts
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(bad());
    }
    crate::unixfs::limits::check_path_shape(p, &parts)?;
    Ok(parts)
}

/// Builds one add: takes entries by path, then [`Adder::finish`] assembles the directories and
/// commits.
pub struct Adder<'a> {
    opts: AddOptions,
    writer: BatchWriter<'a>,
    /// Directory path ("" = the top level) → its entries.
    dirs: BTreeMap<String, BTreeMap<String, Imported>>,
    added: Vec<Added>,
    content_bytes: u64,
}

impl<'a> Adder<'a> {
    /// An empty add writing into `fs`.
    pub fn new(fs: &'a FlatFs, opts: AddOptions) -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert(String::new(), BTreeMap::new());
        Self {
            opts,
            writer: fs.writer(),
            dirs,
            added: Vec::new(),
            content_bytes: 0,
        }
    }

    /// Declares a directory (parents are implied).
    pub fn dir(&mut self, path: &str) -> Result<()> {
        let parts = clean_path(path)?;
        self.ensure_dir(&parts.join("/"))
    }

    fn ensure_dir(&mut self, path: &str) -> Result<()> {
        if path.is_empty() || self.dirs.contains_key(path) {
            return Ok(());
        }
        let (parent, name) = split(path);
        self.ensure_dir(parent)?;
        if self.dirs[parent].contains_key(name) {
            return Err(Error::InvalidInput(format!(
                "{path:?} is both a file and a directory"
            )));
        }
        self.dirs.insert(path.to_string(), BTreeMap::new());
        Ok(())
    }

    fn place(&mut self, path: &str, item: Imported) -> Result<()> {
        let (parent, name) = split(path);
        self.ensure_dir(parent)?;
        if self.dirs.contains_key(path) || self.dirs[parent].contains_key(name) {
            return Err(Error::InvalidInput(format!(
                "duplicate path {path:?} in one add"
            )));
        }
        self.dirs
            .get_mut(parent)
            .expect("ensured")
            .insert(name.to_string(), item);
        self.added.push(Added {
            path: path.to_string(),
            cid: item.cid,
            tsize: item.tsize,
            size: item.size,
        });
        Ok(())
    }

    /// Imports a file from `r`, calling `progress` with the running byte count.
    pub fn file(
        &mut self,
        path: &str,
        r: &mut impl Read,
        progress: impl FnMut(u64),
    ) -> Result<Imported> {
        self.import_file(path, |b| b.write_from(r, progress).map(drop))
    }

    /// Imports a file that has no name, as Kubo's RPC accepts (a multipart part without a file
    /// name: what `ipfs.add(bytes)` of the JavaScript client sends). It goes at the top level
    /// named by its own CID, which is also the name Kubo reports for it; the same bytes sent
    /// twice unnamed are one entry.
    pub fn unnamed_file(
        &mut self,
        r: &mut impl Read,
        progress: impl FnMut(u64),
    ) -> Result<Imported> {
        let mut b = FileBuilder::new(&self.opts.import, &mut self.writer);
        b.write_from(r, progress)?;
        let item = b.finish()?;
        self.content_bytes += item.size;
        let name = item.cid.to_string();
        match self.dirs[""].get(&name) {
            Some(same) if same.cid == item.cid => {}
            _ => self.place(&name, item)?,
        }
        Ok(item)
    }

    /// Adds `data`, already in memory, as the file `path`: [`Self::file`] without its read
    /// buffer (a chunk's worth, zeroed), which costs more than hashing a small output.
    pub fn bytes(&mut self, path: &str, data: &[u8]) -> Result<Imported> {
        self.import_file(path, |b| b.write(data))
    }

    /// One file at `path`, its content written into the builder by `feed`.
    fn import_file(
        &mut self,
        path: &str,
        feed: impl FnOnce(&mut FileBuilder<'_, BatchWriter<'a>>) -> std::io::Result<()>,
    ) -> Result<Imported> {
        let path = clean_path(path)?.join("/");
        let mut b = FileBuilder::new(&self.opts.import, &mut self.writer);
        feed(&mut b)?;
        let item = b.finish()?;
        self.content_bytes += item.size;
        self.place(&path, item)?;
        Ok(item)
    }

    /// Adds a symlink at `path` pointing at `target` (stored as written, not followed).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<Imported> {
        let path = clean_path(path)?.join("/");
        let max = crate::unixfs::limits::MAX_SYMLINK_TARGET;
        if target.len() > max {
            return Err(Error::InvalidInput(format!(
                "the symlink {path:?} has a target longer than {max} bytes"
            )));
        }
        let item = unixfs::symlink(target, &self.opts.import, &mut self.writer)?;
        self.place(&path, item)?;
        Ok(item)
    }

    /// Adds a local file or (with `recursive`) directory tree under `name`. Hidden entries (names
    /// starting with `.`) inside directories are skipped unless `hidden`, as `ipfs add -r` does.
    pub fn local(
        &mut self,
        fs_path: &Path,
        name: &str,
        recursive: bool,
        hidden: bool,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<()> {
        let meta = std::fs::symlink_metadata(fs_path)?;
        if meta.is_symlink() {
            let target = std::fs::read_link(fs_path)?;
            self.symlink(name, &target.to_string_lossy())?;
        } else if meta.is_dir() {
            if !recursive {
                return Err(Error::InvalidInput(format!(
                    "{} is a directory; use -r",
                    fs_path.display()
                )));
            }
            self.dir(name)?;
            let mut children: Vec<_> =
                std::fs::read_dir(fs_path)?.collect::<std::io::Result<_>>()?;
            children.sort_by_key(|e| e.file_name());
            for e in children {
                let child = e.file_name().into_string().map_err(|n| {
                    Error::InvalidInput(format!("file name {n:?} is not valid UTF-8"))
                })?;
                if !hidden && child.starts_with('.') {
                    continue;
                }
                self.local(
                    &e.path(),
                    &format!("{name}/{child}"),
                    true,
                    hidden,
                    progress,
                )?;
            }
        } else if meta.is_file() {
            use std::os::unix::fs::OpenOptionsExt;
            // not followed if it became a symlink since, not blocked on if it became a FIFO
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(fs_path)?;
            if !f.metadata()?.is_file() {
                return Err(not_a_file(fs_path));
            }
            self.file(name, &mut f, |n| progress(name, n))?;
        } else {
            return Err(not_a_file(fs_path));
        }
        Ok(())
    }

    /// Builds the directories, makes everything durable and returns what was added.
    /// The caller pins `roots` afterwards.
    pub fn finish(mut self) -> Result<AddOutcome> {
        let mut paths: Vec<String> = self
            .dirs
            .keys()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect();
        // children before parents
        paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        let mut dir_added = Vec::new();
        for path in paths {
            let entries = self.dirs.remove(&path).expect("listed");
            let item = dir::build(&entries, &self.opts.import, &mut self.writer)?;
            let (parent, name) = split(&path);
            self.dirs
                .get_mut(parent)
                .expect("parents exist")
                .insert(name.to_string(), item);
            dir_added.push(Added {
                path: path.clone(),
                cid: item.cid,
                tsize: item.tsize,
                size: 0,
            });
        }
        let top = self.dirs.remove("").expect("top level");
        if top.is_empty() {
            return Err(Error::InvalidInput("nothing to add".into()));
        }
        let by_path = |name: &str, item: &Imported| Added {
            path: name.into(),
            cid: item.cid,
            tsize: item.tsize,
            size: item.size,
        };
        let roots = if self.opts.wrap {
            let w = dir::build(&top, &self.opts.import, &mut self.writer)?;
            let w = Added {
                path: String::new(),
                cid: w.cid,
                tsize: w.tsize,
                size: 0,
            };
            dir_added.push(w.clone());
            vec![w]
        } else {
            top.iter().map(|(n, i)| by_path(n, i)).collect()
        };
        if self.opts.durable {
            self.writer.commit()?;
        } else {
            self.writer.flush()?;
        }
        self.added.extend(dir_added);
        Ok(AddOutcome {
            added: self.added,
            roots,
            new_blocks: self.writer.new_blocks,
            new_bytes: self.writer.new_bytes,
            content_bytes: self.content_bytes,
        })
    }

    /// Lets tests and tools put raw blocks alongside (e.g. to build special DAGs).
    pub fn sink(&mut self) -> &mut impl BlockSink {
        &mut self.writer
    }
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The error for a special file (FIFO, socket, device) met while adding a local tree.
fn not_a_file(p: &Path) -> Error {
    Error::InvalidInput(format!(
        "{} is not a regular file, directory or symlink",
        p.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_rejects_escapes() {
        for bad in ["", "/etc/passwd", "a/../b", "..", "./a", "a//b", "a\\b"] {
            assert!(clean_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            clean_path("a/b c/ü.txt").unwrap(),
            vec!["a", "b c", "ü.txt"]
        );
        assert_eq!(clean_path("dir/").unwrap(), vec!["dir"]);
    }

    #[test]
    fn unnamed_files_are_named_by_their_cid() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = FlatFs::open(tmp.path().join("blocks")).unwrap();
        let mut a = Adder::new(&fs, AddOptions::default());
        let x = a.unnamed_file(&mut &b"same"[..], |_| {}).unwrap();
        let again = a.unnamed_file(&mut &b"same"[..], |_| {}).unwrap();
        let y = a.unnamed_file(&mut &b"other"[..], |_| {}).unwrap();
        assert_eq!(x.cid, again.cid);
        let out = a.finish().unwrap();
        let roots: Vec<(String, Cid)> = out.roots.iter().map(|r| (r.path.clone(), r.cid)).collect();
        let mut want = vec![(x.cid.to_string(), x.cid), (y.cid.to_string(), y.cid)];
        want.sort();
        assert_eq!(roots, want);
    }

    #[test]
    fn bytes_adds_what_file_adds() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = FlatFs::open(tmp.path().join("blocks")).unwrap();
        let cs = ImportOptions::default().chunk_size;
        // empty, small, exactly one chunk, and a partial chunk after whole ones
        for len in [0, 2, cs, 2 * cs + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut a = Adder::new(&fs, AddOptions::default());
            let by_bytes = a.bytes("b", &data).unwrap();
            let by_read = a.file("r", &mut &data[..], |_| {}).unwrap();
            assert_eq!(by_bytes.cid, by_read.cid, "{len} bytes");
            assert_eq!(by_bytes.size, len as u64);
            a.finish().unwrap();
        }
    }
}
