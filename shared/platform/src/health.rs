//! Health checks: each dependency reports ok, error (with the kind of failure) or not
//! configured.
//!
//! A [`Probe`] checks one component. `GET /api/health/` is public, so its traffic must not
//! decide how often the dependencies are probed: [`HealthCheck::report`] answers from each
//! component's last result while it is younger than the component's interval, and when it
//! is older one caller runs the probe while concurrent callers wait for that result
//! (single flight). A probe runs under the timeout, so a hanging dependency costs the
//! timeout once per interval and never more.
//!
//! The answer names a failure by its [`ErrorKind`] only; the adapter's own text (hosts,
//! ports, ARNs, account ids) goes to the log, at warn, once per probe run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

/// What kind of failure a component has: all a public caller learns about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No answer within the health timeout (or the adapter's own).
    Timeout,
    /// The connection was refused or the host could not be reached.
    Refused,
    /// Credentials or permissions were refused.
    Auth,
    /// The dependency is rate limiting or out of quota.
    Throttled,
    /// The configured resource (queue, model) does not exist.
    NotFound,
    /// Any other failure: the dependency answered with an error, or keeps failing.
    Unavailable,
}

impl ErrorKind {
    /// The kind an error message describes, for adapters whose errors reach the probe only
    /// as text (the key-value port's). Typed errors are classified where they are typed.
    pub fn from_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
        if has(&["timed out", "timeout", "deadline"]) {
            Self::Timeout
        } else if has(&["refused", "unreachable", "no route to host"]) {
            Self::Refused
        } else if has(&[
            "noauth",
            "wrongpass",
            "authentication",
            "password",
            "access denied",
            "accessdenied",
            "unauthorized",
            "not authorized",
            "security token",
        ]) {
            Self::Auth
        } else if has(&["throttl", "too many requests", "rate exceeded", "quota"]) {
            Self::Throttled
        } else {
            Self::Unavailable
        }
    }

    /// The kind of an AWS service error by its error code (`ThrottlingException`,
    /// `AccessDeniedException`, ...), for the SQS and Bedrock probes.
    pub fn from_aws_code(code: &str) -> Self {
        match code {
            c if c.contains("Throttl")
                || c.contains("TooManyRequests")
                || c.contains("RequestLimitExceeded")
                || c.contains("ServiceQuotaExceeded") =>
            {
                Self::Throttled
            }
            c if c.contains("AccessDenied")
                || c.contains("UnrecognizedClient")
                || c.contains("InvalidClientTokenId")
                || c.contains("ExpiredToken")
                || c.contains("SignatureDoesNotMatch")
                || c.contains("InvalidSignature")
                || c.contains("MissingAuthenticationToken") =>
            {
                Self::Auth
            }
            c if c.contains("NotFound") || c.contains("NonExistentQueue") => Self::NotFound,
            c if c.contains("Timeout") => Self::Timeout,
            _ => Self::Unavailable,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Auth => "auth",
            Self::Throttled => "throttled",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
        })
    }
}

/// Why a component is not healthy: its kind, shown to callers, and the detail, logged only.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct ProbeError {
    /// What a caller of the health endpoint is told.
    pub kind: ErrorKind,
    /// The adapter's own words, for the log.
    pub detail: String,
}

impl ProbeError {
    /// A failure of `kind`, described by `detail` for the log.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// A failure known only by its message; the kind is read from it
    /// ([`ErrorKind::from_message`]).
    pub fn from_message(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::new(ErrorKind::from_message(&detail), detail)
    }
}

/// Checks one dependency.
#[async_trait]
pub trait Probe: Send + Sync + std::fmt::Debug {
    /// Which implementation answers, e.g. `postgres`, `redis-cluster`, `memory`.
    fn adapter(&self) -> &'static str;
    /// Ok when the dependency can serve requests now.
    async fn check(&self) -> Result<(), ProbeError>;
}

/// A probe that is always ok, for embedded adapters (memory, in process, local engine).
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static str);

#[async_trait]
impl Probe for Embedded {
    fn adapter(&self) -> &'static str {
        self.0
    }
    async fn check(&self) -> Result<(), ProbeError> {
        Ok(())
    }
}

/// The state of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Answered within the timeout.
    Ok,
    /// Failed or timed out.
    Error,
    /// Not part of this deployment.
    NotConfigured,
}

/// One component in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentHealth {
    /// ok, error or not_configured.
    pub status: ComponentStatus,
    /// Which adapter answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<&'static str>,
    /// How long the check took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// What kind of failure it was (never the adapter's text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
}

