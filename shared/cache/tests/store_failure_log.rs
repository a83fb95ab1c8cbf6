//! A store failure is logged as a warning with its family, operation, key and error. In a
//! test binary of its own: tracing caches per call site whether anyone listens, and tests
//! running beside this one without a subscriber could settle that to "no".

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use celeriac_cache::{Cache, CacheConfig, CacheKey};
use celeriac_kv::RedisKv;
use celeriac_platform::config::{RedisConfig, RedisTopology};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_store_failure_is_logged_as_a_warning_with_its_fields() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let config = RedisConfig {
        topology: RedisTopology::Single(
            format!("redis://{}", celeriac_testkit::dead_address()).into(),
        ),
        ca_file: None,
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
    };
    let kv = RedisKv::open(&config)
        .await
        .expect("opens without a server");
    let cache = Cache::new(Arc::new(kv), CacheConfig::default());
    cache
        .get_or_compute(
            &CacheKey::new("user", "7"),
            Duration::from_secs(60),
            || async { Ok::<_, std::convert::Infallible>(7) },
        )
        .await
        .expect("computed");

    let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
    let line = log
        .lines()
        .find(|l| l.contains("cache store failed"))
        .unwrap_or_else(|| panic!("no warning logged:\n{log}"));
    let event: serde_json::Value = serde_json::from_str(line).expect("json log line");
    assert_eq!(event["level"], "WARN");
    assert_eq!(event["fields"]["family"], "user");
    assert_eq!(event["fields"]["operation"], "get");
    assert_eq!(event["fields"]["key"], "cache:v1:user:7");
    assert!(event["fields"]["error"].is_string(), "{event}");
}
