//! Periodic tasks: celeriac's beat.
//!
//! On AWS, EventBridge Scheduler invokes a task's function with the input the template
//! gives it: `{"schedule", "task", "args", "scheduled_time": "<aws.scheduler.scheduled-time>"}`.
//! Each tick takes a lock on (schedule, scheduled time) before running, so a tick delivered
//! twice (Scheduler delivers at least once) runs once. `celeriac dev` reads the same
//! `rate(...)` and `cron(...)` expressions from template.yaml and fires them itself.

use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use celeriac_kv::{KvError, SharedKv};

/// One tick, as EventBridge Scheduler delivers it (the template sets this input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// The schedule's name.
    pub schedule: String,
    /// The task it runs.
    pub task: String,
    /// The task's arguments.
    #[serde(default)]
    pub args: serde_json::Value,
    /// The time the tick was scheduled for (not when it arrived).
    pub scheduled_time: DateTime<Utc>,
}

impl Tick {
    /// A task id that is the same for every delivery of this tick.
    pub fn task_id(&self) -> String {
        format!(
            "{}-{}",
            self.schedule,
            self.scheduled_time.format("%Y%m%dT%H%M%SZ")
        )
    }
}

/// Locks ticks so each (schedule, scheduled time) runs once.
#[derive(Debug, Clone)]
pub struct TickLock {
    kv: SharedKv,
}

impl TickLock {
    /// Locks kept in `kv`.
    pub fn new(kv: SharedKv) -> Self {
        Self { kv }
    }

    fn key(tick: &Tick) -> String {
        format!("celeriac-tick-{}", tick.task_id())
    }

    /// True for the first caller with this tick; false for a duplicate while the lock
    /// holds. The lock is a lease of `lease` (the task's time limit): a holder killed before
    /// it could give the lock back does not block Scheduler's retry past it, and a late
    /// duplicate still runs nothing, because the task id is the tick's and its record or
    /// idempotency entry says it ran.
    pub async fn acquire(&self, tick: &Tick, lease: Duration) -> Result<bool, KvError> {
        self.kv
            .set_if_absent(&Self::key(tick), b"1", Some(lease))
            .await
    }

    /// Gives a tick back after a failure that a redelivery can fix.
    pub async fn release(&self, tick: &Tick) -> Result<(), KvError> {
        self.kv.delete(&Self::key(tick)).await.map(|_| ())
    }
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule expression {expression:?}: {reason}")]
pub struct ExpressionError {
    /// The expression.
    pub expression: String,
    /// What is wrong.
    pub reason: String,
}

/// An EventBridge Scheduler expression: `rate(5 minutes)` or `cron(0 * * * ? *)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// Every fixed period.
    Rate(Duration),
    /// Minutes, hours, days of month, months, days of week (0 = Sunday), in UTC.
    Cron(Box<Cron>),
}

/// The fields of a cron expression, each a set of allowed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Option<Vec<u32>>,
    months: Vec<u32>,
    weekdays: Option<Vec<u32>>,
}

impl Expression {
    /// Parses the template's expression.
    pub fn parse(expression: &str) -> Result<Self, ExpressionError> {
        let err = |reason: &str| ExpressionError {
            expression: expression.to_owned(),
            reason: reason.to_owned(),
        };
        let text = expression.trim();
        if let Some(inner) = text.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let mut parts = inner.split_whitespace();
            let n: u64 = parts
                .next()
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| err("rate needs a positive whole number"))?;
            let unit = match parts.next() {
                Some("minute" | "minutes") => 60,
                Some("hour" | "hours") => 3600,
                Some("day" | "days") => 86_400,
                _ => return Err(err("rate unit must be minutes, hours or days")),
            };
            // Scheduler allows rates up to a year or so; anything past ten years is a typo.
            let secs = n
                .checked_mul(unit)
                .filter(|s| *s <= 10 * 366 * 86_400)
                .ok_or_else(|| err("rate is longer than ten years"))?;
            return Ok(Self::Rate(Duration::from_secs(secs)));
        }
        if let Some(inner) = text.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let fields: Vec<&str> = inner.split_whitespace().collect();
            let [minutes, hours, days, months, weekdays, years] = fields[..] else {
                return Err(err(
                    "cron needs six fields: minutes hours day-of-month month day-of-week year",
                ));
            };
            if years != "*" {
                return Err(err("only * is supported for the year"));
            }
            let field = |f: &str, lo: u32, hi: u32| parse_field(f, lo, hi).map_err(|r| err(&r));
            let days = if days == "?" {
                None
            } else {
                Some(field(days, 1, 31)?)
            };
            // AWS numbers days of the week 1 (Sunday) to 7; stored here as 0..=6.
            let weekdays = if weekdays == "?" {
                None
            } else {
                Some(field(weekdays, 1, 7)?.into_iter().map(|d| d - 1).collect())
            };
            if days.is_some() == weekdays.is_some() {
                return Err(err("exactly one of day-of-month and day-of-week must be ?"));
            }
            return Ok(Self::Cron(Box::new(Cron {
                minutes: field(minutes, 0, 59)?,
                hours: field(hours, 0, 23)?,
                days,
                months: field(months, 1, 12)?,
                weekdays,
            })));
        }
        Err(err("expected rate(...) or cron(...)"))
    }

    /// The first firing strictly after `after`. Rates count from `start`.
    pub fn next_after(&self, start: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Rate(period) => {
                let period = ChronoDuration::from_std(*period).ok()?;
                let elapsed = after - start;
                let periods = elapsed.num_seconds().div_euclid(period.num_seconds()) + 1;
                start.checked_add_signed(period.checked_mul(i32::try_from(periods).ok()?)?)
            }
            Self::Cron(cron) => {
                // Minute by minute over at most four years: simple and plenty fast for a
                // dev loop that asks once per firing.
                let mut t = Utc
                    .with_ymd_and_hms(
                        after.year(),
                        after.month(),
                        after.day(),
                        after.hour(),
                        after.minute(),
                        0,
                    )
                    .single()?
                    + ChronoDuration::minutes(1);
                for _ in 0..(4 * 366 * 24 * 60) {
                    if cron.matches(t) {
                        return Some(t);
                    }
                    t += ChronoDuration::minutes(1);
                }
                None
            }
        }
    }
}

