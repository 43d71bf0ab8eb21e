//! The emulator's state and the API's rules on it (uniqueness, quotas, usages, the `pim/v2`
//! lifecycle), kept free of HTTP. Request validation is in `request.rs`, paging in `pages.rs`.
//!
//! Where `shared/pim-api.md` marks a behaviour as *inferred*, the choice made here says so.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::model::ApiError;
pub use super::model::{Phase, Record, Version};
use super::pages::{Cursor, Filter, Page};
use crate::pim::types::IntegrationConfig;

/// The persistent part of the emulator (what `--state` saves).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Store {
    pub org_id: String,
    /// Confluent's AWS account that owns the roles customers trust.
    pub aws_account: String,
    /// Confluent's multi-tenant Azure app, one per organization.
    pub azure_app_id: String,
    pub next_seq: u64,
    pub records: BTreeMap<u64, Record>,
    /// Environments deleted (with their integrations); requests naming them answer 403.
    #[serde(default)]
    pub deleted_environments: std::collections::BTreeSet<String>,
    #[serde(skip)]
    index: HashMap<String, u64>,
    /// (environment, customer role ARN) → id, for the uniqueness rule.
    #[serde(skip)]
    roles: HashMap<(String, String), String>,
    /// Integrations per environment, for the quota.
    #[serde(skip)]
    per_env: HashMap<String, usize>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            org_id: uuid::Uuid::new_v4().to_string(),
            aws_account: format!("{:012}", fastrand::u64(100_000_000_000..1_000_000_000_000)),
            azure_app_id: uuid::Uuid::new_v4().to_string(),
            next_seq: 1,
            records: BTreeMap::new(),
            deleted_environments: Default::default(),
            index: HashMap::new(),
            roles: HashMap::new(),
            per_env: HashMap::new(),
        }
    }
}

/// Quotas in force; `provider_integrations_per_org` defaults to 100.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub per_org: usize,
    pub per_env: Option<usize>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            per_org: 100,
            per_env: None,
        }
    }
}

impl Store {
    /// Rebuilds the id index after loading.
    pub fn reindex(&mut self) {
        self.index = self
            .records
            .iter()
            .map(|(s, r)| (r.id.clone(), *s))
            .collect();
        self.roles.clear();
        self.per_env.clear();
        let records: Vec<Record> = self.records.values().cloned().collect();
        for r in &records {
            self.track(r);
        }
    }

