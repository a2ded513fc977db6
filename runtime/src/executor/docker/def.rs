//! What the CID of a Docker function names: the image pinned by ID, and how to run it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits of a Docker function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerLimits {
    /// Memory (and memory+swap) in bytes.
    pub memory: u64,
    /// CPUs, fractional.
    pub cpus: f64,
    /// Processes and threads.
    pub pids: i64,
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: u64,
    /// Largest standard output kept, in bytes.
    pub max_output: u64,
}

impl Default for DockerLimits {
    fn default() -> Self {
        Self {
            memory: 256 << 20,
            cpus: 1.0,
            pids: 128,
            timeout_ms: 60_000,
            max_output: 64 << 20,
        }
    }
}

/// What a Docker function's CID names: the image pinned by ID, and how to run it. Field
/// order is fixed so the same function always serialises to the same bytes (and CID).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerDef {
    /// Definition format version (1).
    pub ipfaas: u32,
    /// `"docker"`.
    pub kind: String,
    /// The image reference it was deployed from.
    pub image: String,
    /// The image ID it runs (`sha256:…`).
    pub image_id: String,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command.
    pub cmd: Option<Vec<String>>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Working directory in the container.
    pub workdir: Option<String>,
    /// Resource limits.
    pub limits: DockerLimits,
    /// The user it runs as, `uid[:gid]`; unset: an unprivileged user (see [`DockerDef::user`]).
    /// Absent from the JSON when unset, so definitions without it keep their CIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Names of secrets from the node's secret store, set as environment variables of the same
    /// names at run time. Only the names are part of the definition (and its CID).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// The user a container runs as when its definition names none: the node's own user, or
/// `nobody` (65534) when the node runs as root.
pub fn default_user() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 { (65534, 65534) } else { (uid, gid) }
}

/// Parses `uid[:gid]` (numbers only: a name would be looked up in the image, which the node
/// cannot check); the group defaults to the uid.
pub fn parse_user(s: &str) -> std::result::Result<(u32, u32), String> {
    let num = |p: &str| {
        p.parse::<u32>()
            .map_err(|_| format!("`user` is `uid` or `uid:gid` in numbers, not {s:?}"))
    };
    match s.split_once(':') {
        Some((u, g)) => Ok((num(u)?, num(g)?)),
        None => num(s).map(|u| (u, u)),
    }
}

/// Whether `name` may name a secret: an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`,
/// at most 128 bytes), and not one the node sets itself (`IPFAAS_*`).
pub fn valid_secret_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !name.starts_with("IPFAAS_")
}

impl DockerDef {
    /// A definition read from the store may come from anyone: the image must be pinned by ID
    /// and every limit must be a real bound (the Docker Engine reads a zero as "unlimited").
    pub fn check(&self) -> std::result::Result<(), String> {
        let id = self.image_id.strip_prefix("sha256:").unwrap_or("");
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`image_id` is not an image ID: {:?}",
                self.image_id
            ));
        }
        let l = &self.limits;
        let bounded = l.memory > 0
            && l.pids > 0
            && l.cpus > 0.0
            && l.cpus.is_finite()
            && l.timeout_ms > 0
            && l.max_output > 0;
        if !bounded {
            return Err(format!("every limit must be positive: {l:?}"));
        }
        if let Some(u) = &self.user {
            parse_user(u)?;
        }
        if let Some(bad) = self.secrets.iter().find(|n| !valid_secret_name(n)) {
            return Err(format!(
                "secret name {bad:?} is not an environment variable name (or starts with IPFAAS_)"
            ));
        }
        if let Some(k) = self.env.keys().find(|k| self.secrets.contains(k)) {
            return Err(format!("{k:?} is both in `env` and in `secrets`"));
        }
        Ok(())
    }

    /// The `(uid, gid)` the container runs as.
    pub fn user(&self) -> (u32, u32) {
        self.user
            .as_deref()
            .and_then(|u| parse_user(u).ok())
            .unwrap_or_else(default_user)
    }
}
