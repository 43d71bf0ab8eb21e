//! The steps of a reconcile, one file each, in pipeline order: `credentials` (the key to act
//! with), `observe` (what Confluent holds, through the remote cache), `apply` (the one Confluent
//! write of a decision), `validate` (the validate call), `status` (the status write, events,
//! stalls), `metadata` (finalizer and intent patches), `outputs` (the ConfigMap), `cleanup` (the
//! deletion path), `pause` (the pause annotation and its condition). Steps do I/O; they take
//! their judgements from `decide`.

pub mod apply;
pub mod cleanup;
pub mod credentials;
pub mod metadata;
pub mod observe;
pub mod outputs;
pub mod pause;
pub mod status;
pub mod trust;
pub mod validate;
