//! The node's secret store: values a Docker function needs (API keys, passwords) that must not
//! be content-addressed. A definition names its secrets (`secrets = ["API_KEY"]`); the values
//! live here, one file per secret under `<repo>/secrets` (mode 0600, in a 0700 directory), or in
//! the gateway's environment as `IPFAAS_SECRET_<NAME>`. They are set as environment variables
//! of the container at run time and appear in no definition, CID, listing, log or metric.

use crate::error::{Error, Result};
use crate::executor::docker::def::valid_secret_name;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest secret value, in bytes.
pub const MAX_SECRET: usize = 64 << 10;

/// The environment variable a secret may also come from.
pub const ENV_PREFIX: &str = "IPFAAS_SECRET_";

/// Secrets kept in a repo.
pub struct Secrets {
    dir: PathBuf,
}

impl Secrets {
    /// Opens `<repo>/secrets`, creating it (0700) when missing and tightening it when it is
    /// readable by others.
    pub fn open(repo: &Path) -> Result<Self> {
        let dir = repo.join("secrets");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self { dir })
    }

    fn checked(name: &str) -> Result<&str> {
        if valid_secret_name(name) {
            Ok(name)
        } else {
            Err(Error::InvalidInput(format!(
                "{name:?} is not a secret name: letters, digits and `_`, not starting with a digit or IPFAAS_, at most 128 bytes"
            )))
        }
    }

    /// Sets `name` to `value` (replacing it atomically). The value must be UTF-8 without NUL
    /// (it becomes an environment variable) and at most [`MAX_SECRET`] bytes.
    pub fn set(&self, name: &str, value: &[u8]) -> Result<()> {
        let name = Self::checked(name)?;
        if value.len() > MAX_SECRET {
            return Err(Error::InvalidInput(format!(
                "a secret is at most {MAX_SECRET} bytes"
            )));
        }
        if std::str::from_utf8(value).is_err() || value.contains(&0) {
            return Err(Error::InvalidInput(
                "a secret is UTF-8 text without NUL bytes (it becomes an environment variable)"
                    .into(),
            ));
        }
        let tmp = tempfile::Builder::new()
            .prefix(".set-")
            .tempfile_in(&self.dir)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.as_file().write_all(value)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.dir.join(name)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes `name`; whether it was there.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let name = Self::checked(name)?;
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The names set in the store (not those from the environment), sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| valid_secret_name(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The value of `name`: from the store, else from `IPFAAS_SECRET_<NAME>`.
    fn get(&self, name: &str) -> Result<Option<String>> {
        let name = Self::checked(name)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join(name));
        match file {
            Ok(f) => {
                let mut v = String::new();
                use std::io::Read;
                f.take(MAX_SECRET as u64 + 1).read_to_string(&mut v)?;
                Ok(Some(v))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(std::env::var(format!("{ENV_PREFIX}{name}")).ok())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `NAME=value` for each of `names`; an error names the first one not set.
    pub fn environment(&self, names: &[String]) -> Result<Vec<String>> {
        names
            .iter()
            .map(|n| match self.get(n)? {
                Some(v) => Ok(format!("{n}={v}")),
                None => Err(Error::InvalidInput(format!(
                    "the function needs the secret {n:?}, which is not set on this node (`ipfaas secret set {n}`, or {ENV_PREFIX}{n} in the gateway's environment)"
                ))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_remove_and_refuse() {
        let repo = tempfile::tempdir().unwrap();
        let s = Secrets::open(repo.path()).unwrap();
        s.set("API_KEY", b"s3cret").unwrap();
        s.set("API_KEY", b"s3cret2").unwrap();
        let meta = std::fs::metadata(repo.path().join("secrets/API_KEY")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir = std::fs::metadata(repo.path().join("secrets")).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        assert_eq!(s.names().unwrap(), vec!["API_KEY".to_string()]);
        assert_eq!(
            s.environment(&["API_KEY".into()]).unwrap(),
            vec!["API_KEY=s3cret2".to_string()]
        );
        let e = s.environment(&["MISSING_ONE".into()]).unwrap_err();
        assert!(e.to_string().contains("MISSING_ONE"), "{e}");
        for bad in ["", "1X", "A-B", "../x", "IPFAAS_X", &"A".repeat(129)] {
            assert!(s.set(bad, b"v").is_err(), "{bad:?}");
        }
        assert!(s.set("NUL", b"a\0b").is_err());
        assert!(s.set("BIG", &vec![b'a'; MAX_SECRET + 1]).is_err());
        assert!(s.remove("API_KEY").unwrap());
        assert!(!s.remove("API_KEY").unwrap());
        // a symlink planted in the store is not followed
        std::os::unix::fs::symlink("/etc/hostname", repo.path().join("secrets/LINKED")).unwrap();
        assert!(s.environment(&["LINKED".into()]).is_err());
    }
}
