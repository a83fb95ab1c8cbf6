//! The `celeriac` command. `main` only parses arguments and wires; the work is in the
//! library modules.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    celeriac_platform::telemetry::init();
    let cli = celeriac_cli::Cli::parse();
    celeriac_cli::run(cli).await
}
