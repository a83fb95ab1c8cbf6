//! The `celeriac` command. `main` only parses arguments and wires; the work is in the
//! library modules.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    celeriac_platform::telemetry::init();
    let cli = celeriac_cli::Cli::parse();
    match celeriac_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line a user can act on; the cause chain without a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
