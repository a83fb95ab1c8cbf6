//! At most one effect per key, however often a message is delivered.
//!
//! Before running, an attempt records its key as in progress, with an expiry tied to the
//! attempt's deadline: if the process dies, the record lapses and a redelivery can run.
//! After success the record holds the result for the result TTL, so a duplicate delivery
//! returns that result without running again.

use std::time::Duration;

use celeriac_kv::{KvError, SharedKv};
use serde::{Deserialize, Serialize};

/// What [`Idempotency::begin`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// No one has run it: this attempt runs.
    Run,
    /// Another attempt is running it now.
    InProgress,
    /// It ran already; here is its result.
    Completed(serde_json::Value),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Record {
    InProgress,
    Completed { result: serde_json::Value },
}

/// Idempotency records on the key-value port.
#[derive(Debug, Clone)]
pub struct Idempotency {
    kv: SharedKv,
}

impl Idempotency {
    /// Records in `kv`.
    pub fn new(kv: SharedKv) -> Self {
        Self { kv }
    }

    fn key(effect_key: &str) -> String {
        format!("celeriac-idem-{effect_key}")
    }

    /// Claims `effect_key` for an attempt that must finish within `in_progress_for`.
    pub async fn begin(
        &self,
        effect_key: &str,
        in_progress_for: Duration,
    ) -> Result<Begin, KvError> {
        let key = Self::key(effect_key);
        let marker = serde_json::to_vec(&Record::InProgress).unwrap_or_default();
        if self
            .kv
            .set_if_absent(&key, &marker, Some(in_progress_for))
            .await?
        {
            return Ok(Begin::Run);
        }
        match self.kv.get(&key).await? {
            // Lapsed between the two calls: try once more.
            None => Ok(
                if self
                    .kv
                    .set_if_absent(&key, &marker, Some(in_progress_for))
                    .await?
                {
                    Begin::Run
                } else {
                    Begin::InProgress
                },
            ),
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Record::Completed { result }) => Ok(Begin::Completed(result)),
                Ok(Record::InProgress) => Ok(Begin::InProgress),
                Err(e) => Err(KvError::Rejected(format!(
                    "idempotency record unreadable: {e}"
                ))),
            },
        }
    }

    /// Extends a running attempt's claim for another `in_progress_for`.
    pub async fn renew(&self, effect_key: &str, in_progress_for: Duration) -> Result<(), KvError> {
        let marker = serde_json::to_vec(&Record::InProgress).unwrap_or_default();
        self.kv
            .set(&Self::key(effect_key), &marker, Some(in_progress_for))
            .await
    }

    /// Records the result; later deliveries get it from [`Idempotency::begin`].
    pub async fn complete(
        &self,
        effect_key: &str,
        result: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), KvError> {
        let record = serde_json::to_vec(&Record::Completed {
            result: result.clone(),
        })
        .map_err(|e| KvError::Rejected(e.to_string()))?;
        self.kv
            .set(&Self::key(effect_key), &record, Some(ttl))
            .await
    }

    /// Releases an in-progress claim after a failed attempt, so the retry can run.
    pub async fn release(&self, effect_key: &str) -> Result<(), KvError> {
        self.kv.delete(&Self::key(effect_key)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use celeriac_kv::MemoryKv;

    use super::*;

    #[tokio::test]
    async fn one_run_then_the_stored_result() {
        let idem = Idempotency::new(Arc::new(MemoryKv::new()));
        let minute = Duration::from_secs(60);
        assert_eq!(idem.begin("k", minute).await.expect("begin"), Begin::Run);
        assert_eq!(
            idem.begin("k", minute).await.expect("begin"),
            Begin::InProgress
        );
        idem.complete("k", &serde_json::json!("done"), minute)
            .await
            .expect("complete");
        assert_eq!(
            idem.begin("k", minute).await.expect("begin"),
            Begin::Completed(serde_json::json!("done"))
        );
    }

    #[tokio::test]
    async fn a_released_or_lapsed_claim_runs_again() {
        let idem = Idempotency::new(Arc::new(MemoryKv::new()));
        assert_eq!(
            idem.begin("k", Duration::from_secs(60))
                .await
                .expect("begin"),
            Begin::Run
        );
        idem.release("k").await.expect("release");
        assert_eq!(
            idem.begin("k", Duration::from_millis(30))
                .await
                .expect("begin"),
            Begin::Run
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            idem.begin("k", Duration::from_secs(60))
                .await
                .expect("begin"),
            Begin::Run
        );
    }
}
