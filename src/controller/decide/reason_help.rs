//! What each reason means and what to do about it: the text of `docs/reference.md` (generated
//! from this by `tests/docs.rs`), kept beside the reasons but out of their file.

use super::reasons::Reason;

impl Reason {
    /// Where the reason appears and what it means, with what to do: the reference
    /// (`docs/reference.md`, generated from this and held to it by a test).
    pub fn help(self) -> (&'static str, &'static str) {
        use Reason::*;
        match self {
            Synced => (
                "Ready=True",
                "The integration exists and matches the spec; its values are in the status. Make (or let `spec.trust` make) the cloud-side grant.",
            ),
            Reconciling => ("Ready=False, Reconciling=True", "Work under way. Wait."),
            Creating => (
                "Ready=False, Reconciling=True",
                "The integration is being created (the intent is recorded first, so a crash never makes two). Wait.",
            ),
            Configuring => (
                "Ready=False, Reconciling=True",
                "A `pim/v2` DRAFT is getting its config. Wait.",
            ),
            Recreating => (
                "Ready=False, Reconciling=True; event",
                "`updatePolicy: Recreate`: the integration was deleted because an immutable field changed; a new one is being created, with new values to trust.",
            ),
            RecreateBlocked => (
                "Ready=False, Reconciling=True; event",
                "A recreate cannot delete the integration: connectors (in the message and `status.usages`) use it. Delete or reconfigure them; retried with backoff.",
            ),
            Deleting => (
                "Ready=False, Reconciling=True",
                "The resource is being deleted and the integration with it; a transient error is being retried.",
            ),
            DeletionBlocked => (
                "Ready=False, Reconciling=True; event",
                "Connectors (in the message and `status.usages`) use the integration, so it cannot be deleted. Delete or reconfigure them; deletion is retried with backoff and finishes by itself.",
            ),
            DeletionFailed => (
                "Ready=False, Reconciling=True; event",
                "The API refused the deletion for another reason (in the message); retried with backoff.",
            ),
            RateLimited => (
                "Reconciling=True",
                "The API answered 429; retried after its `Retry-After` (at most 300 s). A Ready resource stays Ready.",
            ),
            ApiTimeout => (
                "Reconciling=True; Validated=Unknown",
                "An API call timed out; retried with backoff. Nothing to do unless it lasts (network egress, Confluent's status page).",
            ),
            ApiUnavailable => (
                "Reconciling=True; Validated=Unknown",
                "The API answered 5xx or could not be reached; retried with backoff.",
            ),
            Unauthenticated => (
                "Stalled=True",
                "The API key or secret is wrong (401). Fix the Secret; picked up at the next look (30 s doubling to the resync period) or at once on any change to the resource.",
            ),
            Forbidden => (
                "Stalled=True",
                "The API key may not do this (403): it needs EnvironmentAdmin or OrganizationAdmin on the environment.",
            ),
            QuotaExceeded => (
                "Stalled=True",
                "The organization's (100) or environment's quota of integrations is reached. Delete unused ones, or ask Confluent for more.",
            ),
            Rejected => (
                "Stalled=True",
                "The API rejected the request as invalid; the message names the field. Fix the spec.",
            ),
            Conflict => (
                "Stalled=True",
                "The API answered 409 for a reason the operator cannot resolve; the message has its detail.",
            ),
            NotFound => (
                "Stalled=True",
                "The API answered 404 for the environment or the integration; check `spec.environment` and the key's access to it.",
            ),
            ApiError => (
                "Stalled=True",
                "Another API error a human must look at; the message has the status and detail.",
            ),
            UnexpectedResponse => (
                "Stalled=True",
                "The API answered three times in a shape the operator cannot read (a loop of pages, a body too large, not JSON); the message has an excerpt. Check for a proxy in the way or an API change; it heals once the answers are readable.",
            ),
            WriteRejected => (
                "Stalled=True",
                "The Kubernetes API server rejected one of the operator's writes as invalid (422); the message has its words. Usually a CRD older than the operator: upgrade the CRD.",
            ),
            NoCredentials => (
                "Stalled=True",
                "No `credentialsRef`, and the operator has no default credentials. Set `credentialsRef`, or give the operator default credentials.",
            ),
            CredentialsNotFound => (
                "Stalled=True",
                "The Secret of `credentialsRef`, or one of its keys, is missing. Create it or fix `credentialsRef`; picked up at the next look (30 s doubling to the resync period) or at once on any change to the resource.",
            ),
            CredentialsNotAllowed => (
                "Stalled=True",
                "No `credentialsRef`, and the operator's default credentials are not granted to this namespace for this environment. Set `credentialsRef`, or ask the platform team to annotate the Namespace (the message has the command).",
            ),
            InvalidSpec => (
                "Stalled=True",
                "The spec is inconsistent (seen only where the API server does not enforce the CRD's rules). Fix it as the message says.",
            ),
            AlreadyExists => (
                "Stalled=True",
                "Another integration already uses this role (AWS) or this display name (GCP, Azure) in the environment, and this resource did not create it. Adopt it with `spec.integrationId`, or use another role or `displayName`.",
            ),
            AlreadyManaged => (
                "Stalled=True",
                "Another `ProviderIntegration` (named in the message) owns this integration, or asked first for its key. Delete one of the two, or change this one's key. Deleting this one deletes nothing in Confluent Cloud.",
            ),
            ImmutableFieldChanged => (
                "Stalled=True",
                "An immutable field (`environment`, `displayName`, `provider`, the provider block) changed. Revert it, or set `updatePolicy: Recreate`.",
            ),
            AdoptionTargetNotFound => (
                "Stalled=True",
                "`spec.integrationId` names no integration in the environment. Fix the id or the environment.",
            ),
            AdoptedMismatch => (
                "Stalled=True",
                "The integration named by `spec.integrationId` does not match the spec in the fields named. Make the spec match it.",
            ),
            IntegrationGone => (
                "Stalled=True",
                "The adopted or observed integration is not there any more; the resource keeps its last values and waits (it never creates in its place). Recreate it (through its owner), or point `integrationId` at the right one.",
            ),
            IntegrationIdChanged => (
                "Stalled=True",
                "`spec.integrationId` changed; an integration cannot be swapped in place. Restore it, or delete and re-create the resource.",
            ),
            AmbiguousIntegration => (
                "Stalled=True; event",
                "Several GCP or Azure integrations share this display name, so an interrupted create cannot tell its own. Set `spec.integrationId` to the right one and delete the others.",
            ),
            OutputsConflict => (
                "Stalled=True",
                "The `writeOutputsTo` ConfigMap exists and is not this resource's. Delete it or pick another name; the integration and its status are fine.",
            ),
            EnvironmentUnreachable => (
                "Stalled=True",
                "Deleting: the environment answers 403 (or 404 when listed): it was deleted with its integrations, or the key lost its grant on it. If it is gone, set `deletionPolicy: Orphan` (the message has the command); otherwise grant the key EnvironmentAdmin.",
            ),
            TrustKindNotInstalled => (
                "Stalled=True, Trusted=False",
                "The cloud operator's CRD that `spec.trust.targetRef` names is not installed. Install that operator (the message names it), or remove `spec.trust`.",
            ),
            TrustForbidden => (
                "Stalled=True, Trusted=False",
                "The operator may not read or write that kind. Turn the kind on in the chart (`trust.<kind>`, named in the message), or grant it by RBAC.",
            ),
            TrustFieldOwned => (
                "Stalled=True, Trusted=False",
                "The trust field is applied by another field manager (server-side apply: Argo CD, Flux), whose next apply would undo the operator's write; the message names it. Stop applying that field, or give the integration an object of its own.",
            ),
            TrustTargetNotOwned => (
                "Stalled=True, Trusted=False",
                "`mode: Own`, and an object of that name exists that this resource did not create. Use `mode: Share` to add to it, or name another object.",
            ),
            TrustTargetNotFound => (
                "Stalled=True, Trusted=False",
                "`mode: Share`, and the team's object does not exist. Create it, or use `mode: Own`.",
            ),
            TrustTargetMismatch => (
                "Stalled=True, Trusted=False",
                "`mode: Share`, and the object is for another identity (a `Principal` of another application). Name the object of Confluent's application.",
            ),
            TrustNotGranted => (
                "Stalled=True, Trusted=False",
                "The trust object is cluster-scoped, and this Namespace is not granted it. A platform admin annotates the Namespace (`pim.confluent.cloud/cluster-trust`; the message has the command).",
            ),
            TrustInvalid => (
                "Stalled=True, Trusted=False",
                "The trust cannot be written: the role ARN names no role, the team's document is not a JSON policy, or the API server refused the object (its words are in the message).",
            ),
            TrustSynced => (
                "Trusted=True",
                "The cloud operator reports the trust object in place (ACK `ACK.ResourceSynced`, Crossplane `Ready` and `Synced`, Config Connector `Ready`) for the version the operator wrote. Validation follows.",
            ),
            AwaitingCloudOperator => (
                "Trusted=Unknown",
                "The trust object is written; its cloud operator has not reported on this version yet. Nothing to do, unless the cloud operator is not running.",
            ),
            TrustFailing => (
                "Trusted=False",
                "The cloud operator reports that it could not apply the trust object; the message has its words (e.g. AWS AccessDenied for its own credentials).",
            ),
            AwaitingTrust => (
                "Validated=Unknown",
                "Validation waits for the trust to be in place (`Trusted=True`): a check before would fail for want of it.",
            ),
            Validated => (
                "Validated=True; event",
                "Confluent can use the identity: the cloud-side grant works. Checked again at every resync.",
            ),
            Validating => (
                "Validated=Unknown",
                "The validate call failed transiently; retried with backoff.",
            ),
            ValidationFailed => (
                "Validated=False; event",
                "Confluent cannot use the identity yet; the message has the API's detail and the grant to make. `Ready` is unaffected; re-checked with backoff (30 s doubling to the resync period).",
            ),
            Paused => (
                "Paused=True; event",
                "`pim.confluent.cloud/paused: \"true\"` on the resource or its Namespace (the message says which): nothing is done, `Ready` keeps its last value, a deletion waits. Remove the annotation, or set `deletionPolicy: Orphan` to let a deletion go and keep the integration.",
            ),
            PauseUnknown => (
                "Paused=Unknown; event",
                "Deleting, and the operator cannot read Namespaces now (starting, or the API server fails), so a pause cannot be ruled out: the deletion waits and goes on by itself. If it lasts, check the operator's log and its RBAC for Namespaces.",
            ),
            Resumed => ("event", "The pause was lifted; work resumes."),
            Created => (
                "event",
                "The integration was created (said only after an interrupted attempt; a routine create is said by `Ready`).",
            ),
            Adopted => (
                "event",
                "The integration named by `spec.integrationId` was adopted.",
            ),
            Recreated => (
                "event",
                "The integration was deleted outside Kubernetes and created again, with new values to trust.",
            ),
            Orphaned => (
                "event",
                "The resource went and left the integration (`deletionPolicy: Orphan`, or another resource manages it).",
            ),
            Deleted => (
                "event",
                "The integration was deleted once no connector used it any more (after `DeletionBlocked`).",
            ),
            TrustWritten => (
                "event",
                "The operator wrote its trust to the object `spec.trust` names.",
            ),
            TrustRemoved => (
                "event",
                "The operator took its trust out of an object (the resource was deleted, or `spec.trust` moved).",
            ),
        }
    }
}
