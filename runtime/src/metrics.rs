//! Prometheus helpers shared by every part that exports metrics.

use prometheus::Registry;
use prometheus::core::Collector;

/// Registers `c` in `r` and hands it back, so a metrics struct is built in one expression per
/// metric.
pub(crate) fn register<C: Collector + Clone + 'static>(
    r: &Registry,
    c: C,
) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

/// Makes the series of `v` for each label set in `sets` exist (at zero) from the start, so a
/// scrape shows them before anything happened and `rate()` over them starts from zero.
pub(crate) fn preset(v: &prometheus::IntCounterVec, sets: &[&[&str]]) {
    for s in sets {
        v.with_label_values(s);
    }
}

/// Turns a registration failure (a name registered twice) into a runtime error.
pub(crate) fn error(e: prometheus::Error) -> crate::Error {
    crate::Error::Io(std::io::Error::other(format!("metrics: {e}")))
}
