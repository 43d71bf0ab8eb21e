//! The error that ends a reconcile, and the field manager name of our writes: what every part of
//! the controller names, so it depends on nothing else of ours.

use std::time::Duration;

/// The field manager of our writes.
pub const MANAGER: &str = "provider-integration-operator";

/// Errors that end a reconcile; `error_policy` requeues them.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(kube::Error),
    /// Deletion must wait (in use, API unavailable); the finalizer stays.
    #[error("deletion pending: {message}")]
    DeletionPending { message: String, retry_in: Duration },
    /// A write failed because the copy it was decided on is no longer the latest (409):
    /// the decision is made again on the fresh copy the watch brings.
    #[error("the resource changed since it was read; deciding again on the latest version")]
    Stale,
    /// The cached copy did not decode (`Cached::decode`): a bug, not a state of the resource.
    #[error("the cached copy of the resource does not decode: {0}")]
    Cache(#[from] serde_json::Error),
    /// The API server rejected a write of ours as invalid (422), with its message.
    #[error("the Kubernetes API server rejected the operator's write (422): {0}")]
    Rejected(String),
    /// The reconcile passed `Config::reconcile_timeout`; it is dropped where it was (every step
    /// is safe to repeat) and retried with backoff.
    #[error("the reconcile did not finish within {0:?}")]
    Deadline(Duration),
    /// Not written: this replica is past its leader Lease's renew deadline, and a new leader may
    /// be acting (`pim::Fence`). Nothing is retried here; the replica is stepping down.
    #[error("not written: this replica no longer holds the leader Lease")]
    Fenced,
    /// What the resource's Namespace says (a pause, a grant) cannot be told now: the watch of
    /// Namespaces is starting or failing. Nothing was done; tried again within a second.
    #[error("the Namespace {0} cannot be read yet, so a pause on it cannot be ruled out")]
    NamespaceUnknown(String),
}

/// What `leader::FenceLayer` answers a write it holds back: the replica is past its Lease's
/// renew deadline.
#[derive(thiserror::Error, Debug)]
#[error("not sent: past this replica's leader Lease deadline")]
pub struct PastDeadline;

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Service(s) if s.is::<PastDeadline>() => Error::Fenced,
            e => Error::Kube(e),
        }
    }
}

impl Error {
    /// The Kubernetes API server did not answer, or answered that it cannot now (5xx, 429, no
    /// connection): not about this resource, and retried once it answers again.
    pub fn api_server_unavailable(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(s)) => s.code >= 500 || s.code == 429,
            Error::Kube(kube::Error::HyperError(_) | kube::Error::Service(_)) => true,
            _ => false,
        }
    }
}

/// The longest Secret value read as a Cloud API key or secret.
pub const MAX_CREDENTIAL_BYTES: usize = 1024;

/// Why credentials could not be loaded; each is something a user must fix.
#[derive(thiserror::Error, Debug)]
pub enum CredentialsError {
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no non-empty key \"{key}\"")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    /// A Cloud API key is 16 characters and its secret 64; a value far longer is some other file.
    #[error(
        "Secret {namespace}/{name} key \"{key}\" holds {bytes} bytes, not a Cloud API key or secret (at most {max})",
        max = MAX_CREDENTIAL_BYTES
    )]
    TooLong {
        namespace: String,
        name: String,
        key: String,
        bytes: usize,
    },
    #[error("no credentialsRef and the operator has no default credentials")]
    NoDefault,
    #[error(
        "the operator's default credentials are not granted to namespace {namespace} for environment {environment}"
    )]
    NotAllowed {
        namespace: String,
        environment: String,
    },
    /// The Namespace watch has not listed Namespaces yet, or is failing: known again soon.
    #[error("namespace {0} cannot be read yet")]
    NamespaceUnknown(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}
