//! `celeriac dev` as beat: fires the schedules template.yaml declares (`ScheduleV2` events
//! with `rate(...)` or `cron(...)` expressions) from the same expressions, through the same
//! tick lock as the Lambda scheduled handler, onto the dev runner's queue.

use std::sync::Arc;

use anyhow::{Context, bail};
use celeriac_tasks::schedule::{Expression, Tick, TickLock};
use celeriac_tasks::{Registry, SendOptions, TaskClient};
use chrono::Utc;
use serde_norway::Value;

/// One schedule from the template.
#[derive(Debug, Clone)]
pub struct DevSchedule {
    /// When it fires.
    pub expression: Expression,
    /// What it sends (its `scheduled_time` is set at each firing).
    pub tick: Tick,
}

/// Every `ScheduleV2` event in `template`, checked against `registry`.
pub fn from_template(template: &str, registry: &Registry) -> anyhow::Result<Vec<DevSchedule>> {
    let template: Value = serde_norway::from_str(template).context("template.yaml is not YAML")?;
    let mut found = Vec::new();
    let Some(resources) = template["Resources"].as_mapping() else {
        return Ok(found);
    };
    for (id, resource) in resources {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (event_id, event) in events {
            if event["Type"].as_str() != Some("ScheduleV2") {
                continue;
            }
            let name = format!(
                "{}.{}",
                id.as_str().unwrap_or("?"),
                event_id.as_str().unwrap_or("?")
            );
            let properties = &event["Properties"];
            let expression = properties["ScheduleExpression"]
                .as_str()
                .with_context(|| format!("{name}: ScheduleExpression must be a plain string"))?;
            let expression = Expression::parse(expression).with_context(|| name.clone())?;
            let input = properties["Input"]
                .as_str()
                .with_context(|| format!("{name}: Input must be a JSON string"))?;
            // The placeholder Scheduler fills in is not a time; any will do until firing.
            let input = input.replace("<aws.scheduler.scheduled-time>", "1970-01-01T00:00:00Z");
            let tick: Tick = serde_json::from_str(&input).with_context(|| {
                format!("{name}: Input must hold schedule, task, args and scheduled_time")
            })?;
            if registry.get(&tick.task).is_none() {
                bail!(
                    "{name}: schedule names task {:?}, which no app registers",
                    tick.task
                );
            }
            found.push(DevSchedule { expression, tick });
        }
    }
    Ok(found)
}

/// Fires `schedule` forever (the caller aborts it at shutdown).
pub async fn fire(
    schedule: DevSchedule,
    registry: Arc<Registry>,
    client: TaskClient,
    lock: TickLock,
) {
    // Wall-clock times name the ticks; the runtime's clock times the waits, anchored once,
    // so waits do not drift and a paused test clock drives the loop.
    let start = Utc::now();
    let anchor = tokio::time::Instant::now();
    let mut after = start;
    loop {
        let Some(next) = schedule.expression.next_after(start, after) else {
            return;
        };
        let offset = (next - start).to_std().unwrap_or_default();
        tokio::time::sleep_until(anchor + offset).await;
        after = next;
        let tick = Tick {
            scheduled_time: next,
            ..schedule.tick.clone()
        };
        match lock
            .acquire(&tick, std::time::Duration::from_secs(3600))
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(schedule = %tick.schedule, error = %err, "tick lock unavailable; tick skipped");
                continue;
            }
        }
        let Some(task) = registry.get(&tick.task) else {
            return;
        };
        match client
            .send(&task.spec(), tick.args.clone(), SendOptions::default())
            .await
        {
            Ok(task_id) => {
                tracing::info!(schedule = %tick.schedule, task_id = %task_id, "schedule fired")
            }
            Err(err) => {
                tracing::warn!(schedule = %tick.schedule, error = %err, "schedule could not enqueue")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Resources:
  Queue:
    Type: AWS::SQS::Queue
  PingFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Api:
          Type: HttpApi
        EveryMinute:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 minute)
            Input: '{"schedule": "ping", "task": "test_celery", "args": {"word": "tick"}, "scheduled_time": "<aws.scheduler.scheduled-time>"}'
        Hourly:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(0 * * * ? *)
            Input: '{"schedule": "hourly", "task": "test_celery", "args": {"word": "hour"}, "scheduled_time": "<aws.scheduler.scheduled-time>"}'
"#;

    async fn registry() -> Registry {
        crate::registry(None).await.expect("registry")
    }

    #[tokio::test]
    async fn reads_every_schedule_v2_event() {
        let schedules = from_template(TEMPLATE, &registry().await).expect("valid");
        assert_eq!(schedules.len(), 2);
        assert_eq!(schedules[0].tick.schedule, "ping");
        assert!(matches!(schedules[0].expression, Expression::Rate(d) if d.as_secs() == 60));
        assert!(matches!(schedules[1].expression, Expression::Cron(_)));
    }

    #[tokio::test]
    async fn an_unknown_task_or_a_bad_expression_is_named() {
        let unknown = TEMPLATE.replacen("\"task\": \"test_celery\"", "\"task\": \"nope\"", 1);
        let registry = registry().await;
        let err = from_template(&unknown, &registry).expect_err("unknown task");
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        let bad = TEMPLATE.replace("rate(1 minute)", "rate(1 fortnight)");
        let err = from_template(&bad, &registry).expect_err("bad rate");
        assert!(
            format!("{err:#}").contains("PingFunction.EveryMinute"),
            "{err:#}"
        );
    }

    /// The fire loop on tokio's paused clock: two virtual minutes of `rate(1 minute)` put
    /// two ticks on the queue, each through the tick lock.
    #[tokio::test(start_paused = true)]
    async fn a_rate_schedule_fires_once_per_period() {
        use celeriac_tasks::{InProcess, TaskStore, Transport};

        let registry = Arc::new(registry().await);
        let schedule = from_template(TEMPLATE, &registry).expect("valid").remove(0);
        let kv: celeriac_kv::SharedKv = Arc::new(celeriac_kv::MemoryKv::new());
        let queue = Arc::new(InProcess::default());
        let client = TaskClient::new(queue.clone(), TaskStore::new(kv.clone()), "test");
        let firing = tokio::spawn(fire(schedule, registry, client, TickLock::new(kv)));
        tokio::time::sleep(std::time::Duration::from_secs(125)).await;
        firing.abort();
        let sent = queue
            .receive("main-queue", 10, std::time::Duration::ZERO)
            .await
            .expect("receive");
        assert_eq!(sent.len(), 2, "one message per minute");
        let first: serde_json::Value = serde_json::from_slice(&sent[0].body).expect("envelope");
        assert_eq!(first["task"], "test_celery");
        assert_eq!(first["args"]["word"], "tick");
    }

    #[tokio::test]
    async fn the_shipped_template_parses() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
                .expect("template.yaml");
        from_template(&text, &registry().await)
            .expect("the shipped template's schedules are valid");
    }
}
