//! Instances made ahead of their requests.
//!
//! Making an instance of a Python component takes about as long as running a small function
//! in it (mostly filling its function table). An instance is fresh until it is called: its
//! input and random seed go in with the call. So after answering an invocation, its blocking
//! thread makes the next instance of the same component, and the next invocation takes it
//! instead of waiting for one. Each invocation still runs in an instance no other has used.

use std::sync::Mutex;

/// How many instances wait at most, over all components: each holds a pooling-allocator slot
/// of its own, on top of the slots of running instances.
pub const READY: usize = 8;
/// How many wait per component, so that back-to-back invocations find one while the next ones
/// are being made.
const PER_COMPONENT: usize = 3;

/// An instance made ahead, with the `/outputs` directory it mounts. (Generic so that the
/// bookkeeping can be tested without making real instances.)
pub struct Ready<I> {
    component: String,
    /// The fresh, never-called instance.
    pub instance: I,
    /// The host directory the instance mounts as `/outputs`.
    pub outputs: tempfile::TempDir,
}

/// The instances waiting for invocations, over all components, bounded by [`READY`].
pub struct ReadyPool<I> {
    state: Mutex<State<I>>,
    /// How many wait now.
    waiting: prometheus::IntGauge,
}

struct State<I> {
    /// Least recently made first.
    ready: Vec<Ready<I>>,
    /// Components whose instance is being made now.
    making: Vec<String>,
}

impl<I> ReadyPool<I> {
    /// An empty pool that keeps `waiting` set to the number of waiting instances.
    pub fn new(waiting: prometheus::IntGauge) -> Self {
        Self {
            state: Mutex::new(State {
                ready: Vec::new(),
                making: Vec::new(),
            }),
            waiting,
        }
    }

    /// The least recently made waiting instance of `component` that `fits`.
    pub fn take(&self, component: &str, fits: impl Fn(&I) -> bool) -> Option<Ready<I>> {
        let mut s = self.state.lock().unwrap();
        let i = s
            .ready
            .iter()
            .position(|r| r.component == component && fits(&r.instance))?;
        let r = s.ready.remove(i);
        self.waiting.set(s.ready.len() as i64);
        Some(r)
    }

