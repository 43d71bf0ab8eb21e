//! The `ProviderIntegration` custom resource: spec, status, schema rules and printer columns,
//! plus the helpers that build kstatus conditions. No HTTP, no reconcile loop.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "pim.confluent.cloud";
pub const FINALIZER: &str = "pim.confluent.cloud/cleanup";

/// A Confluent Cloud provider integration: lets Confluent's managed connectors assume an identity
/// in your cloud account. The operator creates it and writes the values your cloud-side trust
/// configuration needs to `.status`. The annotation `pim.confluent.cloud/paused: "true"` on the
/// resource or its namespace pauses all work on it (condition `Paused`) until it is removed.
// Each printcolumn repeats `type_`; clippy mistakes that for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pim.confluent.cloud",
    version = "v1alpha1",
    kind = "ProviderIntegration",
    namespaced,
    status = "ProviderIntegrationStatus",
    shortname = "cpi",
    category = "confluent",
    doc = "A Confluent Cloud provider integration, managed by provider-integration-operator.",
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(
        name = "External ID",
        type_ = "string",
        json_path = ".status.externalId"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Validated",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Validated\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.provider != 'AWS' || has(self.aws)").message("provider AWS requires spec.aws.customerIamRoleArn").reason(kube::core::Reason::FieldValueRequired).field_path(".aws"))]
#[x_kube(validation = Rule::new("self.provider != 'GCP' || has(self.gcp)").message("provider GCP requires spec.gcp.customerGoogleServiceAccount").reason(kube::core::Reason::FieldValueRequired).field_path(".gcp"))]
#[x_kube(validation = Rule::new("self.provider != 'Azure' || has(self.azure)").message("provider Azure requires spec.azure.customerAzureTenantId").reason(kube::core::Reason::FieldValueRequired).field_path(".azure"))]
#[x_kube(validation = Rule::new("!has(self.managementPolicy) || self.managementPolicy != 'Observe' || has(self.integrationId) || self.provider == 'AWS' || has(self.displayName)").message("managementPolicy Observe needs the integration to observe: spec.integrationId, or spec.displayName for GCP and Azure (AWS: the role ARN)").reason(kube::core::Reason::FieldValueRequired).field_path(".managementPolicy"))]
#[x_kube(validation = Rule::new("!has(oldSelf.managementPolicy) || oldSelf.managementPolicy != 'Observe' || (has(self.managementPolicy) && self.managementPolicy == 'Observe')").message("an observer stays one: managementPolicy Observe cannot become Manage (that would make it the owner, and deleting it would delete an integration made elsewhere); to take the integration over, create a resource with spec.integrationId (adopted integrations are kept on delete unless deletionPolicy says Delete), then delete the observer").reason(kube::core::Reason::FieldValueForbidden).field_path(".managementPolicy"))]
#[x_kube(validation = Rule::new("(has(self.aws) ? 1 : 0) + (has(self.gcp) ? 1 : 0) + (has(self.azure) ? 1 : 0) <= 1").message("set only the block of spec.provider (aws, gcp or azure)").reason(kube::core::Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!has(self.trust) || ((!has(self.managementPolicy) || self.managementPolicy != 'Observe') && !has(self.integrationId))").message("trust is written only for an integration this resource creates: an adopted (integrationId) or observed integration keeps the trust it has").reason(kube::core::Reason::FieldValueForbidden).field_path(".trust"))]
#[x_kube(validation = Rule::new("!has(self.trust) || (self.provider == 'AWS' ? self.trust.targetRef.kind == 'Role' : self.provider == 'GCP' ? self.trust.targetRef.kind == 'IAMPolicyMember' : self.trust.targetRef.kind == 'Principal')").message("trust.targetRef must carry this provider's trust: a Role (ACK or Crossplane) for AWS, an IAMPolicyMember (Config Connector) for GCP, a Principal (Crossplane Azure AD) for Azure").reason(kube::core::Reason::FieldValueInvalid).field_path(".trust.targetRef.kind"))]
#[serde(rename_all = "camelCase")]
pub struct ProviderIntegrationSpec {
    /// The Confluent Cloud environment that owns the integration, e.g. `env-a1b2c3`.
    #[schemars(pattern(r"^env-[a-z0-9]+$"), length(max = 255))]
    pub environment: String,

    /// The integration's name in Confluent Cloud (at most 60 characters). Defaults to the
    /// resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 60))]
    pub display_name: Option<String>,

