//! `requirements.txt` as pip reads it: PEP 508 requirement lines, comments, line
//! continuations, per-line `--hash`, `-r`/`-c` files inside the bundle, and the index options
//! (`--index-url`, `--extra-index-url`, `--find-links`, `--no-index`, `--pre`,
//! `--require-hashes`). Anything else is refused with the file and line that holds it.

use pep508_rs::{PackageName, Requirement, VersionOrUrl};
use std::collections::BTreeMap;
use std::str::FromStr;

/// Most `-r`/`-c` files one requirements file may pull in, nested.
const MAX_DEPTH: usize = 8;
/// Most requirement lines in all the files.
const MAX_LINES: usize = 10_000;

/// One requirement and where it was written.
#[derive(Debug, Clone)]
pub struct Req {
    /// The PEP 508 requirement.
    pub req: Requirement,
    /// The sha256 digests (lower-case hex) its `--hash` options allow.
    pub hashes: Vec<String>,
    /// `requirements.txt line 3`.
    pub origin: String,
}

/// Where packages come from, as the file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// `--index-url`: replaces the node's index.
    pub index_url: Option<String>,
    /// `--extra-index-url`s, in order.
    pub extra_index_urls: Vec<String>,
    /// `--find-links`: URLs of pages listing wheels, or directories inside the bundle.
    pub find_links: Vec<String>,
    /// `--no-index`: only `--find-links` and the bundle's `wheels/`.
    pub no_index: bool,
}

/// A parsed requirements file and everything it included.
#[derive(Debug, Clone, Default)]
pub struct ReqFile {
    /// What to install.
    pub requirements: Vec<Req>,
    /// `-c` files: versions allowed for a package if anything requires it.
    pub constraints: Vec<Req>,
    /// Index options.
    pub index: IndexOptions,
    /// Pip's hash-checking mode: on when any line has a hash or `--require-hashes` is given.
    pub require_hashes: bool,
    /// `--pre`: pre-releases may be chosen.
    pub pre: bool,
    /// The files read, in order.
    pub included: Vec<String>,
}

impl ReqFile {
    /// Parses `name` (normally `requirements.txt`) from the bundle `files`, following `-r` and
    /// `-c` to other files of the bundle.
    pub fn parse(name: &str, files: &BTreeMap<String, bytes::Bytes>) -> Result<Self, String> {
        let mut out = ReqFile::default();
        let mut stack = Vec::new();
        parse_into(name, files, false, &mut out, &mut stack, "the bundle")?;
        if !out.requirements.is_empty() && out.requirements.iter().any(|r| !r.hashes.is_empty()) {
            out.require_hashes = true;
        }
        if out.requirements.len() + out.constraints.len() > MAX_LINES {
            return Err(format!("{name}: more than {MAX_LINES} requirements"));
        }
        Ok(out)
    }

    /// The hashes given for `name` on any line (hash-checking mode).
    pub fn hashes_for(&self, name: &PackageName) -> Vec<String> {
        self.requirements
            .iter()
            .chain(&self.constraints)
            .filter(|r| &r.req.name == name)
            .flat_map(|r| r.hashes.iter().cloned())
            .collect()
    }
}

/// Logical lines of `text`: continuations joined, comments and blank lines dropped, each with
/// the number of its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if cur.is_empty() {
            start = i + 1;
        }
        let (body, cont) = match raw.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (raw, false),
        };
        cur.push_str(body);
        if cont {
            continue;
        }
        push_line(&mut out, start, &cur);
        cur.clear();
    }
    push_line(&mut out, start, &cur);
    out
}

fn push_line(out: &mut Vec<(usize, String)>, n: usize, line: &str) {
    // pip: a comment starts at `#` at the start of the line or after whitespace
    let mut cut = line.len();
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            cut = i;
            break;
        }
    }
    let l = line[..cut].trim();
    if !l.is_empty() {
        out.push((n, l.to_string()));
    }
}

