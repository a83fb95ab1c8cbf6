//! The `celeriac` command line: `celeriac dev` runs the whole system on one machine;
//! `celeriac migrate` applies the database migrations.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{Parser, Subcommand};

pub mod dev;

/// celeriac: the Redis-and-Celery tier as serverless Rust.
#[derive(Debug, Parser)]
#[command(name = "celeriac", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every HTTP function on one port with embedded defaults (in-memory store,
    /// in-process queue, in-memory database, local LLM engine). REDIS_URL, DATABASE_URL,
    /// TASK_QUEUE_URL and LLM_PROVIDER switch to the real adapters.
    Dev {
        /// Port to listen on.
        #[arg(long, default_value_t = 3000, env = "CELERIAC_DEV_PORT")]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), env = "CELERIAC_DEV_HOST")]
        host: IpAddr,
    },
    /// Apply the PostgreSQL migrations to DATABASE_URL (or DATABASE_SECRET_ARN).
    Migrate,
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev { port, host } => dev::serve(SocketAddr::new(host, port)).await,
        Command::Migrate => {
            let config = celeriac_platform::Config::from_env("celeriac")?;
            let db = config.database.ok_or_else(|| {
                anyhow::anyhow!("set DATABASE_URL or DATABASE_SECRET_ARN to migrate")
            })?;
            let pool = celeriac_db::connect(&db).await?;
            celeriac_db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
