use std::time::Duration;

/// Errors of the runtime. [`Error::class`] tells callers (the HTTP layer) which of the caller's
/// mistakes or the system's conditions each one is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid CID {input:?}: {reason}")]
    InvalidCid { input: String, reason: String },
    #[error("invalid path {0:?}")]
    InvalidPath(String),
    #[error("block {cid} not found {}{}", where_looked(waited), cause_of(cause))]
    NotFound {
        cid: String,
        waited: Duration,
        /// The last failure seen while asking peers, if any.
        cause: Option<String>,
    },
    #[error("{cid} has no entry named {name:?}")]
    NoSuchEntry { cid: String, name: String },
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error("{0} is a directory, not a file")]
    IsADirectory(String),
    #[error("{cid}: {reason}")]
    Malformed { cid: String, reason: String },
    #[error("range out of bounds: offset {offset} is past the end of a {size}-byte file")]
    RangeNotSatisfiable { offset: u64, size: u64 },
    #[error("{0}")]
    InvalidInput(String),
    #[error("the repository at {path} is in use by another process (is `ipfaas serve` running?)")]
    RepoLocked { path: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("no function named {0:?} is deployed")]
    UnknownFunction(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
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
        "in the local repo (offline)".into()
    } else {
        format!("locally or from peers within {waited:?}")
    }
}

/// Coarse classes that map onto HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    BadRequest,
    NotFound,
    RangeNotSatisfiable,
    Unavailable,
    Internal,
}

impl Error {
    pub fn class(&self) -> Class {
        match self {
            Error::InvalidCid { .. }
            | Error::InvalidPath(_)
            | Error::NotADirectory(_)
            | Error::IsADirectory(_)
            | Error::InvalidInput(_)
            // blocks are checked against their CIDs, so a malformed DAG is what the request
            // named (a peer's crafted data), not damage to this node's store
            | Error::Malformed { .. } => Class::BadRequest,
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

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses a CID, with an error that says what was wrong.
pub fn parse_cid(s: &str) -> Result<cid::Cid> {
    s.trim().parse::<cid::Cid>().map_err(|e| Error::InvalidCid {
        input: s.to_string(),
        reason: e.to_string(),
    })
}
