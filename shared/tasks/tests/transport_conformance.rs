//! One conformance suite for the transport port, run against every adapter: in process,
//! Redis Streams (single node and cluster) and SQS on the moto stand-in. (Streams and SQS
//! have no per-message priority, so they skip that case: their priorities are queues.)

use std::sync::Arc;
use std::time::Duration;

use celeriac_tasks::{InProcess, Transport};

const SHORT: Duration = Duration::from_millis(200);

async fn send_receive_ack(t: Arc<dyn Transport>, q: String) {
    t.send(&q, "one", None, Duration::ZERO).await.expect("send");
    let got = t
        .receive(&q, 10, Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"one");
    assert_eq!(got[0].delivery, 1);
    t.ack(&got[0]).await.expect("ack");
    assert!(
        t.receive(&q, 10, SHORT).await.expect("receive").is_empty(),
        "acked messages do not return"
    );
}

async fn unacked_messages_come_back(t: Arc<dyn Transport>, q: String) {
    t.send(&q, "lost worker", None, Duration::ZERO)
        .await
        .expect("send");
    let first = t
        .receive(&q, 1, Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    // No ack: as if the worker died. After the visibility timeout it is delivered again.
    let again = t
        .receive(&q, 1, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(again[0].body, b"lost worker");
    assert_eq!(again[0].delivery, 2);
    t.ack(&again[0]).await.expect("ack");
}

async fn delays_and_retries(t: Arc<dyn Transport>, q: String) {
    t.send(&q, "later", None, Duration::from_millis(600))
        .await
        .expect("send");
    assert!(
        t.receive(&q, 1, SHORT).await.expect("receive").is_empty(),
        "not before its delay"
    );
    let got = t
        .receive(&q, 1, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    t.retry(&got[0], Duration::from_millis(300))
        .await
        .expect("retry");
    let again = t
        .receive(&q, 1, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery, 2, "a retry counts as another delivery");
    t.ack(&again[0]).await.expect("ack");
}

async fn dead_letters_leave_the_queue(t: Arc<dyn Transport>, q: String) {
    t.send(&q, "poison", None, Duration::ZERO)
        .await
        .expect("send");
    let got = t
        .receive(&q, 1, Duration::from_secs(2))
        .await
        .expect("receive");
    t.dead_letter(&got[0], "not a task envelope")
        .await
        .expect("dead letter");
    assert!(t.receive(&q, 1, SHORT).await.expect("receive").is_empty());
}

async fn higher_priority_first(t: Arc<dyn Transport>, q: String) {
    t.send(&q, "low", Some(0), Duration::ZERO)
        .await
        .expect("send");
    t.send(&q, "high", Some(9), Duration::ZERO)
        .await
        .expect("send");
    t.send(&q, "default", None, Duration::ZERO)
        .await
        .expect("send");
    let mut order = Vec::new();
    for _ in 0..3 {
        let got = t
            .receive(&q, 1, Duration::from_secs(2))
            .await
            .expect("receive");
        order.push(String::from_utf8(got[0].body.clone()).expect("utf8"));
        t.ack(&got[0]).await.expect("ack");
    }
    assert_eq!(order, ["high", "default", "low"]);
}

async fn queues_are_separate(t: Arc<dyn Transport>, q: String) {
    let other = format!("{q}-other");
    t.send(&other, "elsewhere", None, Duration::ZERO)
        .await
        .expect("send");
    assert!(t.receive(&q, 1, SHORT).await.expect("receive").is_empty());
    let got = t
        .receive(&other, 1, Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    t.ack(&got[0]).await.expect("ack");
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr, [$($case:ident),*];)*) => {$(
        mod $adapter {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let queue = short_unique_name();
                    let Some(t) = $open(queue.clone()).await else { return };
                    super::$case(t, queue).await;
                }
            )*
        }
    )*};
}

/// SQS names are at most 80 characters: the queue, `-other` and `-dlq` must fit.
fn short_unique_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t{:x}-{}-{n}", nanos, std::process::id())
}

async fn inprocess(_queue: String) -> Option<Arc<dyn Transport>> {
    Some(Arc::new(InProcess::new(Duration::from_secs(1))))
}

