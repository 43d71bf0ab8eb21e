//! `/_emulator`: what happens outside the API (connectors start using an integration, someone
//! deletes one in the Console, the customer grants access in their cloud), fault injection,
//! quotas and counters.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Emulator;
use super::faults::{FailNext, Faults, Stats};
use super::request::ApiError;
use super::store::{Quotas, Version};

pub(super) fn admin_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "Not Found",
        format!("integration \"{id}\" not found"),
    )
}

pub(super) async fn admin_list(State(em): State<Arc<Emulator>>) -> Json<Value> {
    let s = em.store.lock();
    let all: Vec<Value> = s
        .records
        .values()
        .map(|r| json!({"integration": r.to_api(Version::V2, &em.base, &s.org_id), "access_granted": r.access_granted}))
        .collect();
    Json(json!({ "data": all }))
}

/// Deletes an integration out of band, as the Console would, regardless of usages.
pub(super) async fn admin_delete(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    em.mutate(|s| {
        s.remove(&id)
            .map(|_| ())
            .ok_or_else(|| admin_not_found(&id))
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an environment with its integrations, as the Console would; the API then answers 403
/// for it.
pub(super) async fn admin_delete_environment(
    State(em): State<Arc<Emulator>>,
    Path(env): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let removed = em.mutate(|s| Ok(s.delete_environment(&env)))?;
    Ok(Json(
        json!({"environment": env, "integrations_deleted": removed}),
    ))
}

/// Replaces the usages (connector CRNs) of an integration.
pub(super) async fn admin_usages(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Json(usages): Json<Vec<String>>,
) -> Result<Json<Value>, ApiError> {
    em.mutate(|s| {
        let r = s.get_mut(&id).ok_or_else(|| admin_not_found(&id))?;
        r.usages = usages;
        Ok(())
    })?;
    Ok(Json(json!({"id": id})))
}

#[derive(Deserialize)]
pub(super) struct Access {
    granted: bool,
}

/// Simulates the customer granting (or revoking) Confluent's access on their cloud side.
pub(super) async fn admin_access(
    State(em): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Json(a): Json<Access>,
) -> Result<StatusCode, ApiError> {
    em.mutate(|s| {
        let r = s.get_mut(&id).ok_or_else(|| admin_not_found(&id))?;
        r.access_granted = a.granted;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn admin_faults_get(State(em): State<Arc<Emulator>>) -> Json<Faults> {
    Json(em.faults.lock().clone())
}

pub(super) async fn admin_faults_put(
    State(em): State<Arc<Emulator>>,
    Json(f): Json<Faults>,
) -> Response {
    if let Err(e) = f.validate() {
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", "Bad Request", e)
            .into_response();
    }
    *em.dice.lock() = f.dice();
    *em.faults.lock() = f;
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn admin_fail_next(
    State(em): State<Arc<Emulator>>,
    Json(f): Json<FailNext>,
) -> Response {
    if let Err(e) = f.validate() {
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", "Bad Request", e)
            .into_response();
    }
    em.faults.lock().fail_next.push(f);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Serialize, Deserialize)]
pub(super) struct QuotaBody {
    per_org: usize,
    per_env: Option<usize>,
}

pub(super) async fn admin_quotas_get(State(em): State<Arc<Emulator>>) -> Json<Quotas> {
    Json(*em.quotas.lock())
}

pub(super) async fn admin_quotas_put(
    State(em): State<Arc<Emulator>>,
    Json(q): Json<QuotaBody>,
) -> StatusCode {
    *em.quotas.lock() = Quotas {
        per_org: q.per_org,
        per_env: q.per_env,
    };
    StatusCode::NO_CONTENT
}

pub(super) async fn admin_stats(State(em): State<Arc<Emulator>>) -> Json<Value> {
    Json(em.stats())
}

pub(super) async fn admin_stats_reset(State(em): State<Arc<Emulator>>) -> StatusCode {
    *em.stats.lock() = Stats::default();
    StatusCode::NO_CONTENT
}

/// Forgets every integration, fault and counter.
pub(super) async fn admin_reset(State(em): State<Arc<Emulator>>) -> StatusCode {
    let _ = em.mutate(|s| {
        s.records.clear();
        s.deleted_environments.clear();
        s.reindex();
        Ok(())
    });
    *em.faults.lock() = Faults::default();
    *em.dice.lock() = fastrand::Rng::new();
    *em.stats.lock() = Stats::default();
    StatusCode::NO_CONTENT
}
