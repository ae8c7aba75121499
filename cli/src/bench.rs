//! Benchmarks against the emulator, written to docs/BENCHMARKS.md.

/// `eventfold bench`.
pub async fn run(_out: Option<&str>) -> Result<(), String> {
    Err("not yet available".into())
}
