//! `{{service}}-ops`: eventfold's local runner and operator commands on this service
//! (`--help`; `make local` runs `{{service}}-ops local`).

fn main() -> std::process::ExitCode {
    eventfold_cli::main()
}
