//! ipfaas patch: a part's header block is bounded.
use bytes::Bytes;
use futures_util::stream;
use multer::Multipart;

fn chunks(head: Vec<u8>, chunk: usize) -> impl futures_util::Stream<Item = multer::Result<Bytes>> {
    let parts: Vec<multer::Result<Bytes>> = head.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(parts)
}

#[tokio::test]
async fn a_header_block_that_never_ends_is_refused_at_the_limit() {
    // 4 MiB of one header line with no blank line after it, and the stream never ends
    let mut body = b"--X\r\nContent-Disposition: form-data; name=\"f\"; filename=\"".to_vec();
    body.extend(std::iter::repeat(b'a').take(4 << 20));
    let s = futures_util::StreamExt::chain(chunks(body, 64 << 10), stream::pending());
    let mut m = Multipart::new(s, "X");
    let e = m.next_field().await.err().expect("refused, not buffered forever");
    assert!(matches!(e, multer::Error::ReadHeaderFailed(_)), "{}", e);
}

#[tokio::test]
async fn a_long_header_under_the_limit_still_parses() {
    let name = "a/".repeat(100_000) + "b";
    let body = format!(
        "--X\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n\r\nhi\r\n--X--\r\n"
    );
    let mut m = Multipart::new(chunks(body.into_bytes(), 1000), "X");
    let f = m.next_field().await.unwrap().unwrap();
    assert_eq!(f.file_name(), Some(name.as_str()));
    assert_eq!(f.text().await.unwrap(), "hi");
}

#[tokio::test]
async fn a_preamble_without_a_boundary_is_refused_at_the_limit() {
    let body: Vec<u8> = std::iter::repeat(b'p').take(4 << 20).collect();
    let s = futures_util::StreamExt::chain(chunks(body, 64 << 10), stream::pending());
    let mut m = Multipart::new(s, "X");
    let e = m.next_field().await.err().expect("refused, not buffered forever");
    assert!(matches!(e, multer::Error::ReadHeaderFailed(_)), "{}", e);
}
