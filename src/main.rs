//! The `hss-sync` binary: parse the command line, set up logging, run the command, and turn
//! its outcome into an exit code (0 succeeded, 3 partial, 1 failed, 2 usage).

use std::process::ExitCode;

use clap::Parser;

use hss_sync::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    hss_sync::telemetry::init(cli.log_format, cli.command.default_log_directive());
    match cli::run(cli, &mut std::io::stdout()).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::exit_code_of(&error))
        }
    }
}
