//! Helpers shared by the gateway's integration tests and `ipfaas-bench`: one meaning for each
//! helper name. It runs the real `ipfaas` binary ([`Server`]), talks to it over HTTP ([`http`]),
//! and makes deterministic test data ([`data`]). It depends on nothing of ipfaas itself, so the
//! runtime's own tests can use it too.

pub mod data;
pub mod http;
pub mod python;
mod server;

pub use data::{hex, multipart, ndjson, rand_bytes, tar_of, wheel, zip_of};
pub use http::*;
pub use server::{Server, at_exit};
