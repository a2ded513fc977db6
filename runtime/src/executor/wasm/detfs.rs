//! A deterministic view of the file system, for the deploy-time snapshot and for invocations.
//!
//! CPython's import system stats every directory and source file it looks at and lists
//! directories. Those values (times, inode-derived hashes, host directory order) end up in the
//! heap, and freed objects keep them, so the snapshot would differ between two builds of the same
//! bundle. At run time a function sees the same values directly (`os.stat`, `os.listdir` on
//! `/outputs` or the mounted stdlib), so its output would depend on when and on which machine it
//! ran. This wraps wasmtime-wasi's filesystem host: every timestamp reads as one fixed instant,
//! the metadata hash (the guest's `st_ino`) derives from the path and size, and directories list
//! in name order. Every other call is delegated unchanged (the delegation is mechanical: one
//! method per WASI call).

#![allow(clippy::too_many_arguments)]

use std::collections::{HashMap, VecDeque};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::filesystem::{WasiFilesystemCtxView, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, ErrorCode, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::p2::{FsError, FsResult};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

/// The instant every file claims for all its times (2023-11-14T22:13:20Z).
pub const FIXED_SECONDS: u64 = 1_700_000_000;

/// The file system of one store, and where its sorted listings are kept.
pub struct DetFsView<'a>(WasiFilesystemCtxView<'a>, Listings<'a>);

/// Directory listings read in full and sorted, by stream handle.
type SortedListings = HashMap<u32, VecDeque<types::DirectoryEntry>>;

/// One invocation's own file system state.
#[derive(Default)]
pub struct StoreFs {
    /// The listings its guest is reading; an entry goes when the guest drops its stream.
    listings: SortedListings,
    /// Whether the guest tried to create, link or rename anything. Only `/outputs` is
    /// writable, and it starts empty: while this is false it is still empty, and the host
    /// need not list it to know.
    pub created: bool,
    /// What it may still write into `/outputs` (see `quota`).
    pub quota: super::quota::Quota,
}

enum Listings<'a> {
    /// In the build thread's own map: a build makes every host call on its own thread.
    Shared,
    /// In the store's own state: invocations run side by side, with overlapping handles.
    Own(&'a mut StoreFs),
}

impl DetFsView<'_> {
    fn listings<R>(&mut self, f: impl FnOnce(&mut SortedListings) -> R) -> R {
        match &mut self.1 {
            Listings::Shared => BUILD_LISTINGS.with_borrow_mut(f),
            Listings::Own(s) => f(&mut s.listings),
        }
    }

    /// Notes a call that may add an entry to a writable directory (see [`StoreFs::created`]);
    /// `add`: it adds one, which counts against the quota.
    fn creating(&mut self, add: bool) -> FsResult<()> {
        if let Listings::Own(s) = &mut self.1 {
            s.created = true;
            if add && !s.quota.create() {
                return Err(ErrorCode::InsufficientSpace.into());
            }
        }
        Ok(())
    }

    /// Puts `stream` (just made) back in the table wrapped in the quota, at run time.
    fn counted(
        &mut self,
        stream: Resource<DynOutputStream>,
        offset: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(q) = self.quota().cloned() else {
            return Ok(stream);
        };
        let inner = self.0.table.delete(stream)?;
        Ok(self.0.table.push(q.stream(inner, offset))?)
    }

    /// The quota, at run time (builds have none).
    fn quota(&self) -> Option<&super::quota::Quota> {
        match &self.1 {
            Listings::Own(s) => Some(&s.quota),
            Listings::Shared => None,
        }
    }
}

/// A store's data that can lend a [`DetFsView`] (the run-time engine's host).
pub trait DetFsHost: Send {
    /// The store's file system and its own state.
    fn parts(&mut self) -> (WasiFilesystemCtxView<'_>, &mut StoreFs);
    fn detfs(&mut self) -> DetFsView<'_> {
        let (fs, own) = self.parts();
        DetFsView(fs, Listings::Own(own))
    }
}

struct DetFs;
impl HasData for DetFs {
    type Data<'a> = DetFsView<'a>;
}

/// Replaces `wasi:filesystem/types` in `linker` (shadowing must be allowed).
pub fn add_to_linker<T: WasiFilesystemView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, DetFs>(linker, |t| DetFsView(t.filesystem(), Listings::Shared))
}

thread_local! {
    /// The build's listings (one thread per build, see `load::run_build`). A handle is removed
    /// when the guest drops its stream.
    static BUILD_LISTINGS: std::cell::RefCell<SortedListings> = Default::default();
}

