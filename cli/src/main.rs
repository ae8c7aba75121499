//! `eventfold`: the local runner and operator commands. `eventfold --help`.

fn main() -> std::process::ExitCode {
    eventfold_cli::main()
}
