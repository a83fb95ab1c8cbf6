//! The pool, migrations and probe against the PostgreSQL stand-in.

use std::time::Duration;

use celeriac_db::{PgProbe, connect, migrate};
use celeriac_platform::config::{DatabaseConfig, DatabaseSource};
use celeriac_platform::health::{ErrorKind, Probe};

fn config(url: String) -> DatabaseConfig {
    DatabaseConfig {
        source: DatabaseSource::Url(url.into()),
        max_connections: 2,
        connect_timeout: Duration::from_secs(3),
    }
}

#[tokio::test]
async fn migrations_apply_twice_and_the_probe_answers() {
    let Some(url) = celeriac_testkit::standin("CELERIAC_TEST_DATABASE_URL") else {
        return;
    };
    let pool = connect(&config(url)).await.expect("connect");
    migrate(&pool).await.expect("first run");
    migrate(&pool).await.expect("second run is a no-op");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables \
         WHERE table_name = 'applied_effects' AND table_schema = current_schema()",
    )
    .fetch_one(&pool)
    .await
    .expect("query");
    assert_eq!(tables, 1);
    PgProbe(pool).check().await.expect("probe ok");
}

#[tokio::test]
async fn a_database_that_is_down_fails_the_probe_with_a_reason() {
    let url = format!(
        "postgres://nobody:pw@{}/none",
        celeriac_testkit::dead_address()
    );
    let mut cfg = config(url);
    cfg.connect_timeout = Duration::from_millis(500);
    let pool = connect(&cfg).await.expect("opens lazily");
    let err = PgProbe(pool).check().await.expect_err("nothing listens");
    assert!(
        matches!(err.kind, ErrorKind::Refused | ErrorKind::Timeout),
        "{err}"
    );
    assert!(!err.detail.is_empty());
    assert!(!err.detail.contains("pw@"), "no password in {}", err.detail);
}

#[tokio::test]
async fn a_malformed_url_is_a_config_error_without_the_url() {
    let err = connect(&config("postgres://user:topsecret@host:notaport/db".into()))
        .await
        .expect_err("bad port");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("topsecret"));
}
