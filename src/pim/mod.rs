//! The Provider Integration API: wire types, typed errors and the HTTP client.

pub mod client;
pub mod error;
pub mod throttle;
pub mod types;

pub use client::{ApiVersion, Credentials, ListFilter, PimClient, RequestObserver};
pub use error::{ErrorClass, MAX_RETRY_AFTER, PimError, RetryAfter};
pub use types::*;
