//! What reconciles share: the `Context` (configuration, clients, per-resource memory and
//! backoff), the remote cache of what Confluent holds per environment, the owner index of
//! who holds which integration, the Secrets read recently, and the followed Namespaces. No reconcile logic lives here.

pub mod context;
pub mod gate;
pub mod namespaces;
pub mod owners;
pub mod remote;
pub mod secrets;
pub mod trust_watch;