    /// Makes instances of `component` with `make` until [`PER_COMPONENT`] of them wait or are
    /// being made. Only waiting instances that `fit` count: a component redeployed with other
    /// limits keeps its component CID, and instances made with the old limits are never taken.
    /// To stay within [`READY`] it may push out the least recently made instances; those are
    /// returned, for the caller to drop off the lock.
    pub fn refill(
        &self,
        component: &str,
        fits: impl Fn(&I) -> bool,
        mut make: impl FnMut() -> Option<(I, tempfile::TempDir)>,
    ) -> Vec<Ready<I>> {
        let mut evicted = Vec::new();
        loop {
            {
                let mut s = self.state.lock().unwrap();
                let waiting = s.making.iter().filter(|c| *c == component).count()
                    + s.ready
                        .iter()
                        .filter(|r| r.component == component && fits(&r.instance))
                        .count();
                if waiting >= PER_COMPONENT {
                    return evicted;
                }
                if s.ready.len() + s.making.len() >= READY {
                    if s.ready.is_empty() {
                        return evicted;
                    }
                    evicted.push(s.ready.remove(0));
                    self.waiting.set(s.ready.len() as i64);
                }
                s.making.push(component.to_string());
            }
            // takes the component off `making` even if `make` panics
            struct Making<'a, I>(&'a ReadyPool<I>, &'a str, Option<Ready<I>>);
            impl<I> Drop for Making<'_, I> {
                fn drop(&mut self) {
                    let mut s = self.0.state.lock().unwrap();
                    if let Some(i) = s.making.iter().position(|c| c == self.1) {
                        s.making.remove(i);
                    }
                    s.ready.extend(self.2.take());
                    self.0.waiting.set(s.ready.len() as i64);
                }
            }
            let mut guard = Making(self, component, None);
            let Some((instance, outputs)) = make() else {
                return evicted;
            };
            guard.2 = Some(Ready {
                component: component.to_string(),
                instance,
                outputs,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> ReadyPool<u32> {
        ReadyPool::new(prometheus::IntGauge::new("ready", "ready").unwrap())
    }

    fn maker(next: &mut u32) -> impl FnMut() -> Option<(u32, tempfile::TempDir)> + '_ {
        move || {
            *next += 1;
            Some((*next, tempfile::tempdir().unwrap()))
        }
    }

    #[test]
    fn fills_one_component_to_its_share_and_hands_out_the_oldest_first() {
        let p = pool();
        let mut n = 0;
        assert!(p.refill("a", |_| true, maker(&mut n)).is_empty());
        assert_eq!(
            n, PER_COMPONENT as u32,
            "made up to the per-component share"
        );
        assert_eq!(p.waiting.get(), PER_COMPONENT as i64);
        // full: nothing more is made
        p.refill("a", |_| true, maker(&mut n));
        assert_eq!(n, PER_COMPONENT as u32);
        assert_eq!(p.take("a", |_| true).unwrap().instance, 1);
        assert!(
            p.take("b", |_| true).is_none(),
            "another component's instance"
        );
        assert!(
            p.take("a", |i| *i == 99).is_none(),
            "made with other limits"
        );
        p.refill("a", |_| true, maker(&mut n));
        assert_eq!(
            n,
            PER_COMPONENT as u32 + 1,
            "one made to replace the one taken"
        );
        let got: Vec<u32> =
            std::iter::from_fn(|| p.take("a", |_| true).map(|r| r.instance)).collect();
        assert_eq!(got, (2..=PER_COMPONENT as u32 + 1).collect::<Vec<_>>());
        assert_eq!(p.waiting.get(), 0);
    }

    #[test]
    fn stays_within_the_total_by_pushing_out_the_oldest() {
        let p = pool();
        let mut n = 0;
        let full = READY / PER_COMPONENT;
        for c in 0..full {
            assert!(
                p.refill(&format!("c{c}"), |_| true, maker(&mut n))
                    .is_empty()
            );
        }
        let room = READY - full * PER_COMPONENT;
        assert!(room < PER_COMPONENT, "the test needs the total to run out");
        let evicted = p.refill("new", |_| true, maker(&mut n));
        let evicted: Vec<(String, u32)> = evicted
            .into_iter()
            .map(|r| (r.component, r.instance))
            .collect();
        let oldest: Vec<(String, u32)> = (1..=(PER_COMPONENT - room) as u32)
            .map(|i| ("c0".to_string(), i))
            .collect();
        assert_eq!(evicted, oldest, "the least recently made go first");
        assert_eq!(p.waiting.get(), READY as i64);
        assert!(p.take("new", |_| true).is_some());
    }

    #[test]
    fn instances_made_with_other_limits_do_not_fill_the_share() {
        let p = pool();
        let mut n = 0;
        // "limits" here: instances numbered up to PER_COMPONENT are the old ones
        let old = PER_COMPONENT as u32;
        p.refill("a", |_| true, maker(&mut n));
        assert_eq!(n, old);
        p.refill("a", |i| *i > old, maker(&mut n));
        assert_eq!(n, 2 * old, "a full share made with the new limits");
        assert_eq!(p.take("a", |i| *i > old).unwrap().instance, old + 1);
        assert_eq!(p.waiting.get(), (2 * PER_COMPONENT - 1) as i64);
    }

    #[test]
    fn a_failed_or_panicking_make_leaves_no_reservation_behind() {
        let p = pool();
        assert!(p.refill("a", |_| true, || None).is_empty());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.refill("a", |_| true, || panic!("instantiation panicked"))
        }));
        assert!(r.is_err());
        let mut n = 0;
        p.refill("a", |_| true, maker(&mut n));
        assert_eq!(
            n, PER_COMPONENT as u32,
            "nothing still counted as being made"
        );
    }
}
