//! ipfaas runtime: the backing store and the executors that run functions on it.
//!
//! Dependencies point one way, from the bottom of this list to the top:
//! - [`units`], [`error`], [`path`] — sizes, errors, IPFS paths.
//! - [`unixfs`] — UnixFS import (files, directories, HAMT shards) and read (ranges, listings,
//!   tar streams).
//! - [`store`] — the *backing store*: an embedded IPFS node with a crash-consistent on-disk
//!   repo, pins, Kubo-identical imports, and exports to the host.
//! - [`pypkg`] — Python packages: requirements files resolved against package indexes
//!   (pubgrub), locks, wheels cached by sha256.
//! - [`executor`] — what runs a function, each with its own *mounting mechanism*:
//!   [`executor::wasm`] (Python in WebAssembly; the input is a stream into the guest) and
//!   [`executor::docker`] (any image; the input is a read-only mount).
//! - [`registry`] — names, definitions, bundles and manifests; [`secrets`] — values Docker
//!   functions get at run time that are not content-addressed.
//! - [`deploy`], [`lifecycle`] and [`invoke`] — the [`Functions`] facade: deploy, versions,
//!   rollback and removal, invoke, cache, publish, forward to peers, verify.
//! - [`jobs`] — asynchronous invocations: durable (SQLite), bounded, cancellable, recovered
//!   after a crash, with callbacks.
//! - [`net`] — the network of nodes: bootstrap peers, DHT lookups.

#![warn(missing_docs)]

pub mod deploy;
pub mod error;
pub mod executor;
pub(crate) mod flight;
pub(crate) mod fs;
pub mod invoke;
pub mod jobs;
pub mod lifecycle;
pub(crate) mod metrics;
pub mod net;
pub mod path;
pub mod pypkg;
pub mod registry;
pub mod secrets;
pub mod store;
pub mod units;
pub mod unixfs;

pub use error::{Error, Result};
pub use invoke::Functions;
pub use path::IpfsPath;
pub use store::{Store, StoreConfig};
