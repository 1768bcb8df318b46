use std::process::ExitCode;

use clap::Parser;
use penpot_operator::cli::{Cli, Command, profile, render, run, status};
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
        Command::PreparePod(args) => {
            let sources = penpot_operator::pod_init::Sources { pebble: &args.pebble, ..Default::default() };
            match penpot_operator::pod_init::prepare(&args.into, args.nginx_port, &sources) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
