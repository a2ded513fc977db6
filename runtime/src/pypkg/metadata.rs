//! A distribution's core metadata (`METADATA`, an RFC 822 header block): what it requires
//! (`Requires-Dist`) and which Pythons it supports (`Requires-Python`). Read from the index's
//! PEP 658 metadata file when it offers one, otherwise from inside the wheel.

use pep508_rs::Requirement;
use std::io::Read;
use std::str::FromStr;

/// The largest metadata file read (a wheel's or the index's).
pub const MAX_METADATA: u64 = 4 << 20;

/// What resolution needs from a distribution's metadata.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// `Requires-Dist`, parsed.
    pub requires_dist: Vec<Requirement>,
    /// `Requires-Python`, as written.
    pub requires_python: Option<String>,
}

/// Parses the header block of a METADATA file. A `Requires-Dist` that is not PEP 508 is an
/// error naming it (pip refuses such a distribution too).
pub fn parse(text: &str) -> Result<Metadata, String> {
    let mut out = Metadata::default();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break; // the body (the description) starts here
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    for (k, v) in fields {
        match k.as_str() {
            "requires-dist" => {
                let r = Requirement::from_str(&v)
                    .map_err(|e| format!("Requires-Dist {v:?}: {}", first_line(&e.to_string())))?;
                out.requires_dist.push(r);
            }
            "requires-python" => out.requires_python = Some(v),
            _ => {}
        }
    }
    Ok(out)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The METADATA file inside a wheel: `<name>-<version>.dist-info/METADATA` at the top.
pub fn from_wheel(path: &std::path::Path) -> Result<String, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| format!("not a wheel (zip): {e}"))?;
    let name = z
        .file_names()
        .find(|n| {
            n.split_once('/')
                .is_some_and(|(d, f)| d.ends_with(".dist-info") && f == "METADATA")
        })
        .map(str::to_string)
        .ok_or("the wheel has no .dist-info/METADATA")?;
    let entry = z.by_name(&name).map_err(|e| e.to_string())?;
    let mut text = String::new();
    entry
        .take(MAX_METADATA)
        .read_to_string(&mut text)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_until_the_body() {
        let m = parse(concat!(
            "Metadata-Version: 2.1\n",
            "Name: requests\n",
            "Requires-Python: >=3.8\n",
            "Requires-Dist: charset-normalizer<4,>=2\n",
            "Requires-Dist: PySocks!=1.5.7,>=1.5.6; extra == \"socks\"\n",
            "requires-dist: idna\n",
            "  <4,>=2.5\n",
            "\n",
            "Requires-Dist: not-a-header-this-is-the-body\n",
        ))
        .unwrap();
        assert_eq!(m.requires_python.as_deref(), Some(">=3.8"));
        let names: Vec<_> = m.requires_dist.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names, ["charset-normalizer", "pysocks", "idna"]);
        assert!(m.requires_dist[2].version_or_url.is_some());
        assert!(
            parse("Requires-Dist: foo >>> 1\n")
                .unwrap_err()
                .contains("foo >>> 1")
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "(?s)[-A-Za-z0-9 :=<>!~;.,\\[\\]\"'\\n\t]{0,300}") {
            let _ = parse(&text);
        }
    }
}
