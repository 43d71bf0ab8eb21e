//! Argument parsing and wiring only; everything else lives in the library.

use clap::Parser;
use pio::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Emulator(args) => {
            pio::telemetry::init(cli.log_format, &cli.log_level);
            pio::emulator::run(args).await
        }
        Command::Crd => pio::crd::print_yaml(),
        Command::Rbac => {
            println!("{:#}", pio::rbac::rules_json());
            Ok(())
        }
        Command::Run(args) => {
            pio::telemetry::init(cli.log_format, &cli.log_level);
            pio::run::run(args).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
