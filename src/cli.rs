//! Command-line interface (clap).

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};

use crate::{emulator::EmulatorArgs, telemetry::LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "provider-integration-operator",
    version,
    about = "Manages Confluent Cloud provider integrations from Kubernetes"
)]
pub struct Cli {
    /// Log format: json, text, or auto (json inside a pod).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `info,pio=debug`.
    #[arg(long, global = true, default_value = "info", env = "LOG_LEVEL")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator.
    Run(RunArgs),
    /// Print the CustomResourceDefinition YAML.
    Crd,
    /// Print the RBAC rules the operator needs, as JSON.
    Rbac,
    /// Run the local Provider Integration API emulator.
    Emulator(EmulatorArgs),
}

/// Parses `300s`, `5m`, `1h30m` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("duration {s:?} must be positive"))
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// kubeconfig context to use (default: in-cluster config, or the current context).
    #[arg(long, env = "KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Watch only these namespaces (repeatable, or comma-separated; default: all namespaces).
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Run against an emulator of the Provider Integration API started in this process, in
    /// place of Confluent Cloud: nothing real is created. Its demo key is the default
    /// credentials, usable in every watched namespace. For trying the operator on a cluster
    /// without a Confluent account; never in production.
    #[arg(long, conflicts_with = "api_url")]
    pub emulator: bool,
    /// Base URL of the Provider Integration API.
    #[arg(
        long,
        default_value = "https://api.confluent.cloud",
        env = "PIM_API_URL"
    )]
    pub api_url: String,
    /// Timeout of one API request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub api_timeout: Duration,
    /// A ceiling on API requests per second per API key (0: none, the default). Below it, each
    /// key is paced by the API's own X-RateLimit-* headers, and a 429 pauses every request of its
    /// key until its Retry-After.
    #[arg(long, default_value_t = 0, env = "PIM_API_RATE_LIMIT")]
    pub api_rate_limit: u32,
    /// Default credentials for resources without credentialsRef: a Secret as NAMESPACE/NAME with
    /// keys apiKey and apiSecret.
    #[arg(
        long,
        env = "DEFAULT_CREDENTIALS_SECRET",
        value_name = "NAMESPACE/NAME"
    )]
    pub default_credentials_secret: Option<String>,
    /// Where the default credentials may be used: `annotated` (only in namespaces whose
    /// pim.confluent.cloud/default-credentials annotation lists the resource's environment, or
    /// `*`) or `any` (every watched namespace).
    #[arg(
        long,
        value_enum,
        default_value = "annotated",
        env = "DEFAULT_CREDENTIALS_SCOPE"
    )]
    pub default_credentials_scope: Scope,
    /// Default API key (used when no default Secret is given).
    #[arg(long, env = "CONFLUENT_CLOUD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Default API secret.
    #[arg(long, env = "CONFLUENT_CLOUD_API_SECRET", hide_env_values = true)]
    pub api_secret: Option<String>,
    /// The ceiling of resources reconciled, and of API calls in flight, at once. Below it, the
    /// number of calls in flight adapts: it grows while the API answers as fast as before and
    /// shrinks when it slows down or answers 429 or 5xx.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// How often Ready integrations are checked against Confluent Cloud (one LIST per
    /// environment).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resync: Duration,
    /// Address of the health (/healthz, /readyz) and metrics (/metrics) endpoint.
    #[arg(long, default_value = "0.0.0.0:8080", env = "METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Pod name, to tell replicas apart in events (set from the downward API).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Elect a leader on a Lease so several replicas can run; only the leader reconciles.
    #[arg(long, env = "LEADER_ELECTION")]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "provider-integration-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// How long a leader's claim lasts without renewal; a standby takes over after it.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long before expiry the leader renews its claim.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub lease_renew_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// `--default-credentials-scope`, as the command line spells it (the controller's
/// `DefaultCredentialsScope` knows nothing of flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Only in namespaces whose annotation grants them.
    #[default]
    Annotated,
    /// In every watched namespace.
    Any,
}

impl From<Scope> for crate::controller::DefaultCredentialsScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Annotated => Self::Annotated,
            Scope::Any => Self::Any,
        }
    }
}
