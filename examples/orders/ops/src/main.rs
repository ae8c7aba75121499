//! `orders-ops`: eventfold's local runner and operator commands on this service
//! (`--help`; `make local` runs `orders-ops local`).

fn main() -> std::process::ExitCode {
    eventfold_cli::main()
}
