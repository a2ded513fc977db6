//! `/outputs` quotas while a Python function runs. The check after the run
//! (`executor::outputs::check_quota`) decides what is published; this keeps a function from
//! filling the host's disk before that: every byte written through `wasi:filesystem` (direct
//! writes and write streams) and every entry created count against the instance's budget, and
//! no write or `set-size` may reach past the size quota. Past a budget the call fails as a full
//! disk would (`ENOSPC`), which the guest sees as an `OSError`.

use crate::executor::outputs::{MAX_OUTPUTS_BYTES, MAX_OUTPUTS_ENTRIES};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{DynOutputStream, OutputStream, StreamError, StreamResult};

/// Entries one run may create (files, directories, links). Opening an existing file with
/// `O_CREAT` counts too, hence the slack over what may be published.
pub const MAX_CREATES: u64 = 4 * MAX_OUTPUTS_ENTRIES;

/// One instance's write budget.
#[derive(Clone)]
pub struct Quota {
    bytes: Arc<AtomicU64>,
    creates: Arc<AtomicU64>,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            bytes: Arc::new(AtomicU64::new(MAX_OUTPUTS_BYTES)),
            creates: Arc::new(AtomicU64::new(MAX_CREATES)),
        }
    }
}

fn take(left: &AtomicU64, n: u64) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n))
        .is_ok()
}

impl Quota {
    /// Counts one created entry; false past the budget.
    pub fn create(&self) -> bool {
        take(&self.creates, 1)
    }

    /// Counts `len` bytes written at `offset`; false past the byte budget or the size quota.
    pub fn write(&self, offset: u64, len: u64) -> bool {
        offset.saturating_add(len) <= MAX_OUTPUTS_BYTES && take(&self.bytes, len)
    }

    /// Whether a file may be given `size` bytes.
    pub fn size(&self, size: u64) -> bool {
        size <= MAX_OUTPUTS_BYTES
    }

    /// Wraps a file's write stream starting at `offset` (`None`: appending, at an offset
    /// the host does not track; the byte budget still holds).
    pub fn stream(&self, inner: DynOutputStream, offset: Option<u64>) -> DynOutputStream {
        Box::new(QuotaStream {
            inner,
            quota: self.clone(),
            at: offset,
        })
    }
}

/// A file's write stream that counts against a [`Quota`].
struct QuotaStream {
    inner: DynOutputStream,
    quota: Quota,
    /// Where the next byte goes, when known.
    at: Option<u64>,
}

fn full() -> StreamError {
    StreamError::LastOperationFailed(wasmtime::format_err!(
        "the /outputs quota of {MAX_OUTPUTS_BYTES} bytes is used up"
    ))
}

impl Pollable for QuotaStream {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.ready()
    }
}

impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let n = bytes.len() as u64;
        if !self.quota.write(self.at.unwrap_or(0), n) {
            return Err(full());
        }
        self.inner.write(bytes)?;
        self.at = self.at.map(|a| a + n);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        let q = Quota::default();
        assert!(q.write(0, 1 << 20));
        assert!(!q.write(MAX_OUTPUTS_BYTES, 1), "past the size quota");
        assert!(!q.write(u64::MAX, 1), "no overflow");
        assert!(q.size(MAX_OUTPUTS_BYTES) && !q.size(MAX_OUTPUTS_BYTES + 1));
        // the byte budget counts every write, overwrites included
        let mut n = 0;
        while q.write(0, 1 << 30) {
            n += 1;
        }
        assert_eq!(n, 3, "4 GiB in all, 1 MiB of it spent already");
        for _ in 0..MAX_CREATES {
            assert!(q.create());
        }
        assert!(!q.create());
    }
}
