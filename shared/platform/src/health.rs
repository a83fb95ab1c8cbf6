//! Health checks: each dependency reports ok, error (with the reason) or not configured.
//!
//! A [`Probe`] checks one component; [`HealthCheck::report`] runs them all at once, each
//! under the same timeout, so a hanging dependency costs the timeout and never more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

/// Why a component is not healthy. The reason is shown to callers: no secrets in it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

impl ProbeError {
    /// From any error, by its message.
    pub fn from_error(err: &dyn std::error::Error) -> Self {
        Self(err.to_string())
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
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

/// The components of a deployment and how to check them.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    components: Vec<(&'static str, Option<Arc<dyn Probe>>)>,
    timeout: Duration,
}

impl HealthCheck {
    /// No components yet; each check gets `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            components: Vec::new(),
            timeout,
        }
    }

    /// Adds a component; `None` reports it as not configured.
    pub fn component(mut self, name: &'static str, probe: Option<Arc<dyn Probe>>) -> Self {
        self.components.push((name, probe));
        self
    }

    /// Runs every probe concurrently and collects the report.
    pub async fn report(&self) -> HealthReport {
        let checks = self.components.iter().map(|(name, probe)| async move {
            let Some(probe) = probe else {
                return (
                    *name,
                    ComponentHealth {
                        status: ComponentStatus::NotConfigured,
                        adapter: None,
                        latency_ms: None,
                        error: None,
                    },
                );
            };
            let started = Instant::now();
            let outcome = tokio::time::timeout(self.timeout, probe.check()).await;
            let latency_ms = Some(round_ms(started.elapsed()));
            let (status, error) = match outcome {
                Ok(Ok(())) => (ComponentStatus::Ok, None),
                Ok(Err(err)) => (ComponentStatus::Error, Some(err.0)),
                Err(_) => (
                    ComponentStatus::Error,
                    Some(format!("no answer within {} ms", self.timeout.as_millis())),
                ),
            };
            if let Some(reason) = &error {
                tracing::warn!(component = *name, adapter = probe.adapter(), reason = %reason, "health check failed");
            }
            (
                *name,
                ComponentHealth {
                    status,
                    adapter: Some(probe.adapter()),
                    latency_ms,
                    error,
                },
            )
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
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failing;
    #[async_trait]
    impl Probe for Failing {
        fn adapter(&self) -> &'static str {
            "redis"
        }
        async fn check(&self) -> Result<(), ProbeError> {
            Err(ProbeError("connection refused".into()))
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
    async fn a_failure_or_a_hang_is_reported_with_its_reason() {
        let report = HealthCheck::new(Duration::from_millis(200))
            .component("redis", Some(Arc::new(Failing)))
            .component("database", Some(Arc::new(Hanging)))
            .component("queue", Some(Arc::new(Hanging)))
            .report()
            .await;
        assert!(!report.is_healthy());
        assert_eq!(report.status, "degraded");
        assert_eq!(
            report.components["redis"].error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(
            report.components["database"].error.as_deref(),
            Some("no answer within 200 ms")
        );
    }
}