fn fixed_times(mut st: types::DescriptorStat) -> types::DescriptorStat {
    let t = Some(Datetime {
        seconds: FIXED_SECONDS,
        nanoseconds: 0,
    });
    st.data_access_timestamp = t;
    st.data_modification_timestamp = t;
    st.status_change_timestamp = t;
    st
}

fn hash_of(path: &[u8], st: &types::DescriptorStat) -> types::MetadataHashValue {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in path.iter().chain(&st.size.to_le_bytes()) {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    types::MetadataHashValue {
        lower: h,
        upper: st.size ^ 0x9e37_79b9_7f4a_7c15,
    }
}

impl types::Host for DetFsView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        self.0.convert_error_code(err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.0.filesystem_error_code(err)
    }
}

impl HostDescriptor for DetFsView<'_> {
    async fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        self.0.advise(fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.0.sync_data(fd).await
    }

    async fn get_flags(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorFlags> {
        self.0.get_flags(fd).await
    }

    async fn get_type(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorType> {
        self.0.get_type(fd).await
    }

    async fn set_size(
        &mut self,
        fd: Resource<types::Descriptor>,
        size: types::Filesize,
    ) -> FsResult<()> {
        if self.quota().is_some_and(|q| !q.size(size)) {
            return Err(ErrorCode::InsufficientSpace.into());
        }
        self.0.set_size(fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<types::Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        self.0.set_times(fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        self.0.read(fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<types::Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        if self
            .quota()
            .is_some_and(|q| !q.write(offset, buf.len() as u64))
        {
            return Err(ErrorCode::InsufficientSpace.into());
        }
        self.0.write(fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        let stream = self.0.read_directory(fd).await?;
        let mut entries = Vec::new();
        while let Some(e) = self
            .0
            .read_directory_entry(Resource::new_borrow(stream.rep()))
            .await?
        {
            entries.push(e);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        self.listings(|m| m.insert(stream.rep(), entries.into()));
        Ok(stream)
    }

    async fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        self.0.sync(fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.creating(true)?;
        self.0.create_directory_at(fd, path).await
    }

    async fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorStat> {
        self.0.stat(fd).await.map(fixed_times)
    }

    async fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        self.0.stat_at(fd, path_flags, path).await.map(fixed_times)
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        self.0.set_times_at(fd, path_flags, path, atim, mtim).await
    }

    async fn link_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        // TODO delete the path flags from this function
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.creating(true)?;
        self.0
            .link_at(
                fd, // TODO delete the path flags from this function
                old_path_flags,
                old_path,
                new_descriptor,
                new_path,
            )
            .await
    }

    async fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        if oflags.contains(types::OpenFlags::CREATE) {
            self.creating(true)?;
        }
        self.0.open_at(fd, path_flags, path, oflags, flags).await
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.0, fd)
    }

    async fn readlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<String> {
        self.0.readlink_at(fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.0.remove_directory_at(fd, path).await
    }

    async fn rename_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path: String,
        new_fd: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.creating(false)?;
        self.0.rename_at(fd, old_path, new_fd, new_path).await
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        self.creating(true)?;
        self.0.symlink_at(fd, src_path, dest_path).await
    }

    async fn unlink_file_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.0.unlink_file_at(fd, path).await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        self.0.read_via_stream(fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = self.0.write_via_stream(fd, offset)?;
        self.counted(stream, Some(offset))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = self.0.append_via_stream(fd)?;
        self.counted(stream, None)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        self.0.is_same_object(a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        let st = self.0.stat(fd).await?;
        Ok(hash_of(&[], &st))
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        let st = self.0.stat_at(fd, path_flags, path.clone()).await?;
        Ok(hash_of(path.as_bytes(), &st))
    }
}

impl HostDirectoryEntryStream for DetFsView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        if let Some(next) = self.listings(|m| m.get_mut(&stream.rep()).map(|q| q.pop_front())) {
            return Ok(next);
        }
        self.0.read_directory_entry(stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        self.listings(|m| m.remove(&stream.rep()));
        HostDirectoryEntryStream::drop(&mut self.0, stream)
    }
}

/// At run time: replaces the `wasi:filesystem/types` that wasmtime-wasi's synchronous bindings
/// linked with the same interface over this view (see `detfs_sync`).
pub fn shadow_sync<T: DetFsHost + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let r = wasmtime_wasi::p2::bindings::sync::filesystem::types::add_to_linker::<T, DetFs>(
        linker,
        T::detfs,
    );
    linker.allow_shadowing(false);
    r
}
