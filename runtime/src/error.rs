//! The runtime's error type and its mapping onto HTTP statuses.

use std::time::Duration;

/// Errors of the runtime. [`Error::class`] tells callers (the HTTP layer) which of the caller's
/// mistakes or the system's conditions each one is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A string that does not parse as a CID.
    #[error("invalid CID {input:?}: {reason}")]
    InvalidCid {
        /// The text as given.
        input: String,
        /// What the CID parser objected to.
        reason: String,
    },
    /// A content path (`/ipfs/<cid>/...`) or a relative import path that is not well formed.
    #[error("invalid path {0:?}")]
    InvalidPath(String),
    /// A block that is neither in the local store nor fetched from peers in time.
    #[error("block {cid} not found {}{}", where_looked(waited), cause_of(cause))]
    NotFound {
        /// The missing block.
        cid: String,
        /// How long peers were asked; zero when the node is offline.
        waited: Duration,
        /// The last failure seen while asking peers, if any.
        cause: Option<String>,
    },
    /// A path segment that names no entry of the directory it is looked up in.
    #[error("{cid} has no entry named {name:?}")]
    NoSuchEntry {
        /// The directory.
        cid: String,
        /// The name looked for.
        name: String,
    },
    /// A path that goes through, or lists, something other than a directory.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// A file read (cat, range) aimed at a directory.
    #[error("{0} is a directory, not a file")]
    IsADirectory(String),
    /// A block whose bytes match its CID but do not decode as the UnixFS/DAG-PB node expected.
    #[error("{cid}: {reason}")]
    Malformed {
        /// The offending block.
        cid: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A tree or directory past this node's limits on what one request may walk (entries,
    /// depth, name length): well-formed, perhaps, but more than this node will lay out.
    #[error("{cid}: {reason}")]
    OverLimit {
        /// The tree or directory asked for.
        cid: String,
        /// Which limit it passed.
        reason: String,
    },
    /// A byte range that starts past the end of the file (starting exactly at the end is fine).
    #[error("range out of bounds: offset {offset} is past the end of a {size}-byte file")]
    RangeNotSatisfiable {
        /// The requested start.
        offset: u64,
        /// The file's size in bytes.
        size: u64,
    },
    /// A request the caller got wrong, described in words (bad parameters, a bad function spec).
    #[error("{0}")]
    InvalidInput(String),
    /// The repository's lock file is held by another process.
    #[error("the repository at {path} is in use by another process (is `ipfaas serve` running?)")]
    RepoLocked {
        /// The repository directory.
        path: String,
    },
    /// A service this node needs and does not have right now (such as a Docker Engine).
    #[error("{0}")]
    Unavailable(String),
    /// An invocation of a function name that is not deployed.
    #[error("no function named {0:?} is deployed")]
    UnknownFunction(String),
    /// A local I/O failure, or a host-side failure wrapped as one.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A failure of the embedded IPFS/libp2p node (start-up, keys, DHT, metrics registration).
    #[error("IPFS node: {0}")]
    Node(String),
}

fn cause_of(cause: &Option<String>) -> String {
    cause
        .as_ref()
        .map(|c| format!(" (last error: {c})"))
        .unwrap_or_default()
}

fn where_looked(waited: &Duration) -> String {
    if waited.is_zero() {
        "in the local repo".into()
    } else {
        format!("locally or from peers within {waited:?}")
    }
}

/// Coarse classes that map onto HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The caller's mistake (400).
    BadRequest,
    /// The content, entry or function does not exist or could not be found (404).
    NotFound,
    /// The requested range lies outside the file (416).
    RangeNotSatisfiable,
    /// The node cannot serve this now; retrying later may work (503).
    Unavailable,
    /// A failure on this node's side (500).
    Internal,
}

impl Error {
    /// Which class of failure this is, for choosing the HTTP status.
    pub fn class(&self) -> Class {
        match self {
            Error::InvalidCid { .. }
            | Error::InvalidPath(_)
            | Error::NotADirectory(_)
            | Error::IsADirectory(_)
            | Error::InvalidInput(_)
            // blocks are checked against their CIDs, so a malformed DAG is what the request
            // named (a peer's crafted data), not damage to this node's store
            | Error::Malformed { .. }
            | Error::OverLimit { .. } => Class::BadRequest,
            Error::NotFound { .. } | Error::NoSuchEntry { .. } | Error::UnknownFunction(_) => {
                Class::NotFound
            }
            Error::RangeNotSatisfiable { .. } => Class::RangeNotSatisfiable,
            Error::RepoLocked { .. } | Error::Unavailable(_) => Class::Unavailable,
            Error::Io(_) | Error::Node(_) => Class::Internal,
        }
    }

    /// The HTTP status this error answers with.
    pub fn http_status(&self) -> u16 {
        match self.class() {
            Class::BadRequest => 400,
            Class::NotFound => 404,
            Class::RangeNotSatisfiable => 416,
            Class::Unavailable => 503,
            Class::Internal => 500,
        }
    }
}

/// The runtime's result type, with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses a CID, with an error that says what was wrong.
pub fn parse_cid(s: &str) -> Result<cid::Cid> {
    s.trim().parse::<cid::Cid>().map_err(|e| Error::InvalidCid {
        input: s.to_string(),
        reason: e.to_string(),
    })
}

/// A host-side failure described in words (a thread that died, a task that panicked).
pub(crate) fn io_err(what: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(what.to_string()))
}
