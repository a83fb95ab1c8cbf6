//! Test support shared by every crate's tests.
//!
//! `infra/standins up` starts real services on free loopback ports and writes their
//! addresses to `.standins/env` (`CELERIAC_TEST_*` variables). Tests read them through
//! [`standin`]. Without them a test that needs a service is skipped with a message, so
//! `cargo test` works on a bare checkout; with `CELERIAC_REQUIRE_STANDINS=1` (set by the
//! README's test command) a missing service fails the test instead, so CI cannot pass by
//! skipping.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use celeriac_platform::config::{RedisConfig, RedisTopology};
use secrecy::SecretString;

/// The repository root (this crate lives in `shared/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn env_file() -> &'static HashMap<String, String> {
    static FILE: OnceLock<HashMap<String, String>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::var("CELERIAC_STANDINS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".standins"));
        std::fs::read_to_string(dir.join("env"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect()
    })
}

/// Whether a missing stand-in is a failure rather than a skip.
pub fn standins_required() -> bool {
    std::env::var("CELERIAC_REQUIRE_STANDINS").is_ok_and(|v| v == "1" || v == "true")
}

/// The stand-in setting `key` (e.g. `CELERIAC_TEST_REDIS_URL`), from the process
/// environment or the stand-ins' env file. `None` means "skip": the caller returns early.
/// Panics when stand-ins are required and the key is missing.
pub fn standin(key: &str) -> Option<String> {
    let value = std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| env_file().get(key).cloned().filter(|v| !v.is_empty()));
    if value.is_none() {
        assert!(
            !standins_required(),
            "{key} is not set: start the stand-ins with `infra/standins up`"
        );
        eprintln!("skipped: {key} is not set (run `infra/standins up` to include this test)");
    }
    value
}

fn redis(topology: RedisTopology, ca_file: Option<PathBuf>) -> RedisConfig {
    RedisConfig {
        topology,
        ca_file,
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    }
}

/// The single-node stand-in.
pub fn redis_single() -> Option<RedisConfig> {
    let url = standin("CELERIAC_TEST_REDIS_URL")?;
    Some(redis(RedisTopology::Single(SecretString::from(url)), None))
}

/// The single-node stand-in's database `db`: for tests whose keys have fixed names
/// (sample events name user 42), so they do not meet other tests' keys.
pub fn redis_single_db(db: u8) -> Option<RedisConfig> {
    let url = format!(
        "{}/{db}",
        standin("CELERIAC_TEST_REDIS_URL")?.trim_end_matches('/')
    );
    Some(redis(RedisTopology::Single(SecretString::from(url)), None))
}

/// The 3-node cluster stand-in.
pub fn redis_cluster() -> Option<RedisConfig> {
    let nodes = standin("CELERIAC_TEST_REDIS_CLUSTER_NODES")?;
    let nodes = nodes
        .split(',')
        .map(|n| SecretString::from(n.trim().to_owned()))
        .collect();
    Some(redis(RedisTopology::Cluster(nodes), None))
}

/// The TLS stand-in, trusted through the CA the stand-ins script generated.
pub fn redis_tls() -> Option<RedisConfig> {
    let url = standin("CELERIAC_TEST_REDIS_TLS_URL")?;
    let ca = standin("CELERIAC_TEST_REDIS_TLS_CA")?;
    Some(redis(
        RedisTopology::Single(SecretString::from(url)),
        Some(PathBuf::from(ca)),
    ))
}

/// The PostgreSQL stand-in (tests share its database: keep rows apart by unique values).
pub fn database() -> Option<celeriac_platform::config::DatabaseConfig> {
    let url = standin("CELERIAC_TEST_DATABASE_URL")?;
    Some(celeriac_platform::config::DatabaseConfig {
        source: celeriac_platform::config::DatabaseSource::Url(SecretString::from(url)),
        max_connections: 8,
        connect_timeout: Duration::from_secs(3),
    })
}