    /// Adds a record to the secondary indexes.
    fn track(&mut self, r: &Record) {
        *self.per_env.entry(r.environment.clone()).or_default() += 1;
        if let Some(role) = r.customer_role() {
            self.roles
                .insert((r.environment.clone(), role.to_string()), r.id.clone());
        }
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.index.get(id).and_then(|s| self.records.get(s))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Record> {
        let seq = *self.index.get(id)?;
        self.records.get_mut(&seq)
    }

    /// The integration `id` as seen from `env`; another environment's integration is a 404.
    /// A request naming a deleted environment answers 403 with no word of an invalid key, which
    /// Confluent's Terraform provider reads as "gone" (`shared/confluent-api/README.md`, fact 9).
    pub fn check_environment(&self, env: &str) -> Result<(), ApiError> {
        if self.deleted_environments.contains(env) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "Forbidden Access",
            ));
        }
        Ok(())
    }

    /// Deletes an environment and every integration in it.
    pub fn delete_environment(&mut self, env: &str) -> usize {
        let ids: Vec<String> = self
            .records
            .values()
            .filter(|r| r.environment == env)
            .map(|r| r.id.clone())
            .collect();
        for id in &ids {
            self.remove(id);
        }
        self.deleted_environments.insert(env.to_string());
        ids.len()
    }

    pub fn get_in_env(&self, id: &str, env: &str) -> Result<&Record, ApiError> {
        self.check_environment(env)?;
        self.get(id)
            .filter(|r| r.environment == env)
            .ok_or_else(|| ApiError::not_found(id, env))
    }

    /// A fresh id: `dlz-…` from `pim/v1`, `cspi-…` from `pim/v2` (inferred from the ids in
    /// Confluent's v1 and v2 documentation examples; the operator treats ids as opaque).
    fn new_id(&self, version: Version) -> String {
        let prefix = match version {
            Version::V1 => "dlz",
            Version::V2 => "cspi",
        };
        loop {
            let id = format!("{prefix}-{:07x}", fastrand::u32(..0x1000_0000));
            if !self.index.contains_key(&id) {
                return id;
            }
        }
    }

    fn check_quota(&self, env: &str, quotas: Quotas) -> Result<(), ApiError> {
        if self.records.len() >= quotas.per_org {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "quota_exceeded",
                "Quota Exceeded",
                format!(
                    "quota provider_integrations_per_org exceeded: limit is {}",
                    quotas.per_org
                ),
            ));
        }
        if let Some(limit) = quotas.per_env {
            let n = self.per_env.get(env).copied().unwrap_or(0);
            if n >= limit {
                return Err(ApiError::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "quota_exceeded",
                    "Quota Exceeded",
                    format!(
                        "quota provider_integrations_per_env exceeded for {env}: limit is {limit}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// inferred (Terraform docs): a customer role ARN is unique within an environment.
    fn check_unique_role(
        &self,
        env: &str,
        config: &IntegrationConfig,
        except: Option<&str>,
    ) -> Result<(), ApiError> {
        let IntegrationConfig::Aws(aws) = config else {
            return Ok(());
        };
        let clash = self
            .roles
            .get(&(env.to_string(), aws.customer_iam_role_arn.clone()))
            .filter(|id| Some(id.as_str()) != except)
            .and_then(|id| self.get(id));
        match clash {
            Some(r) => {
                let mut e = ApiError::new(
                    StatusCode::CONFLICT,
                    "resource_already_exists",
                    "Conflict",
                    format!(
                        "an integration with customer_iam_role_arn {} already exists in {env}: {}",
                        aws.customer_iam_role_arn, r.id
                    ),
                );
                e.pointer = Some("/config/customer_iam_role_arn".into());
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Fills the read-only, Confluent-side values of a config (kept as they are once set, as a
    /// DRAFT's identity stays when it is configured).
    fn complete_config(&self, id: &str, config: IntegrationConfig) -> IntegrationConfig {
        match config {
            IntegrationConfig::Aws(mut c) => {
                c.iam_role_arn = Some(format!(
                    "arn:aws:iam::{}:role/confluent-pim-{}",
                    self.aws_account,
                    id.split_once('-').map_or(id, |(_, n)| n)
                ));
                c.external_id = Some(uuid::Uuid::new_v4().to_string());
                IntegrationConfig::Aws(c)
            }
            IntegrationConfig::Gcp(mut c) => {
                c.google_service_account = Some(format!(
                    "cflt-pim-{}@cflt-{}.iam.gserviceaccount.com",
                    id.split_once('-').map_or(id, |(_, n)| n),
                    self.org_id.get(..8).unwrap_or(&self.org_id)
                ));
                IntegrationConfig::Gcp(c)
            }
            IntegrationConfig::Azure(mut c) => {
                c.confluent_multi_tenant_app_id = Some(self.azure_app_id.clone());
                IntegrationConfig::Azure(c)
            }
            IntegrationConfig::Unknown => IntegrationConfig::Unknown,
        }
    }

    /// Creates an integration (v1 always with a config; v2 possibly as a DRAFT).
    pub fn create(
        &mut self,
        version: Version,
        display_name: String,
        provider: String,
        env: String,
        config: Option<IntegrationConfig>,
        quotas: Quotas,
    ) -> Result<Record, ApiError> {
        self.check_environment(&env)?;
        self.check_quota(&env, quotas)?;
        if let Some(c) = &config {
            self.check_unique_role(&env, c, None)?;
        }
        let id = self.new_id(version);
        self.create_as(id, display_name, provider, env, config)
    }

    /// Stores an integration under a chosen id, as if made earlier outside the operator (the
    /// Console, Terraform): what `run --emulator` starts with, for the adoption example.
    pub fn create_as(
        &mut self,
        id: String,
        display_name: String,
        provider: String,
        env: String,
        config: Option<IntegrationConfig>,
    ) -> Result<Record, ApiError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (config, phase) = match config {
            Some(c) => (Some(self.complete_config(&id, c)), Phase::Created),
            // A DRAFT already carries Confluent's identity and an empty customer field
            // (`terraform-mocks/provider_integration_setup__create_{gcp,azure}_…json`).
            None => (
                Some(self.complete_config(&id, empty_config(&provider))),
                Phase::Draft,
            ),
        };
        let r = Record {
            seq,
            id: id.clone(),
            display_name,
            provider,
            environment: env,
            config,
            usages: Vec::new(),
            phase,
            access_granted: false,
        };
        self.records.insert(seq, r.clone());
        self.index.insert(id, seq);
        self.track(&r);
        Ok(r)
    }

    /// `pim/v2` PATCH: sets the config of a DRAFT.
    pub fn set_config(
        &mut self,
        id: &str,
        env: &str,
        config: IntegrationConfig,
    ) -> Result<Record, ApiError> {
        let r = self.get_in_env(id, env)?;
        let identity = r.config.clone();
        if r.phase != Phase::Draft {
            // inferred: the spec only says PATCH is allowed while DRAFT; 409 is the closest fit.
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_state",
                "Conflict",
                format!(
                    "integration {id} is {}; config can only be set while DRAFT",
                    r.status()
                ),
            ));
        }
        self.check_unique_role(env, &config, Some(id))?;
        let config = keep_identity(self.complete_config(id, config), identity);
        let r = self
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id, env))?;
        r.config = Some(config);
        r.phase = Phase::Created;
        let r = r.clone();
        if let Some(role) = r.customer_role() {
            self.roles
                .insert((env.to_string(), role.to_string()), id.to_string());
        }
        Ok(r)
    }

    /// `pim/v2` validate: succeeds when the customer granted access on their side.
    pub fn validate(
        &mut self,
        id: &str,
        env: &str,
        config: Option<IntegrationConfig>,
    ) -> Result<(), ApiError> {
        let r = self.get_in_env(id, env)?;
        // The request's config is "required only for integrations in DRAFT status".
        if r.phase == Phase::Draft && config.is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad Request",
                format!("integration {id} is a DRAFT: send its config to validate"),
            ));
        }
        if !r.access_granted {
            // Confluent's test doubles answer a failed validate 400 `bad_request`, with a detail
            // naming the missing permission (`shared/confluent-api/README.md`, fact 7).
            let detail = match r.config.as_ref() {
                Some(IntegrationConfig::Gcp(c)) => format!(
                    "Unable to impersonate {}: {} lacks permission iam.serviceAccounts.getAccessToken (role roles/iam.serviceAccountTokenCreator)",
                    c.customer_google_service_account,
                    c.google_service_account
                        .as_deref()
                        .unwrap_or("Confluent's service account")
                ),
                Some(IntegrationConfig::Azure(c)) => format!(
                    "Application {} has no service principal with admin consent in tenant {}",
                    c.confluent_multi_tenant_app_id
                        .as_deref()
                        .unwrap_or("(Confluent's app)"),
                    c.customer_azure_tenant_id
                ),
                _ => format!(
                    "Unable to assume the customer role of integration {id}: sts:AssumeRole denied"
                ),
            };
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad Request",
                detail,
            ));
        }
        // Validation changes nothing: ACTIVE means "in use", not "validated".
        Ok(())
    }

    /// Deletes an integration unless a workload uses it.
    pub fn delete(&mut self, id: &str, env: &str) -> Result<Record, ApiError> {
        let r = self.get_in_env(id, env)?;
        if !r.usages.is_empty() {
            // inferred: the API documents that delete fails while in use, not the status.
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "resource_in_use",
                "Conflict",
                format!(
                    "integration {id} is in use by {} workload(s): {}",
                    r.usages.len(),
                    r.usages.join(", ")
                ),
            ));
        }
        self.remove(id).ok_or_else(|| ApiError::not_found(id, env))
    }

    /// Removes an integration regardless of usages (the admin's out-of-band delete).
    pub fn remove(&mut self, id: &str) -> Option<Record> {
        let seq = self.index.remove(id)?;
        let r = self.records.remove(&seq)?;
        if let Some(n) = self.per_env.get_mut(&r.environment) {
            *n = n.saturating_sub(1);
        }
        if let Some(role) = r.customer_role() {
            self.roles
                .remove(&(r.environment.clone(), role.to_string()));
        }
        Some(r)
    }

    /// One page of the integrations matching `filter`.
    pub fn page(&self, filter: &Filter, size: usize, cursor: Cursor) -> Page {
        let matching: Vec<&Record> = self.records.values().filter(|r| filter.admits(r)).collect();
        let items: Vec<&Record> = match cursor {
            Cursor::After(s) => matching
                .iter()
                .filter(|r| r.seq > s)
                .take(size)
                .copied()
                .collect(),
            Cursor::Before(s) => {
                let before: Vec<&Record> = matching.iter().filter(|r| r.seq < s).copied().collect();
                before[before.len().saturating_sub(size)..].to_vec()
            }
        };
        let prev = items
            .first()
            .filter(|f| matching.iter().any(|r| r.seq < f.seq))
            .map(|f| Cursor::Before(f.seq));
        let next = items
            .last()
            .filter(|l| matching.iter().any(|r| r.seq > l.seq))
            .map(|l| Cursor::After(l.seq));
        Page {
            items: items.into_iter().cloned().collect(),
            prev,
            next,
            total: matching.len() as u64,
        }
    }
}