impl Cron {
    fn matches(&self, t: DateTime<Utc>) -> bool {
        self.minutes.contains(&t.minute())
            && self.hours.contains(&t.hour())
            && self.months.contains(&t.month())
            && self.days.as_ref().is_none_or(|d| d.contains(&t.day()))
            && self
                .weekdays
                .as_ref()
                .is_none_or(|w| w.contains(&t.weekday().num_days_from_sunday()))
    }
}

fn parse_field(field: &str, lo: u32, hi: u32) -> Result<Vec<u32>, String> {
    let mut values = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>().ok().filter(|s| *s > 0).ok_or("bad step")?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (
                    a.parse().map_err(|_| format!("bad value {a:?}"))?,
                    b.parse().map_err(|_| format!("bad value {b:?}"))?,
                ),
                None => {
                    let v: u32 = r.parse().map_err(|_| format!("unsupported field {r:?}"))?;
                    (v, if step > 1 { hi } else { v })
                }
            },
        };
        if from < lo || to > hi || from > to {
            return Err(format!("{part:?} is outside {lo}..={hi}"));
        }
        values.extend((from..=to).step_by(step as usize));
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use celeriac_kv::MemoryKv;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn rates_fire_on_their_period() {
        let e = Expression::parse("rate(30 minutes)").expect("rate");
        let start = at("2026-11-22T00:00:00Z");
        assert_eq!(e.next_after(start, start), Some(at("2026-11-22T00:30:00Z")));
        assert_eq!(
            e.next_after(start, at("2026-11-22T00:45:10Z")),
            Some(at("2026-11-22T01:00:00Z"))
        );
        assert!(Expression::parse("rate(1 minute)").is_ok());
        assert!(Expression::parse("rate(0 minutes)").is_err());
        assert!(Expression::parse("rate(5 weeks)").is_err());
    }

    #[test]
    fn cron_hourly_daily_and_weekdays() {
        let start = at("2026-11-22T00:00:00Z");
        let hourly = Expression::parse("cron(0 * * * ? *)").expect("hourly");
        assert_eq!(
            hourly.next_after(start, at("2026-11-22T10:15:00Z")),
            Some(at("2026-11-22T11:00:00Z"))
        );
        let daily = Expression::parse("cron(30 3 * * ? *)").expect("daily");
        assert_eq!(
            daily.next_after(start, at("2026-11-22T10:15:00Z")),
            Some(at("2026-11-23T03:30:00Z"))
        );
        // 2026-11-22 is a Sunday; MON-FRI is 2-6 in AWS numbering.
        let weekdays = Expression::parse("cron(0 9 ? * 2-6 *)").expect("weekdays");
        assert_eq!(
            weekdays.next_after(start, at("2026-11-22T10:00:00Z")),
            Some(at("2026-11-23T09:00:00Z"))
        );
        let every_15 = Expression::parse("cron(0/15 * * * ? *)").expect("steps");
        assert_eq!(
            every_15.next_after(start, at("2026-11-22T10:16:00Z")),
            Some(at("2026-11-22T10:30:00Z"))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "cron(0 * * * * *)",
            "cron(61 * * * ? *)",
            "cron(0 * * ? *)",
            "every minute",
            "cron(0 * * * ? 2027)",
        ] {
            let err = Expression::parse(bad).expect_err(bad);
            assert!(!err.reason.is_empty(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_tick_delivered_twice_is_locked_once() {
        let lock = TickLock::new(Arc::new(MemoryKv::new()));
        let tick = Tick {
            schedule: "check_expired_orders".into(),
            task: "check_expired_orders".into(),
            args: serde_json::Value::Null,
            scheduled_time: at("2026-11-22T10:01:00Z"),
        };
        let lease = Duration::from_secs(60);
        assert!(lock.acquire(&tick, lease).await.expect("lock"));
        assert!(!lock.acquire(&tick, lease).await.expect("lock again"));
        let next = Tick {
            scheduled_time: at("2026-11-22T10:02:00Z"),
            ..tick
        };
        assert!(lock.acquire(&next, lease).await.expect("next tick"));
    }
}
