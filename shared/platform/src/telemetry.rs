//! The one tracing setup.
//!
//! On Lambda it follows the function's logging configuration: `AWS_LAMBDA_LOG_FORMAT=JSON`
//! gives one JSON object per line (what CloudWatch Logs Insights parses), and
//! `AWS_LAMBDA_LOG_LEVEL` sets the level. Locally it prints readable lines and honours
//! `RUST_LOG`. Fields are structured (`tracing` key-values), never formatted into messages.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// The log format and filter this process should use, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON or text.
    pub format: LogFormat,
    /// Target directives such as `info` or `debug,hyper=info` (no span or field filters:
    /// that would pull a regex engine into every bootstrap).
    pub filter: String,
    /// Colours, for a terminal.
    pub ansi: bool,
}

impl LogSettings {
    /// Reads `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`,
    /// `RUST_LOG` and `CELERIAC_LOG_FORMAT` through `var`; `info` unless they say otherwise.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        Self::from_vars_or(var, "info")
    }

    /// As [`LogSettings::from_vars`], with `default_level` when nothing sets a level.
    pub fn from_vars_or(var: impl Fn(&str) -> Option<String>, default_level: &str) -> Self {
        let on_lambda = var("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let format = match var("AWS_LAMBDA_LOG_FORMAT")
            .or_else(|| var("CELERIAC_LOG_FORMAT"))
            .map(|f| f.to_ascii_lowercase())
            .as_deref()
        {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        };
        // Lambda's levels are TRACE..FATAL; tracing has no FATAL, ERROR is the nearest.
        let lambda_level =
            var("AWS_LAMBDA_LOG_LEVEL").map(|l| match l.to_ascii_lowercase().as_str() {
                "fatal" => "error".to_owned(),
                other => other.to_owned(),
            });
        // Noisy dependencies stay at warn unless asked for explicitly through RUST_LOG.
        let quiet = "h2=warn,hyper=warn,hyper_util=warn,rustls=warn,aws_smithy_runtime=warn,aws_config=warn,sqlx=warn";
        let filter = var("RUST_LOG")
            .or_else(|| lambda_level.map(|l| format!("{l},{quiet}")))
            .unwrap_or_else(|| format!("{default_level},{quiet}"));
        Self {
            format,
            filter,
            ansi: !on_lambda
                && format == LogFormat::Text
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init() {
    init_with_default("info");
}

/// As [`init`], logging at `default_level` unless the environment sets a level (command
/// line tools whose output is their answer log only warnings by default).
pub fn init_with_default(default_level: &str) {
    crate::metrics::init();
    let settings = LogSettings::from_vars_or(
        |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        default_level,
    );
    let filter: Targets = settings
        .filter
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::level_filters::LevelFilter::INFO));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(settings.ansi)
        .with_span_events(FmtSpan::NONE);
    // A second init (several tests in one process) finds a subscriber set: that is fine.
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .finish()
            .with(filter)
            .try_init(),
        LogFormat::Text => builder.compact().finish().with(filter).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> LogSettings {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LogSettings::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn lambda_json_and_level_are_followed() {
        let s = settings(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "health"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ]);
        assert_eq!(s.format, LogFormat::Json);
        assert!(s.filter.starts_with("debug,"), "{}", s.filter);
        assert!(!s.ansi);
    }

    #[test]
    fn fatal_maps_to_error_and_rust_log_wins() {
        let s = settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]);
        assert!(s.filter.starts_with("error,"));
        let s = settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL"), ("RUST_LOG", "trace")]);
        assert_eq!(s.filter, "trace");
    }

    #[test]
    fn text_locally() {
        let s = settings(&[]);
        assert_eq!(s.format, LogFormat::Text);
        assert!(s.filter.starts_with("info,"));
    }
}
