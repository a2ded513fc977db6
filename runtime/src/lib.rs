//! ipfaas runtime: the backing store and the executors that run functions on it.
//!
//! - [`store`] — the *backing store*: an embedded IPFS node with a crash-consistent on-disk repo,
//!   pins, and Kubo-identical imports.
//! - [`unixfs`] — UnixFS import (files, directories, HAMT shards) and read (ranges, listings,
//!   tar streams): the building blocks every executor's *mounting mechanism* uses.
//! - [`wasm`] — the Python-in-WebAssembly executor; [`mount`] is its mounting mechanism (an
//!   input CID as a seekable stream), [`functions`] deploys and invokes functions.
//! - [`net`] — the network of nodes: bootstrap peers, DHT lookups; invocations travel between
//!   nodes by [`functions::remote`].

pub mod docker;
pub mod error;
pub mod functions;
pub mod mount;
pub mod net;
pub mod path;
pub mod store;
pub mod units;
pub mod unixfs;
pub mod wasm;

pub use error::{Error, Result};
pub use path::IpfsPath;
pub use store::{Store, StoreConfig};
