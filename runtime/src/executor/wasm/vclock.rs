//! Virtual time: the guest's clocks, and waiting that takes no real time.
//!
//! A Python function has no network, no other process and no real clock, so nothing outside it
//! can change while it waits: a sleep can only make time pass. Here time is a counter per
//! instance that starts at a fixed instant (2023-11-14T22:13:20Z on the wall clock, 0 on the
//! monotonic one), advances by one microsecond per reading, and jumps by the whole duration of
//! every wait, which returns at once. So code that sleeps or polls with a timeout terminates
//! under the fuel limit, takes no real time (four `time.sleep(3600)` calls do not hold the
//! node's instance slots for an hour), and every run reads the same values.
//!
//! wasmtime-wasi's `wasi:clocks/monotonic-clock` waits on a real tokio timer; [`shadow_sync`]
//! replaces it in the linker with [`VClockView`], whose pollables are ready at once.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi_io::poll::{Pollable, subscribe};

/// The wall clock's reading at virtual time 0: 2023-11-14T22:13:20Z.
const WALL_EPOCH: Duration = Duration::from_secs(1_700_000_000);
/// How far one reading advances time, in nanoseconds.
const STEP: u64 = 1_000;

/// One instance's time in nanoseconds since its start, shared by its clocks and its waits.
#[derive(Clone, Default)]
pub struct VirtualTime(Arc<AtomicU64>);

impl VirtualTime {
    /// The time now (the monotonic clock's reading); reading advances it by a microsecond.
    pub fn now(&self) -> u64 {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(STEP))
            })
            .unwrap_or_default()
    }

    /// Moves time forward to `when`, never back.
    fn advance_to(&self, when: u64) {
        self.0.fetch_max(when, Ordering::Relaxed);
    }

    /// Back to time 0 (a build's clock starts there every time).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// A pollable for a wait until `when`: ready at once, time moved there.
    pub fn subscribe_instant(
        &self,
        table: &mut ResourceTable,
        when: u64,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let w = table.push(Wait(self.clone(), when))?;
        subscribe(table, w)
    }

    /// A pollable for a wait of `d` nanoseconds: ready at once, time moved on by `d`.
    pub fn subscribe_duration(
        &self,
        table: &mut ResourceTable,
        d: u64,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        // it ends `d` after now, however often it is polled
        let when = self.0.load(Ordering::Relaxed).saturating_add(d);
        self.subscribe_instant(table, when)
    }

    /// The wall clock over this time.
    pub fn wall(&self) -> impl HostWallClock + use<> {
        Wall(self.clone())
    }

    /// The monotonic clock over this time.
    pub fn monotonic(&self) -> impl HostMonotonicClock + use<> {
        Mono(self.clone())
    }
}

struct Wall(VirtualTime);

impl HostWallClock for Wall {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(STEP)
    }
    fn now(&self) -> Duration {
        WALL_EPOCH + Duration::from_nanos(self.0.now())
    }
}

struct Mono(VirtualTime);

impl HostMonotonicClock for Mono {
    fn resolution(&self) -> u64 {
        STEP
    }
    fn now(&self) -> u64 {
        self.0.now()
    }
}

/// A wait until an instant: ready at once, having moved time there (if it was not yet).
/// Polling it again changes nothing, and of several waits polled together the clocks end at
/// the latest.
struct Wait(VirtualTime, u64);

impl Pollable for Wait {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.0.advance_to(self.1);
        Box::pin(std::future::ready(()))
    }
}

/// What the shadowed `wasi:clocks/monotonic-clock` works on.
pub struct VClockView<'a> {
    /// The instance's time.
    pub time: &'a VirtualTime,
    /// Where its pollables live.
    pub table: &'a mut ResourceTable,
}

/// A store's data that has virtual time.
pub trait VClockHost: Send {
    /// The view the clock interface works on.
    fn vclock(&mut self) -> VClockView<'_>;
}

/// [`HasData`] for [`VClockView`].
pub struct VClock;

impl HasData for VClock {
    type Data<'a> = VClockView<'a>;
}

impl monotonic_clock::Host for VClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.time.now())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(STEP)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.time.subscribe_instant(self.table, when)
    }

    fn subscribe_duration(
        &mut self,
        d: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.time.subscribe_duration(self.table, d)
    }
}

/// Replaces the `wasi:clocks/monotonic-clock` that wasmtime-wasi linked with virtual time.
pub fn shadow_sync<T: VClockHost + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let r = monotonic_clock::add_to_linker::<T, VClock>(linker, T::vclock);
    linker.allow_shadowing(false);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_step_and_waits_jump() {
        let t = VirtualTime::default();
        let (wall, mono) = (t.wall(), t.monotonic());
        assert_eq!(mono.now(), 0);
        assert_eq!(mono.now(), STEP);
        assert_eq!(wall.now(), WALL_EPOCH + Duration::from_nanos(2 * STEP));
        let mut table = ResourceTable::new();
        let mut view = VClockView {
            time: &t,
            table: &mut table,
        };
        // an hour's sleep passes at once, and the clocks show it; polling it again does not
        // add another hour
        let _p = t.subscribe_duration(view.table, 3_600_000_000_000).unwrap();
        let mut w = Wait(t.clone(), 3 * STEP + 3_600_000_000_000);
        futures::executor::block_on(w.ready());
        futures::executor::block_on(w.ready());
        let now = monotonic_clock::Host::now(&mut view).unwrap();
        assert_eq!(now, 3 * STEP + 3_600_000_000_000);
        // a wait for an instant already past leaves time alone
        futures::executor::block_on(Wait(t.clone(), 5).ready());
        assert_eq!(mono.now(), now + STEP);
        // no overflow at the end of time
        let end = t.0.load(Ordering::Relaxed).saturating_add(u64::MAX);
        futures::executor::block_on(Wait(t.clone(), end).ready());
        assert_eq!(mono.now(), u64::MAX);
        assert_eq!(mono.now(), u64::MAX);
    }
}
