//! The `celeriac` command. `main` only parses arguments and wires; the work is in the
//! library modules.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = celeriac_cli::Cli::parse();
    let serving = matches!(
        cli.command,
        celeriac_cli::Command::Dev { .. } | celeriac_cli::Command::Worker { .. }
    );
    celeriac_platform::telemetry::init_with_default(if serving { "info" } else { "warn" });
    match celeriac_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line a user can act on; the cause chain without a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