/// The PostgreSQL stand-in seen through a schema of its own, created now: the config's
/// URL sets `search_path`, so the migrations run by the caller create this test's tables
/// there, and global queries (sweeps, deferred lists) meet no other test's rows.
pub async fn database_in_fresh_schema(
    prefix: &str,
) -> Option<celeriac_platform::config::DatabaseConfig> {
    use secrecy::ExposeSecret;
    let mut config = database()?;
    let celeriac_platform::config::DatabaseSource::Url(url) = &config.source else {
        unreachable!("the stand-in is a URL");
    };
    let url = url.expose_secret().to_owned();
    let schema = format!("{prefix}_test_{}", unique_suffix());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect to the PostgreSQL stand-in");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    config.source = celeriac_platform::config::DatabaseSource::Url(SecretString::from(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    )));
    Some(config)
}

/// A loopback address where nothing listens, for "the service is down" tests.
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr.to_string()
}

/// A prefix that keeps one test's keys apart from every other run's.
pub fn unique_prefix(test: &str) -> String {
    format!("test:{test}:{}", unique_suffix())
}

/// Process, call and clock together, `_`-separated: unique across the tests of one
/// process (two can read the same clock value: a CI run saw a schema "already exists")
/// and across runs (a process id comes back while earlier runs' data is still there).
fn unique_suffix() -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{call}_{nanos}", std::process::id())
}

