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

/// Turns a registration failure (a name registered twice) into a runtime error.
pub(crate) fn error(e: prometheus::Error) -> crate::Error {
    crate::Error::Io(std::io::Error::other(format!("metrics: {e}")))
}