    /// The cloud whose identity Confluent assumes. Selects the matching block: `aws`, `gcp` or
    /// `azure`. AWS integrations are created through `pim/v1`; GCP and Azure through `pim/v2`.
    pub provider: CloudProvider,

    /// AWS settings; required when `provider` is `AWS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSpec>,

    /// Google Cloud settings; required when `provider` is `GCP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpSpec>,

    /// Azure settings; required when `provider` is `Azure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,

    /// The Secret (in this namespace) holding the Confluent Cloud API key and secret. When
    /// omitted, the operator's default credentials are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<CredentialsRef>,

    /// What happens to the integration when this resource is deleted: `Delete` deletes it in
    /// Confluent Cloud; `Orphan` leaves it. When unset: `Delete` for an integration this resource
    /// created, `Orphan` for one it adopted (`integrationId`), so that deleting a resource never
    /// deletes someone else's integration unless the spec says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// The API cannot update an integration. `Manual` (default): a change to `environment`,
    /// `displayName`, `provider` or the provider block stalls the resource until it is reverted.
    /// `Recreate`: the operator deletes the integration and creates a new one, which gets a new
    /// external id that your trust policy must then use.
    #[serde(default)]
    pub update_policy: UpdatePolicy,

    /// Adopt this existing integration (e.g. `dlz-f3a90de`) instead of creating one. It must
    /// match the rest of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), pattern(r"^[a-z]+-[a-z0-9]+$"))]
    pub integration_id: Option<String>,

    /// `Manage` (default): this resource owns the integration: creates, adopts, validates,
    /// recreates and deletes it. `Observe`: it only mirrors an existing integration, found by
    /// `integrationId` or by its key (the role ARN for AWS, `displayName` for GCP and Azure),
    /// into the status and `writeOutputsTo`, and never writes to Confluent Cloud; deleting it
    /// deletes nothing. Any number of resources may observe an integration another one manages.
    /// `Manage` may become `Observe` (the resource lets the integration go, keeping it), never
    /// the other way: to take over an integration, adopt it with `integrationId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,

    /// The cloud side of the trust, written by the operator into an object of the cloud operator
    /// the team runs (ACK, Crossplane, Config Connector), so that applying this resource ends
    /// with a working integration. Opt-in; see `docs/usage.md`, "Closing the loop".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustSpec>,

    /// A ConfigMap in this namespace that the operator creates and keeps filled with the
    /// integration's ids and the cloud-side grant to make (its keys are in `docs/usage.md`). It is
    /// owned by this resource, so it is deleted with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_outputs_to: Option<OutputsRef>,
}

/// The object that carries the cloud side of the trust, and how the operator writes to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'Share' || self.targetRef.kind != 'IAMPolicyMember'").message("an IAMPolicyMember binds exactly one member, which Config Connector makes required and immutable, so it cannot be shared: use mode Own (one IAMPolicyMember per integration; any number may bind the same service account)").reason(kube::core::Reason::FieldValueForbidden).field_path(".mode"))]
pub struct TrustSpec {
    /// The object, in this namespace (a cluster-scoped kind only where the Namespace's
    /// `pim.confluent.cloud/cluster-trust` annotation grants it).
    pub target_ref: TrustTargetRef,
    /// `Own` (default): the operator creates the object, with an owner reference to this
    /// resource, keeps it in sync, and deletes it with the integration (unless
    /// `deletionPolicy: Orphan`). `Share`: the object is the team's; the operator adds only its
    /// own part (for a Role, one trust statement per integration, marked with its id; for a
    /// Principal, the client id when unset and an annotation naming the integration), and
    /// removes only that part.
    #[serde(default)]
    pub mode: TrustMode,
}