/// Splits `--opt=value` / `--opt value` / `-o value` at the start of `rest`.
fn take_value<'a>(rest: &'a str, at: &str) -> Result<(&'a str, &'a str), String> {
    let rest = rest.trim_start_matches(['=', ' ', '\t']);
    if rest.is_empty() {
        return Err(format!("{at}: the option needs a value"));
    }
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Ok((&rest[..end], rest[end..].trim()))
}

fn parse_into(
    name: &str,
    files: &BTreeMap<String, bytes::Bytes>,
    as_constraints: bool,
    out: &mut ReqFile,
    stack: &mut Vec<String>,
    via: &str,
) -> Result<(), String> {
    if stack.iter().any(|s| s == name) {
        return Err(format!("{via}: includes {name} again (a cycle)"));
    }
    // each file is read once in all: includes that repeat would multiply the work
    // exponentially with their depth
    if out.included.iter().any(|s| s == name) {
        return Err(format!("{via}: {name} is already included"));
    }
    out.included.push(name.to_string());
    if stack.len() >= MAX_DEPTH {
        return Err(format!(
            "{via}: -r/-c files nest more than {MAX_DEPTH} deep"
        ));
    }
    let Some(bytes) = files.get(name) else {
        return Err(format!("{via}: {name} is not in the bundle"));
    };
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8 text"))?;
    stack.push(name.to_string());
    for (n, line) in logical_lines(text) {
        let at = format!("{name} line {n}");
        if line.starts_with('-') {
            option(&line, &at, name, files, out, stack)?;
            continue;
        }
        let req = requirement(&line, &at)?;
        if as_constraints {
            out.constraints.push(req);
        } else {
            out.requirements.push(req);
        }
    }
    stack.pop();
    Ok(())
}

/// A path named in `from` (a bundle file), relative to `from`'s directory, kept inside the
/// bundle.
fn bundle_path(from: &str, rel: &str, at: &str) -> Result<String, String> {
    let outside = || format!("{at}: {rel:?} is not a path inside the bundle");
    if rel.starts_with('/') || rel.contains('\\') {
        return Err(outside());
    }
    let dir = from.rsplit_once('/').map_or("", |(d, _)| d);
    // `..` and `.` resolved by name, never above the bundle's top
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for s in rel.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(outside)?;
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    crate::store::add::clean_path(&joined).map_err(|_| outside())?;
    Ok(joined)
}

fn option(
    line: &str,
    at: &str,
    from: &str,
    files: &BTreeMap<String, bytes::Bytes>,
    out: &mut ReqFile,
    stack: &mut Vec<String>,
) -> Result<(), String> {
    let (opt, rest) = match line.find(|c: char| c == '=' || c.is_whitespace()) {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    };
    let single = |out_rest: &str| -> Result<(), String> {
        if out_rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{at}: unexpected {out_rest:?} after {opt}"))
        }
    };
    match opt {
        "-r" | "--requirement" | "-c" | "--constraint" => {
            let (v, r) = take_value(rest, at)?;
            single(r)?;
            if v.contains("://") {
                return Err(format!(
                    "{at}: {opt} {v}: only files inside the bundle can be included"
                ));
            }
            let path = bundle_path(from, v, at)?;
            let constraints = matches!(opt, "-c" | "--constraint");
            parse_into(&path, files, constraints, out, stack, at)
        }
        "-i" | "--index-url" => {
            let (v, r) = take_value(rest, at)?;
            single(r)?;
            out.index.index_url = Some(http_url(v, at)?);
            Ok(())
        }
        "--extra-index-url" => {
            let (v, r) = take_value(rest, at)?;
            single(r)?;
            out.index.extra_index_urls.push(http_url(v, at)?);
            Ok(())
        }
        "-f" | "--find-links" => {
            let (v, r) = take_value(rest, at)?;
            single(r)?;
            let v = if v.contains("://") {
                http_url(v, at)?
            } else {
                // a directory of the bundle, never one of the host's
                bundle_path(from, v, at)?
            };
            out.index.find_links.push(v);
            Ok(())
        }
        "--no-index" => {
            single(rest.trim())?;
            out.index.no_index = true;
            Ok(())
        }
        "--pre" => {
            single(rest.trim())?;
            out.pre = true;
            Ok(())
        }
        "--require-hashes" => {
            single(rest.trim())?;
            out.require_hashes = true;
            Ok(())
        }
        // these only say what pip already does here: wheels only
        "--only-binary" | "--prefer-binary" => {
            if opt == "--only-binary" {
                let (v, r) = take_value(rest, at)?;
                single(r)?;
                let _ = v;
            } else {
                single(rest.trim())?;
            }
            Ok(())
        }
        "-e" | "--editable" => Err(format!(
            "{at}: editable installs ({opt}) are not supported: a function is built from wheels"
        )),
        "--no-binary" => Err(format!(
            "{at}: {opt} is not supported: packages are installed from pure-Python wheels only (nothing is built from source)"
        )),
        "--trusted-host" => Err(format!(
            "{at}: {opt} is not supported: use an https index (its certificate authority can be set with PIP_CERT or pip.conf on the node)"
        )),
        _ => Err(format!("{at}: the option {opt} is not supported")),
    }
}

