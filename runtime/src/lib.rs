//! ipfaas runtime: the backing store and (later) the executors that run functions on it.
//!
//! - [`store`] — the *backing store*: an embedded IPFS node with a crash-consistent on-disk repo,
//!   pins, and Kubo-identical imports.
//! - [`unixfs`] — UnixFS import (files, directories, HAMT shards) and read (ranges, listings,
//!   tar streams): the building blocks every executor's *mounting mechanism* uses.

pub mod error;
pub mod path;
pub mod store;
pub mod unixfs;

pub use error::{Error, Result};
pub use path::IpfsPath;
pub use store::{Store, StoreConfig};
