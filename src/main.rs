use std::process::ExitCode;

use clap::Parser;
use penpot_operator::cli::{Cli, Command, profile, render, rotate, run, status};
use penpot_operator::crd;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot print the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Render(args) => render::main(&args),
        Command::Run(args) => run::main(args),
        Command::Status(args) => status::main(&args),
        Command::Profile(args) => profile::main(&args),
        Command::RotateSecretKey(args) => rotate::main(&args),
        Command::PreparePod(args) => {
            use penpot_operator::pod_init::{Settings, Sources, prepare};
            let sources = Sources { pebble: &args.pebble, ..Default::default() };
            let settings = Settings {
                nginx_port: args.nginx_port,
                resolver: args.resolver.as_deref(),
                ca_bundle: args.ca_bundle.as_deref(),
            };
            match prepare(&args.into, &settings, &sources) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
