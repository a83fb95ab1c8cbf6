//! The shop's tasks.

use async_trait::async_trait;
use celeriac_tasks::{Task, TaskContext, TaskError, TaskSpec};
use serde::{Deserialize, Serialize};

/// The seed's queue check: `test_celery(word)` returns `"test task return {word}"`.
/// Routed to its own queue, `main-queue`; acknowledged only after it has run (every
/// celeriac transport acknowledges late).
#[derive(Debug, Clone, Copy)]
pub struct TestCelery;

/// Arguments of [`TestCelery`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestCeleryArgs {
    /// Echoed back in the result.
    pub word: String,
}

/// The queue `test_celery` is routed to, as in the seed.
pub const MAIN_QUEUE: &str = "main-queue";

#[async_trait]
impl Task for TestCelery {
    type Args = TestCeleryArgs;
    type Output = String;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("test_celery").queue(MAIN_QUEUE)
    }

    async fn run(&self, args: TestCeleryArgs, _ctx: &TaskContext) -> Result<String, TaskError> {
        Ok(format!("test task return {}", args.word))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn echoes_the_word_and_routes_to_main_queue() {
        let ctx = TaskContext {
            task_id: "t".into(),
            retries: 0,
            deadline: Instant::now() + Duration::from_secs(5),
        };
        let out = TestCelery
            .run(
                TestCeleryArgs {
                    word: "ping".into(),
                },
                &ctx,
            )
            .await
            .expect("runs");
        assert_eq!(out, "test task return ping");
        assert_eq!(TestCelery.spec().queue, "main-queue");
    }
}
