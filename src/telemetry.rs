//! Logging setup: structured `tracing` output, JSON in clusters and text on a terminal.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// JSON when running in a Kubernetes pod, text otherwise.
    Auto,
}

/// Installs the global subscriber; `level` is an `EnvFilter` directive (`info`, `pio=debug`).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    // The reconcile span carries the resource's namespace and name.
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        // Colour belongs on a terminal only, never in files and pipes.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry
            .with(fmt::layer().with_target(false).with_ansi(ansi))
            .try_init()
    };
    // Already initialized (tests): keep the first one.
    let _ = result;
}