/// A cloud operator's object, by `apiVersion`, `kind` and `name`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.kind == 'Role' && self.apiVersion in ['iam.services.k8s.aws/v1alpha1', 'iam.aws.m.upbound.io/v1beta1', 'iam.aws.upbound.io/v1beta1']) || (self.kind == 'IAMPolicyMember' && self.apiVersion == 'iam.cnrm.cloud.google.com/v1beta1') || (self.kind == 'Principal' && self.apiVersion in ['serviceprincipals.azuread.m.upbound.io/v1beta1', 'serviceprincipals.azuread.upbound.io/v1beta2'])").message("supported: Role of iam.services.k8s.aws/v1alpha1 (ACK), iam.aws.m.upbound.io/v1beta1 or iam.aws.upbound.io/v1beta1 (Crossplane); IAMPolicyMember of iam.cnrm.cloud.google.com/v1beta1 (Config Connector); Principal of serviceprincipals.azuread.m.upbound.io/v1beta1 or serviceprincipals.azuread.upbound.io/v1beta2 (Crossplane)").reason(kube::core::Reason::FieldValueInvalid))]
pub struct TrustTargetRef {
    /// The cloud operator's API, e.g. `iam.services.k8s.aws/v1alpha1` (ACK).
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// `Role` (AWS), `IAMPolicyMember` (GCP) or `Principal` (Azure).
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// The object's name (for `Own`, the name the operator creates it with).
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TrustMode {
    #[default]
    Own,
    Share,
}

/// The trust the operator last wrote, so that a changed or removed `spec.trust`, a recreate and
/// a deletion undo exactly that.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustStatus {
    /// The object's API.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The object's name (in this namespace, unless its kind is cluster-scoped).
    pub name: String,
    /// How it was written: `Own` or `Share`.
    pub mode: TrustMode,
    /// The integration whose trust was written (its statement, binding or mark).
    pub integration_id: String,
    /// When the operator last changed the object, to tell a cloud operator's report about it
    /// from one about an older version (for kinds whose conditions carry no generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<String>,
}

/// Where to write the outputs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputsRef {
    /// Name of the ConfigMap (in the resource's namespace).
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// Cloud providers: AWS (through `pim/v1`), GCP and Azure (through `pim/v2`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CloudProvider {
    #[serde(rename = "AWS")]
    Aws,
    #[serde(rename = "GCP")]
    Gcp,
    #[serde(rename = "Azure")]
    Azure,
}

impl CloudProvider {
    /// The provider's name as Confluent's own clients send it: `AWS` to `pim/v1`, lower case
    /// to `pim/v2` (the Terraform provider sends, and the v2 answers carry, `gcp` and `azure`).
    /// Names read back are compared ignoring case.
    pub fn api_name(self) -> &'static str {
        match self {
            CloudProvider::Aws => "AWS",
            CloudProvider::Gcp => "gcp",
            CloudProvider::Azure => "azure",
        }
    }

    /// The provider named `name` in the Confluent API (case-insensitive).
    pub fn from_api_name(name: &str) -> Option<Self> {
        [CloudProvider::Aws, CloudProvider::Gcp, CloudProvider::Azure]
            .into_iter()
            .find(|p| p.api_name().eq_ignore_ascii_case(name))
    }

    /// The name used in this resource's spec.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudProvider::Aws => "AWS",
            CloudProvider::Gcp => "GCP",
            CloudProvider::Azure => "Azure",
        }
    }
}

/// AWS settings of an integration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSpec {
    /// The ARN of your IAM role that Confluent assumes, e.g.
    /// `arn:aws:iam::123456789012:role/confluent-access`.
    #[schemars(
        length(min = 20, max = 2048),
        pattern(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
    )]
    pub customer_iam_role_arn: String,

    /// Also ask Confluent to validate the role (the `pim/v2` validate call) and report the
    /// result in the `Validated` condition. Off by default: Confluent's CLI and Terraform only
    /// validate GCP and Azure integrations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate: bool,
}

/// Google Cloud settings of an integration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSpec {
    /// Your Google service account that Confluent impersonates, e.g.
    /// `connectors@my-project.iam.gserviceaccount.com`.
    #[schemars(
        length(min = 6, max = 254),
        pattern(r"^[a-z0-9][a-z0-9-]{4,61}[a-z0-9]@[a-z0-9][a-z0-9.:-]*\.gserviceaccount\.com$")
    )]
    pub customer_google_service_account: String,
}

/// Azure settings of an integration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    /// Your Microsoft Entra tenant id (a UUID) in which Confluent's multi-tenant app acts.
    #[schemars(pattern(
        r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub customer_azure_tenant_id: String,
}

/// Where to find the Confluent Cloud API key and secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    /// Name of a Secret in the resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The Secret key holding the API key.
    #[serde(default = "default_api_key_field")]
    pub api_key_field: String,
    /// The Secret key holding the API secret.
    #[serde(default = "default_api_secret_field")]
    pub api_secret_field: String,
}

