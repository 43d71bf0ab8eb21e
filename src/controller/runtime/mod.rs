//! The `kube::runtime::Controller` wiring: the watch and its cache of trimmed resources
//! (`cached`), the line of reconcile requests in front of kube's scheduler and the resync sweep
//! (`feed`), readiness and gauges (`wiring`). It knows nothing of what a reconcile does.

pub mod cached;
pub mod feed;
pub mod wiring;
