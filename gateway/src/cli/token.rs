//! The API token: where it comes from, when the server insists on one, and where the CLI may
//! send it.
//!
//! A token given as `--api-token` shows in `ps` to every user of the machine; the environment
//! (`IPFAAS_API_TOKEN`) or a file (`--api-token-file`, mode 0600) does not. A server that
//! listens on a non-loopback address refuses to start without a token unless told
//! `--insecure`; `--api-token-file` with a missing file creates it with a fresh random token.
//! The CLI sends the token only to a server it was pointed at explicitly (`--api`,
//! `IPFAAS_API`) or to a loopback address read from the repo's `api` file: whoever can write
//! that file must not be able to collect the token.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The token file a repo may hold; the CLI uses it when no token is given.
pub fn repo_token_file(repo: &Path) -> PathBuf {
    repo.join("api-token")
}

/// Whether the command line itself carries a token (visible in `ps`).
fn on_command_line() -> bool {
    std::env::args().any(|a| a == "--api-token" || a.starts_with("--api-token="))
}

/// Reads a token file: its first line, trimmed; an empty token is an error.
fn read(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API token from {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        bail!("the API token file {} is empty", path.display());
    }
    Ok(token)
}

/// Reads `path`, or creates it (0600) with a fresh random token when it does not exist.
fn read_or_create(path: &Path) -> Result<String> {
    if path.exists() {
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the API token file {} is readable by other users (mode {:o})",
                path.display(),
                mode & 0o777
            );
        }
        return read(path);
    }
    let mut raw = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut raw)
        .context("drawing a random API token")?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating the API token file {}", path.display()))?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    tracing::info!("generated an API token in {}", path.display());
    Ok(token)
}

/// The token `serve` requires, if any. `loopback`: the HTTP listener is on a loopback address.
pub fn for_server(
    flag: Option<String>,
    file: Option<&Path>,
    loopback: bool,
    insecure: bool,
    listen: &str,
) -> Result<Option<String>> {
    if flag.is_some() && on_command_line() {
        tracing::warn!(
            "--api-token on the command line is visible to every user in `ps`; use --api-token-file or IPFAAS_API_TOKEN"
        );
    }
    let token = match (flag, file) {
        (Some(t), _) if !t.trim().is_empty() => Some(t.trim().to_string()),
        (Some(_), _) => bail!("the API token is empty"),
        (None, Some(f)) => Some(read_or_create(f)?),
        (None, None) => None,
    };
    if token.is_none() && !loopback && !insecure {
        bail!(
            "refusing to serve the API on {listen} without a token: anyone who can reach it could deploy and run code. \
             Pass --api-token-file FILE (created with a random token if missing) or set IPFAAS_API_TOKEN; \
             or --insecure if this network is trusted"
        );
    }
    Ok(token)
}

/// The token client commands send: the flag (or `IPFAAS_API_TOKEN`), else the file, else the
/// repo's `api-token` file when there is one.
pub fn for_client(
    flag: Option<String>,
    file: Option<&Path>,
    repo: &Path,
) -> Result<Option<String>> {
    if let Some(t) = flag {
        return Ok(Some(t.trim().to_string()));
    }
    if let Some(f) = file {
        return read(f).map(Some);
    }
    // the repo's own file is only a default: one this user cannot read means no token
    let default = repo_token_file(repo);
    if !default.exists() {
        return Ok(None);
    }
    match read(&default) {
        Ok(t) => Ok(Some(t)),
        Err(e) => {
            eprintln!("warning: {e:#}; sending no API token");
            Ok(None)
        }
    }
}

/// Whether the CLI may send its token to `base`: always when the user named the server, and
/// otherwise only to a loopback (or unspecified, i.e. this machine's) address.
pub fn may_send(base: &str, explicit: bool) -> bool {
    if explicit {
        return true;
    }
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip.is_unspecified(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_goes_only_where_it_should() {
        assert!(may_send("http://127.0.0.1:5001", false));
        assert!(may_send("http://[::1]:5001", false));
        assert!(may_send("http://0.0.0.0:5001", false));
        assert!(may_send("http://localhost:5001", false));
        assert!(!may_send("http://evil.example:5001", false));
        assert!(!may_send("http://10.0.0.5:5001", false));
        assert!(!may_send("not a url", false));
        assert!(may_send("http://10.0.0.5:5001", true));
    }

    #[test]
    fn server_needs_a_token_off_loopback() {
        let e = for_server(None, None, false, false, "0.0.0.0:5001").unwrap_err();
        assert!(e.to_string().contains("--api-token-file"), "{e}");
        assert_eq!(for_server(None, None, false, true, "x").unwrap(), None);
        assert_eq!(for_server(None, None, true, false, "x").unwrap(), None);
        assert!(for_server(Some(" ".into()), None, true, false, "x").is_err());
        // a missing file gets a fresh token, private to the user, read back the same
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/token");
        let t = for_server(None, Some(&f), false, false, "x")
            .unwrap()
            .unwrap();
        assert_eq!(t.len(), 64);
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            for_server(None, Some(&f), false, false, "x").unwrap(),
            Some(t.clone())
        );
        assert_eq!(
            for_client(None, Some(&f), dir.path()).unwrap(),
            Some(t.clone())
        );
        // the repo's own token file is the client's default
        std::fs::write(repo_token_file(dir.path()), "abc\n").unwrap();
        assert_eq!(
            for_client(None, None, dir.path()).unwrap(),
            Some("abc".into())
        );
        std::fs::write(&f, "\n").unwrap();
        assert!(for_client(None, Some(&f), dir.path()).is_err());
        // but a broken default file only means no token
        std::fs::write(repo_token_file(dir.path()), "\n").unwrap();
        assert_eq!(for_client(None, None, dir.path()).unwrap(), None);
    }
}
