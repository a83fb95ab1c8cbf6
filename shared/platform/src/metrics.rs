//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per
//! measurement, which CloudWatch Logs turns into metrics. No client to build at init and
//! no API call on the request path; the log line is the metric.
//!
//! Written on Lambda (where `AWS_LAMBDA_FUNCTION_NAME` is set) unless `CELERIAC_METRICS=off`,
//! and elsewhere only with `CELERIAC_METRICS=emf`: locally the structured log already says
//! the same. The namespace is `CELERIAC_METRICS_NAMESPACE` (the template sets the stack's
//! name), `celeriac` by default. Every line carries the `Service` dimension (the function).

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// What a value measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration.
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Where metrics go, read once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// CloudWatch namespace.
    pub namespace: String,
    /// The `Service` dimension: the function's name.
    pub service: String,
}

impl MetricsSettings {
    /// The settings `var` describes, or `None` when metrics are off.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let function = var("AWS_LAMBDA_FUNCTION_NAME");
        let on = match var("CELERIAC_METRICS").as_deref() {
            Some("off") => false,
            Some("emf") => true,
            _ => function.is_some(),
        };
        on.then(|| Self {
            namespace: var("CELERIAC_METRICS_NAMESPACE").unwrap_or_else(|| "celeriac".to_owned()),
            service: function.unwrap_or_else(|| "celeriac".to_owned()),
        })
    }
}

static SETTINGS: OnceLock<Option<MetricsSettings>> = OnceLock::new();

/// Reads the settings from the process environment (the telemetry setup calls this once).
pub fn init() {
    SETTINGS.get_or_init(|| {
        MetricsSettings::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    });
}

/// Writes one measurement: `values` under `dimensions` (plus `Service`). Does nothing when
/// metrics are off or [`init`] has not run.
pub fn emit(dimensions: &[(&str, &str)], values: &[(&str, f64, Unit)]) {
    let Some(Some(settings)) = SETTINGS.get() else {
        return;
    };
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    let mut line = document(settings, dimensions, values, timestamp_ms).to_string();
    line.push('\n');
    // One write of the whole line: stdout's lock keeps it from interleaving with others.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// The EMF document of one measurement.
pub fn document(
    settings: &MetricsSettings,
    dimensions: &[(&str, &str)],
    values: &[(&str, f64, Unit)],
    timestamp_ms: i64,
) -> Value {
    let mut root = Map::new();
    let mut names = vec![Value::from("Service")];
    root.insert("Service".to_owned(), Value::from(settings.service.as_str()));
    for (name, value) in dimensions {
        names.push(Value::from(*name));
        root.insert((*name).to_owned(), Value::from(*value));
    }
    let metrics: Vec<Value> = values
        .iter()
        .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.name()}))
        .collect();
    for (name, value, _) in values {
        root.insert((*name).to_owned(), json!(value));
    }
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": settings.namespace,
                "Dimensions": [names],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn on_by_default_on_lambda_only() {
        assert_eq!(MetricsSettings::from_vars(vars(&[])), None);
        let lambda = MetricsSettings::from_vars(vars(&[("AWS_LAMBDA_FUNCTION_NAME", "chat")]));
        assert_eq!(
            lambda,
            Some(MetricsSettings {
                namespace: "celeriac".to_owned(),
                service: "chat".to_owned()
            })
        );
        let off = vars(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "chat"),
            ("CELERIAC_METRICS", "off"),
        ]);
        assert_eq!(MetricsSettings::from_vars(off), None);
        let local = vars(&[
            ("CELERIAC_METRICS", "emf"),
            ("CELERIAC_METRICS_NAMESPACE", "shop"),
        ]);
        assert_eq!(
            MetricsSettings::from_vars(local).map(|s| s.namespace),
            Some("shop".to_owned())
        );
    }

    #[test]
    fn a_measurement_is_an_emf_document() {
        let settings = MetricsSettings {
            namespace: "prod-stack".to_owned(),
            service: "process_conversation_ai".to_owned(),
        };
        let doc = document(
            &settings,
            &[("Model", "haiku"), ("Operation", "analysis")],
            &[
                ("InputTokens", 812.0, Unit::Count),
                ("Latency", 930.5, Unit::Milliseconds),
            ],
            1_700_000_000_000,
        );
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(directive["Namespace"], "prod-stack");
        assert_eq!(
            directive["Dimensions"],
            json!([["Service", "Model", "Operation"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "InputTokens", "Unit": "Count"},
                {"Name": "Latency", "Unit": "Milliseconds"}
            ])
        );
        // Every dimension and metric named in the directive has its value at the top level.
        assert_eq!(doc["Service"], "process_conversation_ai");
        assert_eq!(doc["Model"], "haiku");
        assert_eq!(doc["InputTokens"], 812.0);
        assert_eq!(doc["Latency"], 930.5);
    }
}
