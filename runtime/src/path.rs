//! IPFS paths as users write them: `CID`, `CID/a/b` or `/ipfs/CID/a/b`.

use crate::error::{Error, Result, parse_cid};
use cid::Cid;

/// A parsed IPFS path: a root CID and the names to follow from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpfsPath {
    /// The CID the path starts from.
    pub root: Cid,
    /// The entry names below the root, in order; empty segments are dropped.
    pub segments: Vec<String>,
}

impl IpfsPath {
    /// Parses a path; `.` and `..` segments are refused rather than resolved.
    pub fn parse(s: &str) -> Result<Self> {
        let rest = s.strip_prefix("/ipfs/").unwrap_or(s);
        let mut parts = rest.split('/');
        let root = parse_cid(parts.next().unwrap_or(""))?;
        let segments: Vec<String> = parts
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if segments.iter().any(|p| p == "." || p == "..") {
            return Err(Error::InvalidPath(s.to_string()));
        }
        Ok(Self { root, segments })
    }

    /// What `ipfs get` names the result: the last segment, or the root CID.
    pub fn name(&self) -> String {
        self.segments
            .last()
            .cloned()
            .unwrap_or_else(|| self.root.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::IpfsPath;

    #[test]
    fn forms() {
        let cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
        for s in [cid.to_string(), format!("/ipfs/{cid}"), format!("{cid}/")] {
            let p = IpfsPath::parse(&s).unwrap();
            assert_eq!(
                (p.root.to_string(), p.segments.len(), p.name()),
                (cid.to_string(), 0, cid.to_string())
            );
        }
        let p = IpfsPath::parse(&format!("/ipfs/{cid}/a//b c/")).unwrap();
        assert_eq!(
            (p.segments.clone(), p.name()),
            (vec!["a".to_string(), "b c".to_string()], "b c".to_string())
        );
        for bad in [
            "",
            "/ipfs/",
            "nope/a",
            &format!("{cid}/../x"),
            &format!("{cid}/./x"),
        ] {
            assert!(IpfsPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