/// The whole report, as `GET /api/health/` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `ok` when every configured component is ok, else `degraded`.
    pub status: &'static str,
    /// By component name.
    pub components: BTreeMap<&'static str, ComponentHealth>,
}

impl HealthReport {
    /// Whether every configured component is ok.
    pub fn is_healthy(&self) -> bool {
        self.status == "ok"
    }
}

/// One component: its probe, how long a result is reused, and the last result.
#[derive(Debug)]
struct Component {
    name: &'static str,
    probe: Option<Arc<dyn Probe>>,
    /// `None`: the check's interval.
    interval: Option<Duration>,
    /// Held while the probe runs, so concurrent callers wait for one run (single flight).
    last: tokio::sync::Mutex<Option<(Instant, ComponentHealth)>>,
}

/// The components of a deployment and how to check them. Clones share the last results.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    components: Vec<Arc<Component>>,
    timeout: Duration,
    interval: Duration,
}

impl HealthCheck {
    /// No components yet; each check gets `timeout`, and every report probes again (see
    /// [`Self::interval`]).
    pub fn new(timeout: Duration) -> Self {
        Self {
            components: Vec::new(),
            timeout,
            interval: Duration::ZERO,
        }
    }

    /// Reuses a component's result for `interval` before probing it again.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Adds a component; `None` reports it as not configured.
    pub fn component(mut self, name: &'static str, probe: Option<Arc<dyn Probe>>) -> Self {
        self.components.push(Arc::new(Component {
            name,
            probe,
            interval: None,
            last: tokio::sync::Mutex::new(None),
        }));
        self
    }

    /// Adds a component whose results are reused for `interval` instead of the check's own
    /// (zero for a probe that reads process memory and costs nothing).
    pub fn component_every(
        mut self,
        name: &'static str,
        probe: Arc<dyn Probe>,
        interval: Duration,
    ) -> Self {
        self.components.push(Arc::new(Component {
            name,
            probe: Some(probe),
            interval: Some(interval),
            last: tokio::sync::Mutex::new(None),
        }));
        self
    }

    /// Every component's state: its last result while fresh, else a new probe's.
    pub async fn report(&self) -> HealthReport {
        let checks = self.components.iter().map(|component| async move {
            (component.name, self.component_health(component).await)
        });
        let components: BTreeMap<_, _> = futures::future::join_all(checks)
            .await
            .into_iter()
            .collect();
        let healthy = components
            .values()
            .all(|c| c.status != ComponentStatus::Error);
        HealthReport {
            status: if healthy { "ok" } else { "degraded" },
            components,
        }
    }