fn default_api_key_field() -> String {
    "apiKey".into()
}
fn default_api_secret_field() -> String {
    "apiSecret".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ManagementPolicy {
    #[default]
    Manage,
    Observe,
}

impl ProviderIntegrationSpec {
    /// `managementPolicy: Observe`: mirror an integration, never write to Confluent Cloud.
    pub fn observes(&self) -> bool {
        self.management_policy == Some(ManagementPolicy::Observe)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum UpdatePolicy {
    #[default]
    Manual,
    Recreate,
}

/// Observed state. The values to paste into your cloud's trust configuration are here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderIntegrationStatus {
    /// The integration's id in Confluent Cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The environment the integration lives in (it differs from the spec while a change of
    /// environment is pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// AWS: the `sts:ExternalId` your role's trust policy must require.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// AWS: Confluent's IAM role that your role must trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_role_arn: Option<String>,
    /// GCP: Confluent's Google service account, which needs the Service Account Token Creator
    /// role on your service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_service_account: Option<String>,
    /// Azure: Confluent's multi-tenant app, to which your tenant must grant admin consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confluent_multi_tenant_app_id: Option<String>,
    /// The provider of the integration in `id` (it differs from the spec while a change of
    /// provider is pending). Absent on resources created before GCP and Azure support: AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<CloudProvider>,
    /// `pim/v2` integrations: `DRAFT` (no customer configuration yet), `CREATED` (configured) or
    /// `ACTIVE` (in use by Confluent resources). Validation is the `Validated` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The ConfigMap the outputs were last written to, so a renamed or removed
    /// `spec.writeOutputsTo` does not leave it behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs_config_map: Option<String>,
    /// The trust object the operator last wrote to (`spec.trust`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustStatus>,
    /// Workloads (connector CRNs) using the integration, the first 100; it cannot be deleted while
    /// any exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    /// A create that was started but whose result is not recorded yet. It lets the operator find
    /// the integration again after a crash instead of creating a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<PendingCreate>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus); `Validated`: whether Confluent can use
    /// your cloud-side setup (GCP, Azure, and AWS with `aws.validate` or `trust`); `Trusted`:
    /// whether the trust object is in place (`trust`); `Paused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The identity of an integration being created, to find it again after a crash: for AWS the
/// role ARN (which the API keeps unique per environment), for GCP and Azure the display name and
/// provider (a DRAFT has no config yet).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCreate {
    /// The environment the integration is being created in.
    pub environment: String,
    /// Its display name (for GCP and Azure, with the provider, what finds a DRAFT again).
    pub display_name: String,
    /// Absent means AWS (intents recorded before GCP and Azure support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<CloudProvider>,
    /// AWS: the role ARN, which the API keeps unique per environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_iam_role_arn: Option<String>,
}

impl PendingCreate {
    pub fn provider(&self) -> CloudProvider {
        self.provider.unwrap_or(CloudProvider::Aws)
    }
}

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const VALIDATED: &str = "Validated";
/// Whether the trust object (`spec.trust`) is in place in the cloud, as its own operator reports.
pub const TRUSTED: &str = "Trusted";
/// Present while work on the resource is paused (`PAUSED_ANNOTATION`, on it or its Namespace).
pub const PAUSED: &str = "Paused";

/// One condition's wanted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondState {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl CondState {
    pub fn new(status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Builds the three kstatus conditions, keeping `lastTransitionTime` of those whose status did
/// not change, so a status write is a no-op when nothing changed. Other conditions (`Validated`)
/// are kept as they are.
pub fn conditions(
    previous: &[Condition],
    generation: Option<i64>,
    ready: CondState,
    reconciling: CondState,
    stalled: CondState,
    now: &Time,
) -> Vec<Condition> {
    [
        (READY, ready),
        (RECONCILING, reconciling),
        (STALLED, stalled),
    ]
    .into_iter()
    .map(|(ty, s)| {
        let status = if s.status { "True" } else { "False" }.to_string();
        let last = previous
            .iter()
            .find(|c| c.type_ == ty && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: ty.to_string(),
            status,
            reason: s.reason,
            // The API caps messages at 32 KiB; ours stay far below, but be safe.
            message: s.message.chars().take(4096).collect(),
            observed_generation: generation,
            last_transition_time: last,
        }
    })
    .chain(
        previous
            .iter()
            .filter(|c| ![READY, RECONCILING, STALLED].contains(&c.type_.as_str()))
            .cloned(),
    )
    .collect()
}

/// Sets one condition (`status` is `True`, `False` or `Unknown`), keeping the others and the
/// `lastTransitionTime` when the status did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let last = conditions
        .iter()
        .find(|c| c.type_ == ty && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    let c = Condition {
        type_: ty.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.chars().take(4096).collect(),
        observed_generation: generation,
        last_transition_time: last,
    };
    match conditions.iter_mut().find(|c| c.type_ == ty) {
        Some(old) => *old = c,
        None => conditions.push(c),
    }
}

/// The prefix of the annotations the operator reads or writes; the cache keeps no others.
pub const ANNOTATION_PREFIX: &str = "pim.confluent.cloud/";

/// `"true"` on a resource, or on its Namespace, stops all work on it until removed: no Confluent
/// call, no outputs or status change but the `Paused` condition, and deletion waits for it.
pub const PAUSED_ANNOTATION: &str = "pim.confluent.cloud/paused";

/// Whether an annotation map says paused.
pub fn says_paused(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The annotation that records the intent of a resource's first create. It is written in the same
/// metadata patch that adds the finalizer, so a create costs the API server two writes (that patch
/// and the status with the id), not three. Once an id is recorded it is ignored.
pub const INTENT_ANNOTATION: &str = "pim.confluent.cloud/pending-create";

impl ProviderIntegration {
    /// The recorded intent: the status's, else, while no id is recorded, the first create's
    /// (`INTENT_ANNOTATION`).
    pub fn recorded_intent(&self) -> Option<PendingCreate> {
        let status = self.status.as_ref();
        if let Some(p) = status.and_then(|s| s.pending_create.clone()) {
            return Some(p);
        }
        if status.and_then(|s| s.id.as_ref()).is_some() {
            return None;
        }
        self.metadata
            .annotations
            .as_ref()?
            .get(INTENT_ANNOTATION)
            .and_then(|v| serde_json::from_str(v).ok())
    }

    /// The status as decisions read it: with the recorded intent, wherever it was recorded.
    pub fn decided_status(&self) -> ProviderIntegrationStatus {
        let mut s = self.status.clone().unwrap_or_default();
        s.pending_create = self.recorded_intent();
        s
    }

    pub fn condition(&self, ty: &str) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == ty)
    }

    /// True when `Ready` is True for the current generation.
    pub fn is_ready(&self) -> bool {
        self.condition(READY).is_some_and(|c| {
            c.status == "True" && c.observed_generation == self.metadata.generation
        })
    }
}

/// The CRD as installed. The derived schema of an `Option` of an enum lists `null` among the
/// enum's values; `nullable: true` already says it, and kubectl's client-side validation rejects
/// a `null` member ("unknown object type nil"), so it is removed here, where every copy of the CRD
/// (`crds/`, the chart, `deploy/`, the e2e test) comes from.
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let derived = <ProviderIntegration as kube::CustomResourceExt>::crd();
    let mut v = serde_json::to_value(&derived).unwrap_or_default();
    drop_null_enum_members(&mut v);
    serde_json::from_value(v).unwrap_or(derived)
}

fn drop_null_enum_members(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            if let Some(serde_json::Value::Array(members)) = o.get_mut("enum") {
                members.retain(|m| !m.is_null());
            }
            o.values_mut().for_each(drop_null_enum_members);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_null_enum_members),
        _ => {}
    }
}

