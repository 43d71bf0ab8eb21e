//! The Provider Integration API: wire types, typed errors and the HTTP client.

pub mod adaptive;
pub mod client;
pub mod error;
pub mod throttle;
pub mod types;

pub use client::{
    ApiVersion, Body, Credentials, Fence, ListFilter, PimClient, RequestObserver, interpret,
    page_token,
};
pub use error::{ErrorClass, MAX_RETRY_AFTER, PimError, RetryAfter};
pub use types::*;
