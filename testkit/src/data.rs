//! Deterministic test data and the encodings the API takes.

/// `len` pseudo-random bytes from `seed` (xorshift64; the same for the same arguments, and
/// `seed` and `seed | 1` give the same bytes).
pub fn rand_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A `multipart/form-data` body of parts (file name, content type, bytes), every part named
/// `file` as Kubo's `add` takes them: (content type with boundary, body).
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "ipfaas-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, ct, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(format!("Content-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The JSON values of a newline-delimited JSON text (blank lines skipped). Panics on a line
/// that is not JSON: a test's failure.
pub fn ndjson(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A tar archive of (path, bytes), mode 0644.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (p, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, p, *d).expect("tar into memory");
    }
    t.into_inner().expect("tar into memory")
}

/// A zip archive of (path, bytes), stored uncompressed.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in files {
        z.start_file(*name, opts).expect("zip into memory");
        z.write_all(data).expect("zip into memory");
    }
    z.finish().expect("zip into memory").into_inner()
}

/// A pure-Python wheel (`py3-none-any`) of `name` `version` holding `files` (paths inside the
/// wheel, say `pkg/__init__.py`), with the METADATA and WHEEL files pip needs.
pub fn wheel(name: &str, version: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let info = format!("{name}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    let wheel = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let (m, w) = (format!("{info}/METADATA"), format!("{info}/WHEEL"));
    let mut all = files.to_vec();
    all.push((&m, metadata.as_bytes()));
    all.push((&w, wheel.as_bytes()));
    zip_of(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand_bytes_is_deterministic_and_seeded() {
        assert_eq!(rand_bytes(1000, 7), rand_bytes(1000, 7));
        assert_ne!(rand_bytes(1000, 7), rand_bytes(1000, 9));
        assert_eq!(rand_bytes(13, 4).len(), 13);
    }

    #[test]
    fn tar_reads_back_with_the_tar_crate() {
        let t = tar_of(&[("a/b.txt", b"hello"), ("c", b"")]);
        let mut a = tar::Archive::new(&t[..]);
        let got: Vec<(String, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.size())
            })
            .collect();
        assert_eq!(got, [("a/b.txt".into(), 5), ("c".into(), 0)]);
    }

    #[test]
    fn a_wheel_holds_its_files_and_metadata() {
        let w = wheel(
            "tinypkg",
            "1.0",
            &[("tinypkg/__init__.py", b"VALUE = 42\n")],
        );
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(w)).unwrap();
        let mut names: Vec<String> = z.file_names().map(String::from).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "tinypkg-1.0.dist-info/METADATA",
                "tinypkg-1.0.dist-info/WHEEL",
                "tinypkg/__init__.py"
            ]
        );
        let mut init = String::new();
        std::io::Read::read_to_string(&mut z.by_name("tinypkg/__init__.py").unwrap(), &mut init)
            .unwrap();
        assert_eq!(init, "VALUE = 42\n");
    }
}
