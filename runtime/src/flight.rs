//! Single flight: work named by a key (a build, a compile, a pin) runs once at a time per key.
//!
//! Concurrent requests for the same thing (eight first invocations of one function, two deploys
//! of one bundle) would otherwise each do the work and race on its files. Each takes the key's
//! lock, then looks whether an earlier holder already did the work, and does it only if not.
//! Keys that nobody holds or waits for take no memory.
//!
//! Written here rather than taken from a crate: it is a map of `tokio` mutexes with a cleanup on
//! drop, and the guards must be owned (`'static`) so a build thread can hold one after its
//! caller has gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// Per key: its lock, and how many hold or wait for it.
type Map = Mutex<HashMap<String, (Arc<tokio::sync::Mutex<()>>, usize)>>;

/// A lock per key.
#[derive(Default, Clone)]
pub struct KeyedLock {
    map: Arc<Map>,
}

/// Holds one key (or waits for it, inside [`KeyedLock::lock`]); the next waiter goes on when it
/// is dropped.
pub struct KeyGuard {
    map: Arc<Map>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLock {
    /// Waits until no one else holds `key`, then holds it.
    pub async fn lock(&self, key: &str) -> KeyGuard {
        let m = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let e = map.entry(key.to_string()).or_default();
            e.1 += 1;
            e.0.clone()
        };
        // counted from here: a waiter that is cancelled uncounts itself when this drops
        let mut g = KeyGuard {
            map: self.map.clone(),
            key: key.to_string(),
            guard: None,
        };
        g.guard = Some(m.lock_owned().await);
        g
    }

    /// How many keys are held or waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&self.key) {
            e.1 -= 1;
            if e.1 == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_holder_per_key_and_no_leftovers() {
        let locks = KeyedLock::default();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..32 {
            let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock(if i % 2 == 0 { "a" } else { "b" }).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // two keys: at most two holders at once, and at least one
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} holders at once");
        assert_eq!(locks.len(), 0, "keys left behind");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_nothing() {
        let locks = KeyedLock::default();
        let held = locks.lock("k").await;
        let waiter = tokio::time::timeout(Duration::from_millis(20), locks.lock("k")).await;
        assert!(waiter.is_err(), "the waiter got a held key");
        assert_eq!(locks.len(), 1);
        drop(held);
        assert_eq!(locks.len(), 0);
        // a waiter cancelled after the holder let go (it was woken but never polled again)
        let held = locks.lock("k").await;
        let mut waiting = Box::pin(locks.lock("k"));
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(held);
        drop(waiting);
        assert_eq!(locks.len(), 0);
        // and the key can be taken again
        let _again = tokio::time::timeout(Duration::from_secs(5), locks.lock("k"))
            .await
            .expect("the key stayed locked");
    }
}