    async fn component_health(&self, component: &Component) -> ComponentHealth {
        let Some(probe) = &component.probe else {
            return ComponentHealth {
                status: ComponentStatus::NotConfigured,
                adapter: None,
                latency_ms: None,
                error: None,
            };
        };
        let interval = component.interval.unwrap_or(self.interval);
        let mut last = component.last.lock().await;
        if let Some((at, health)) = last.as_ref()
            && at.elapsed() < interval
        {
            return health.clone();
        }
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, probe.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ProbeError::new(
                ErrorKind::Timeout,
                format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        };
        let latency_ms = Some(round_ms(started.elapsed()));
        let (status, error) = match outcome {
            Ok(()) => (ComponentStatus::Ok, None),
            Err(err) => {
                tracing::warn!(
                    component = component.name,
                    adapter = probe.adapter(),
                    kind = %err.kind,
                    error = %err.detail,
                    "health check failed"
                );
                (ComponentStatus::Error, Some(err.kind))
            }
        };
        let health = ComponentHealth {
            status,
            adapter: Some(probe.adapter()),
            latency_ms,
            error,
        };
        *last = Some((Instant::now(), health.clone()));
        health
    }
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Failing;
    #[async_trait]
    impl Probe for Failing {
        fn adapter(&self) -> &'static str {
            "redis"
        }
        async fn check(&self) -> Result<(), ProbeError> {
            Err(ProbeError::from_message(
                "Connection refused (os error 111) at 10.0.3.7:6379",
            ))
        }
    }

    #[derive(Debug)]
    struct Hanging;
    #[async_trait]
    impl Probe for Hanging {
        fn adapter(&self) -> &'static str {
            "postgres"
        }
        async fn check(&self) -> Result<(), ProbeError> {
            std::future::pending().await
        }
    }

    /// Counts its runs; each takes a moment, so concurrent reports overlap it.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);
    #[async_trait]
    impl Probe for Counting {
        fn adapter(&self) -> &'static str {
            "redis"
        }
        async fn check(&self) -> Result<(), ProbeError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn all_ok_or_not_configured_is_healthy() {
        let report = HealthCheck::new(Duration::from_millis(100))
            .component("redis", Some(Arc::new(Embedded("memory"))))
            .component("database", None)
            .report()
            .await;
        assert!(report.is_healthy());
        assert_eq!(
            report.components["database"].status,
            ComponentStatus::NotConfigured
        );
        assert_eq!(report.components["redis"].adapter, Some("memory"));
    }

    /// Completes only when its partner runs at the same time.
    #[derive(Debug)]
    struct Rendezvous(Arc<tokio::sync::Barrier>);
    #[async_trait]
    impl Probe for Rendezvous {
        fn adapter(&self) -> &'static str {
            "sqs"
        }
        async fn check(&self) -> Result<(), ProbeError> {
            self.0.wait().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn probes_run_concurrently() {
        // Run one after the other, each would wait for the other and time out.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let report = HealthCheck::new(Duration::from_secs(5))
            .component("queue", Some(Arc::new(Rendezvous(barrier.clone()))))
            .component("llm", Some(Arc::new(Rendezvous(barrier))))
            .report()
            .await;
        assert!(report.is_healthy(), "{report:?}");
    }

    #[tokio::test]
    async fn a_failure_or_a_hang_is_reported_by_its_kind_only() {
        let report = HealthCheck::new(Duration::from_millis(200))
            .component("redis", Some(Arc::new(Failing)))
            .component("database", Some(Arc::new(Hanging)))
            .component("queue", Some(Arc::new(Hanging)))
            .report()
            .await;
        assert!(!report.is_healthy());
        assert_eq!(report.status, "degraded");
        assert_eq!(report.components["redis"].error, Some(ErrorKind::Refused));
        assert_eq!(
            report.components["database"].error,
            Some(ErrorKind::Timeout)
        );
        let body = serde_json::to_string(&report).expect("json");
        assert!(!body.contains("10.0.3.7"), "{body}");
        assert!(!body.contains("os error"), "{body}");
        assert!(body.contains(r#""error":"refused""#), "{body}");
    }

    #[tokio::test]
    async fn concurrent_and_repeated_reports_within_the_interval_probe_once() {
        let probe = Arc::new(Counting::default());
        let check = HealthCheck::new(Duration::from_secs(5))
            .interval(Duration::from_secs(600))
            .component("redis", Some(probe.clone() as Arc<dyn Probe>));
        let reports = futures::future::join_all((0..20).map(|_| check.report())).await;
        assert!(reports.iter().all(HealthReport::is_healthy));
        for _ in 0..30 {
            assert!(check.clone().report().await.is_healthy());
        }
        assert_eq!(probe.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_zero_interval_probes_on_every_report() {
        let probe = Arc::new(Counting::default());
        let check = HealthCheck::new(Duration::from_secs(5))
            .interval(Duration::from_secs(600))
            .component_every("worker", probe.clone(), Duration::ZERO);
        for _ in 0..3 {
            check.report().await;
        }
        assert_eq!(probe.0.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn messages_and_aws_codes_map_to_kinds() {
        for (message, kind) in [
            ("Connection refused (os error 111)", ErrorKind::Refused),
            ("connection timed out", ErrorKind::Timeout),
            ("WRONGPASS invalid username-password pair", ErrorKind::Auth),
            (
                "pool timed out while waiting for an open connection",
                ErrorKind::Timeout,
            ),
            (
                "LOADING Redis is loading the dataset in memory",
                ErrorKind::Unavailable,
            ),
        ] {
            assert_eq!(ErrorKind::from_message(message), kind, "{message}");
        }
        for (code, kind) in [
            ("ThrottlingException", ErrorKind::Throttled),
            ("AccessDeniedException", ErrorKind::Auth),
            ("UnrecognizedClientException", ErrorKind::Auth),
            ("ResourceNotFoundException", ErrorKind::NotFound),
            (
                "AWS.SimpleQueueService.NonExistentQueue",
                ErrorKind::NotFound,
            ),
            ("InternalServerException", ErrorKind::Unavailable),
        ] {
            assert_eq!(ErrorKind::from_aws_code(code), kind, "{code}");
        }
    }
}