/// A binary of this workspace, built by `cargo build --workspace --bins` into the same
/// target directory as the running test (`CELERIAC_BIN_DIR` overrides the directory).
pub fn workspace_binary(name: &str) -> PathBuf {
    let dir = std::env::var("CELERIAC_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            // The test runs from target/<profile>/deps/<test>; binaries sit in target/<profile>.
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("target/debug"))
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A free loopback port (free when asked; the caller binds it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A redis-server of a test's own (for tests that stop Redis), with an append-only file,
/// so a restart keeps data (or, [`OwnRedis::start_volatile`], none); killed when dropped.
#[derive(Debug)]
pub struct OwnRedis {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its data directory (the append-only file lives there).
    pub dir: PathBuf,
}

impl OwnRedis {
    /// Starts `bin` on `port`, keeping its data in `dir`, and waits until it listens.
    pub fn start(bin: &str, port: u16, dir: &Path) -> Self {
        Self::spawn(
            bin,
            port,
            dir,
            &["--appendonly", "yes", "--appendfsync", "always"],
        )
    }

    /// Starts `bin` on `port` without any persistence (`--save '' --appendonly no`), so a
    /// restart comes back empty, as a cache node without persistence does; waits until it
    /// listens.
    pub fn start_volatile(bin: &str, port: u16, dir: &Path) -> Self {
        Self::spawn(bin, port, dir, &["--appendonly", "no"])
    }

    fn spawn(bin: &str, port: u16, dir: &Path, persistence: &[&str]) -> Self {
        let child = std::process::Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(persistence)
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `celeriac dev`, stopped when dropped.
#[derive(Debug)]
pub struct DevServer {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
}

impl DevServer {
    /// Starts `celeriac dev` on a free port with exactly `env` (plus PATH and HOME), so the
    /// caller's environment cannot switch adapters behind the test's back.
    pub fn start(env: &[(&str, String)]) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("celeriac-dev-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = std::process::Command::new(workspace_binary("celeriac"));
        cmd.args(["dev", "--port", &port.to_string()])
            .env_clear()
            .envs(
                ["PATH", "HOME"]
                    .iter()
                    .filter_map(|k| Some((*k, std::env::var(k).ok()?))),
            )
            .env("RUST_LOG", "info")
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn celeriac dev");
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready(port);
        server
    }

    fn wait_ready(&mut self, port: u16) {
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("celeriac dev exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("celeriac dev did not listen within 15 s:\n{}", self.log());
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the server logs `needle` within `within`: for what the worker does on its
    /// own schedule, whose moment a test cannot pick.
    pub async fn logs_within(&self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An AWS SDK configuration pointed at the moto stand-in, with dummy credentials.
pub async fn moto_sdk() -> Option<aws_config::SdkConfig> {
    Some(sdk_at(standin("CELERIAC_TEST_MOTO_URL")?).await)
}

/// An AWS SDK configuration pointed at the llm-katan stand-in (Bedrock Converse), with
/// dummy credentials: its model id is `CELERIAC_TEST_BEDROCK_MODEL`.
pub async fn bedrock_sdk() -> Option<aws_config::SdkConfig> {
    Some(sdk_at(standin("CELERIAC_TEST_BEDROCK_URL")?).await)
}

/// An AWS SDK configuration for every service at `url`, region us-east-1, dummy keys.
pub async fn sdk_at(url: String) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// Creates the SQS queues `{prefix}{name}` (on moto); their URLs, in order.
pub async fn sqs_queues(client: &aws_sdk_sqs::Client, prefix: &str, names: &[&str]) -> Vec<String> {
    let mut urls = Vec::with_capacity(names.len());
    for name in names {
        let out = client
            .create_queue()
            .queue_name(format!("{prefix}{name}"))
            .send()
            .await
            .expect("create queue");
        urls.push(out.queue_url.expect("a queue URL"));
    }
    urls
}

/// The API Gateway sample event `events/{function}/{case}.json` as the request
/// `lambda_http` hands a function.
pub fn api_gateway_sample(function: &str, case: &str) -> axum::http::Request<axum::body::Body> {
    let path = format!(
        "{}/../../events/{function}/{case}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&json)
        .expect("an API Gateway event")
        .map(|body| axum::body::Body::from(body.to_vec()))
}

/// [`api_gateway_sample`] sent with a session: `authorization: Bearer {token}` added, as a
/// logged-in client sends it.
pub fn api_gateway_sample_as(
    function: &str,
    case: &str,
    token: &str,
) -> axum::http::Request<axum::body::Body> {
    let mut request = api_gateway_sample(function, case);
    let value = format!("Bearer {token}")
        .parse()
        .expect("a token is a valid header value");
    request
        .headers_mut()
        .insert(axum::http::header::AUTHORIZATION, value);
    request
}

/// Serves one request through `router` with the platform's layers, as a function does;
/// the status and the JSON body (`Null` when the body is not JSON).
pub async fn serve(
    router: axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (u16, serde_json::Value) {
    use tower::ServiceExt;
    let app =
        celeriac_platform::http::app(router, &celeriac_platform::config::HttpConfig::default());
    let response = app.oneshot(request).await.expect("response");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Receives `n` messages from the SQS queue at `queue_url` and shapes them as the Lambda
/// event source mapping delivers them (`Records` with the receipt handle, the body and
/// `ApproximateReceiveCount`), for a test to hand to a queue-triggered handler.
pub async fn sqs_event(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    n: usize,
) -> serde_json::Value {
    use aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount;
    let queue = queue_url.rsplit('/').next().unwrap_or(queue_url);
    let mut records = Vec::new();
    for _ in 0..60 {
        if records.len() >= n {
            break;
        }
        let out = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(ApproximateReceiveCount)
            .send()
            .await
            .expect("receive");
        for m in out.messages.unwrap_or_default() {
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&ApproximateReceiveCount))
                .cloned()
                .unwrap_or_else(|| "1".into());
            records.push(serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": count},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
                "awsRegion": "us-east-1",
            }));
        }
    }
    assert!(
        records.len() >= n,
        "{n} messages did not arrive on {queue_url}"
    );
    serde_json::json!({ "Records": records })
}

/// An llm-katan (Bedrock Converse stand-in) of a test's own, started with failure
/// injection `flags` (see `infra/standins` for them) on a free port; killed on drop.
#[derive(Debug)]
pub struct LlmKatan {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`, for `sdk_at`.
    pub url: String,
}

impl LlmKatan {
    /// Starts one serving `CELERIAC_TEST_BEDROCK_MODEL`, or `None` without the stand-ins.
    pub fn start(flags: &[&str]) -> Option<Self> {
        let venv = standin("CELERIAC_VENV")?;
        let model = standin("CELERIAC_TEST_BEDROCK_MODEL")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("celeriac-katan-{port}"));
        std::fs::create_dir_all(&dir).expect("state dir");
        let child = std::process::Command::new(format!("{venv}/bin/llm-katan"))
            .args(["-m", &model, "-b", "echo", "--providers", "bedrock"])
            .args(["--host", "127.0.0.1", "-p", &port.to_string()])
            .arg("--stats-file")
            .arg(dir.join("stats.json"))
            .args(flags)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("llm-katan starts");
        let katan = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(katan);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("llm-katan did not listen within 15 s");
    }
}

impl Drop for LlmKatan {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
