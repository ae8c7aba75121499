//! Operator commands: projection rebuild, redrive of dead-lettered batches, snapshot backfill.

/// `eventfold rebuild`.
pub async fn rebuild_command(_prefix: &str) -> Result<(), String> {
    Err("not yet available".into())
}

/// `eventfold redrive`.
pub async fn redrive_command(_prefix: &str) -> Result<(), String> {
    Err("not yet available".into())
}

/// `eventfold snapshot`.
pub async fn snapshot_command(_prefix: &str, _target: Option<&str>) -> Result<(), String> {
    Err("not yet available".into())
}