/// The config of a new DRAFT: its kind, with the customer's field empty.
fn empty_config(provider: &str) -> IntegrationConfig {
    if provider.eq_ignore_ascii_case("GCP") {
        IntegrationConfig::Gcp(Default::default())
    } else if provider.eq_ignore_ascii_case("AZURE") {
        IntegrationConfig::Azure(Default::default())
    } else {
        IntegrationConfig::Aws(Default::default())
    }
}

/// A configured DRAFT keeps the identity Confluent gave it at creation.
fn keep_identity(config: IntegrationConfig, draft: Option<IntegrationConfig>) -> IntegrationConfig {
    match (config, draft) {
        (IntegrationConfig::Gcp(mut c), Some(IntegrationConfig::Gcp(d))) => {
            c.google_service_account = d.google_service_account.or(c.google_service_account);
            IntegrationConfig::Gcp(c)
        }
        (IntegrationConfig::Azure(mut c), Some(IntegrationConfig::Azure(d))) => {
            c.confluent_multi_tenant_app_id = d
                .confluent_multi_tenant_app_id
                .or(c.confluent_multi_tenant_app_id);
            IntegrationConfig::Azure(c)
        }
        (IntegrationConfig::Aws(mut c), Some(IntegrationConfig::Aws(d))) => {
            c.iam_role_arn = d.iam_role_arn.or(c.iam_role_arn);
            c.external_id = d.external_id.or(c.external_id);
            IntegrationConfig::Aws(c)
        }
        (c, _) => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pim::types::AwsConfig;

    fn aws(arn: &str) -> IntegrationConfig {
        IntegrationConfig::Aws(AwsConfig {
            customer_iam_role_arn: arn.into(),
            ..Default::default()
        })
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        for c in [
            Cursor::After(0),
            Cursor::After(42),
            Cursor::Before(u64::MAX),
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in ["", "abc", "cGltOng6MQ", &"a".repeat(300)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn keyset_pages_survive_deletes() {
        let mut s = Store::default();
        let q = Quotas {
            per_org: 1000,
            per_env: None,
        };
        for i in 0..25 {
            s.create(
                Version::V1,
                format!("n{i}"),
                "AWS".into(),
                "env-1".into(),
                Some(aws(&format!("arn:aws:iam::123456789012:role/r{i}"))),
                q,
            )
            .unwrap();
        }
        let f = Filter {
            environment: "env-1".into(),
            ..Default::default()
        };
        let p1 = s.page(&f, 10, Cursor::After(0));
        assert_eq!(p1.items.len(), 10);
        assert!(p1.prev.is_none());
        // Delete an item already seen: the next page must not skip one.
        let seen = p1.items[3].id.clone();
        s.remove(&seen);
        let p2 = s.page(&f, 10, p1.next.unwrap());
        assert_eq!(p2.items[0].seq, p1.items[9].seq + 1);
        let back = s.page(&f, 10, p2.prev.unwrap());
        assert_eq!(back.items.last().unwrap().seq, p1.items[9].seq);
    }

    #[test]
    fn role_arn_unique_per_environment_only() {
        let mut s = Store::default();
        let q = Quotas::default();
        let arn = "arn:aws:iam::123456789012:role/x";
        s.create(
            Version::V1,
            "a".into(),
            "AWS".into(),
            "env-1".into(),
            Some(aws(arn)),
            q,
        )
        .unwrap();
        let e = s
            .create(
                Version::V1,
                "b".into(),
                "AWS".into(),
                "env-1".into(),
                Some(aws(arn)),
                q,
            )
            .unwrap_err();
        assert_eq!(e.code, "resource_already_exists");
        s.create(
            Version::V1,
            "c".into(),
            "AWS".into(),
            "env-2".into(),
            Some(aws(arn)),
            q,
        )
        .unwrap();
    }
}
