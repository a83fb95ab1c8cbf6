//! One conformance suite for the transport port, run against every adapter. Today the
//! in-process transport; SQS (moto) and Redis Streams join through the same macro.

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
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn transport() -> Option<Arc<dyn Transport>> { $open }
            conformance!(@cases send_receive_ack, unacked_messages_come_back, delays_and_retries,
                dead_letters_leave_the_queue, higher_priority_first, queues_are_separate);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(t) = transport().await else { return };
            super::$case(t, celeriac_testkit::unique_prefix(stringify!($case)).replace(':', "-")).await;
        }
    )*};
}

conformance! {
    inprocess => Some(Arc::new(InProcess::new(Duration::from_secs(1))) as Arc<dyn Transport>);
}