/// The CRD as YAML, as `provider-integration-operator crd` prints it and `crds/` stores it.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let crd = crd();
    Ok(format!("---\n{}", serde_saphyr::to_string(&crd)?))
}

pub fn print_yaml() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    print!("{}", crd_yaml()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enums(v: &serde_json::Value, at: &str, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(e) = o.get("enum") {
                    out.push((at.to_string(), e.clone()));
                }
                for (k, c) in o {
                    enums(c, &format!("{at}/{k}"), out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| enums(c, at, out)),
            _ => {}
        }
    }

    #[test]
    fn no_enum_of_the_crd_has_a_null_member() {
        let mut all = Vec::new();
        enums(&serde_json::to_value(crd()).unwrap(), "", &mut all);
        assert!(all.len() >= 4, "{all:?}");
        for (at, e) in &all {
            assert!(
                e.as_array()
                    .is_some_and(|m| !m.is_empty() && m.iter().all(|x| !x.is_null())),
                "{at}: {e}"
            );
        }
        // The derived schema does have them: the fix is needed, and nullable stays.
        let mut derived = Vec::new();
        enums(
            &serde_json::to_value(<ProviderIntegration as kube::CustomResourceExt>::crd()).unwrap(),
            "",
            &mut derived,
        );
        assert!(derived.iter().any(|(_, e)| {
            e.as_array()
                .is_some_and(|m| m.contains(&serde_json::Value::Null))
        }));
        assert!(crd_yaml().unwrap().contains("nullable: true"));
    }
}