/// SQS on moto: the queue, a second one, and their dead-letter queues, with a 1 s
/// visibility timeout so redelivery is quick.
async fn sqs(queue: String) -> Option<Arc<dyn Transport>> {
    let sdk = celeriac_testkit::moto_sdk().await?;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let prefix = "conformance-";
    for name in [queue.clone(), format!("{queue}-other")] {
        for physical in [format!("{prefix}{name}"), format!("{prefix}{name}-dlq")] {
            client
                .create_queue()
                .queue_name(physical)
                .attributes(
                    aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                    "1",
                )
                .send()
                .await
                .expect("moto creates the queue");
        }
    }
    Some(Arc::new(celeriac_tasks::SqsTransport::new(&sdk, prefix)))
}

/// Redis Streams on a stand-in, with a 1 s visibility timeout.
async fn streams(
    config: Option<celeriac_platform::config::RedisConfig>,
) -> Option<Arc<dyn Transport>> {
    let config = config?;
    let kv = Arc::new(
        celeriac_kv::RedisKv::open(&config)
            .await
            .expect("redis config"),
    );
    Some(Arc::new(celeriac_tasks::RedisStreams::new(
        kv,
        config,
        "conformance",
        Duration::from_secs(1),
    )))
}

async fn redis_single(_queue: String) -> Option<Arc<dyn Transport>> {
    streams(celeriac_testkit::redis_single()).await
}

async fn redis_cluster(_queue: String) -> Option<Arc<dyn Transport>> {
    streams(celeriac_testkit::redis_cluster()).await
}

conformance! {
    inprocess => inprocess, [send_receive_ack, unacked_messages_come_back, delays_and_retries,
        dead_letters_leave_the_queue, higher_priority_first, queues_are_separate];
    redis_single => redis_single, [send_receive_ack, unacked_messages_come_back, delays_and_retries,
        dead_letters_leave_the_queue, queues_are_separate];
    redis_cluster => redis_cluster, [send_receive_ack, unacked_messages_come_back, delays_and_retries,
        dead_letters_leave_the_queue, queues_are_separate];
    sqs => sqs, [send_receive_ack, unacked_messages_come_back, delays_and_retries,
        dead_letters_leave_the_queue, queues_are_separate];
}

/// Redis lost its data and a producer recreated the stream without the consumer group:
/// the very next receive creates the group again and delivers, whichever group command
/// meets the `NOGROUP` first (`XREADGROUP`, or `XPENDING` when the receive starts with
/// its housekeeping, as it does after a worker's pause).
#[tokio::test]
async fn redis_streams_recover_a_lost_consumer_group() {
    let Some(config) = celeriac_testkit::redis_single() else {
        return;
    };
    let queue = short_unique_name();
    let t = streams(Some(config.clone())).await.expect("redis");
    let kv = celeriac_kv::RedisKv::open(&config).await.expect("redis");
    t.send(&queue, "before", None, Duration::ZERO)
        .await
        .expect("send");
    let got = t
        .receive(&queue, 1, Duration::from_secs(2))
        .await
        .expect("receive");
    t.ack(&got[0]).await.expect("ack");

    for (round, pause) in [("at once", Duration::ZERO), ("after a pause", 2 * SHORT)] {
        // The wipe: the stream and its group are gone; a producer's XADD recreates the
        // stream alone.
        let mut del = redis::cmd("DEL");
        del.arg(format!("celeriac:{{q:{queue}}}:stream"));
        let _: i64 = kv.query(&del).await.expect("DEL");
        t.send(&queue, round, None, Duration::ZERO)
            .await
            .expect("send recreates the stream");
        // Past a receive round (250 ms), the next receive starts with XPENDING.
        tokio::time::sleep(pause).await;
        let received = t
            .receive(&queue, 1, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{round}: the receive recreates the group: {e}"));
        assert_eq!(received.len(), 1, "{round}");
        assert_eq!(received[0].body, round.as_bytes(), "{round}");
        t.ack(&received[0]).await.expect("ack");
    }
}