fn http_url(v: &str, at: &str) -> Result<String, String> {
    match reqwest::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(v.to_string())
        }
        _ => Err(format!("{at}: {v:?} is not an http(s) URL")),
    }
}

/// A requirement line: PEP 508, then per-requirement options (`--hash`).
fn requirement(line: &str, at: &str) -> Result<Req, String> {
    // options follow the requirement, each starting with ` --` (as pip splits them)
    let (spec, opts) = match line.find(" --").or_else(|| line.find("\t--")) {
        Some(i) => (line[..i].trim(), line[i..].trim()),
        None => (line, ""),
    };
    let mut hashes = Vec::new();
    let mut rest = opts;
    while !rest.is_empty() {
        let (opt, after) = match rest.find(|c: char| c == '=' || c.is_whitespace()) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if opt != "--hash" {
            return Err(format!(
                "{at}: the per-requirement option {opt} is not supported (only --hash)"
            ));
        }
        let (v, r) = take_value(after, at)?;
        let Some((alg, digest)) = v.split_once(':') else {
            return Err(format!(
                "{at}: --hash {v:?}: write it as sha256:<hex digest>"
            ));
        };
        if alg != "sha256" {
            return Err(format!(
                "{at}: --hash {alg}: only sha256 hashes are supported"
            ));
        }
        if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{at}: --hash {v:?} is not a sha256 digest"));
        }
        hashes.push(digest.to_ascii_lowercase());
        rest = r;
    }
    let req = Requirement::from_str(spec).map_err(|e| {
        let first = e.to_string();
        let first = first.lines().next().unwrap_or("").to_string();
        format!("{at}: {spec:?} is not a valid requirement: {first}")
    })?;
    if let Some(VersionOrUrl::Url(u)) = &req.version_or_url {
        return Err(format!(
            "{at}: {} @ {u}: direct references are not supported; name a version (and an index or --find-links that has it)",
            req.name
        ));
    }
    Ok(Req {
        req,
        hashes,
        origin: at.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Bytes> {
        list.iter()
            .map(|(k, v)| (k.to_string(), Bytes::from(v.to_string())))
            .collect()
    }

    fn one(text: &str) -> Result<ReqFile, String> {
        ReqFile::parse(
            "requirements.txt",
            &files(&[("requirements.txt", text), ("common.txt", "six\n")]),
        )
    }

    #[test]
    fn the_syntax_pip_reads() {
        let f = one(concat!(
            "# deps\n",
            "requests[socks] >= 2.31, != 2.32.0 ; python_version >= \"3.8\"  # http\n",
            "python-dateutil~=2.8 \\\n",
            "    --hash=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF \\\n",
            "    --hash sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
            "\n",
            "--index-url https://mirror.example/simple\n",
            "--extra-index-url=https://extra.example/simple\n",
            "-f wheels\n",
            "attrs===23.1.0\n",
        ))
        .unwrap();
        let names: Vec<_> = f
            .requirements
            .iter()
            .map(|r| r.req.name.to_string())
            .collect();
        assert_eq!(names, ["requests", "python-dateutil", "attrs"]);
        assert_eq!(f.requirements[0].req.extras.len(), 1);
        assert_eq!(f.requirements[1].hashes.len(), 2);
        assert!(f.requirements[1].hashes[0].ends_with("abcdef"));
        assert_eq!(f.requirements[1].origin, "requirements.txt line 3");
        assert!(f.require_hashes);
        assert_eq!(
            f.index.index_url.as_deref(),
            Some("https://mirror.example/simple")
        );
        assert_eq!(f.index.extra_index_urls, ["https://extra.example/simple"]);
        assert_eq!(f.index.find_links, ["wheels"]);
    }

    #[test]
    fn includes_stay_in_the_bundle() {
        let fs = files(&[
            (
                "requirements.txt",
                "-r dev/base.txt\n-c constraints.txt\nsix\n",
            ),
            ("dev/base.txt", "attrs>=23\n-r ../common.txt\n"),
            ("common.txt", "idna\n"),
            ("constraints.txt", "idna<4\n"),
        ]);
        let f = ReqFile::parse("requirements.txt", &fs).unwrap();
        let names: Vec<_> = f
            .requirements
            .iter()
            .map(|r| r.req.name.to_string())
            .collect();
        assert_eq!(names, ["attrs", "idna", "six"]);
        assert_eq!(f.constraints.len(), 1);
        assert_eq!(f.requirements[1].origin, "common.txt line 1");

        for (text, want) in [
            ("-r missing.txt", "missing.txt is not in the bundle"),
            ("-r ../../etc/passwd", "not a path inside the bundle"),
            ("-r requirements.txt", "a cycle"),
            ("-r https://x.example/r.txt", "only files inside the bundle"),
            (
                "-r common.txt\n-r common.txt",
                "line 2: common.txt is already included",
            ),
            ("-f /opt/wheels", "not a path inside the bundle"),
        ] {
            let e = one(text).unwrap_err();
            assert!(
                e.contains(want) && e.contains("requirements.txt line "),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn what_is_refused_names_its_line() {
        for (text, want) in [
            ("six\n-e .", "editable"),
            ("six\n--no-binary :all:", "--no-binary"),
            ("six\n--trusted-host x", "--trusted-host"),
            ("six\n--use-feature=fast", "--use-feature is not supported"),
            ("six\nsix @ https://x.example/six.whl", "direct references"),
            ("six\nsix --hash=md5:00", "only sha256"),
            ("six\nsix --hash=sha256:00", "not a sha256 digest"),
            (
                "six\nsix --global-option=x",
                "--global-option is not supported",
            ),
            ("six\nsix >>= 1", "not a valid requirement"),
            ("six\n--index-url ftp://x.example/", "not an http(s) URL"),
            ("six\n--index-url", "needs a value"),
        ] {
            let e = one(text).unwrap_err();
            assert!(e.contains("line 2") && e.contains(want), "{text}: {e}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever the text, parsing answers (never panics), and every error names a line or
        /// the file.
        #[test]
        fn never_panics(text in "(?s)[-a-z0-9 =<>!~;.,\\[\\]\"'@:/#\\\\\\n\t]{0,200}") {
            if let Err(e) = one(&text) {
                proptest::prop_assert!(e.starts_with("requirements.txt"), "{}", e);
            }
        }
    }
}
