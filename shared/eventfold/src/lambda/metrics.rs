//! Metrics as CloudWatch Embedded Metric Format: one JSON line per record on standard output,
//! which CloudWatch Logs turns into metrics with no API call and no agent.
//!
//! ```text
//! {"_aws":{"Timestamp":1796018156241,"CloudWatchMetrics":[{"Namespace":"Eventfold",
//!   "Dimensions":[["Function","Outcome"],["Function"]],"Metrics":[{"Name":"Commands","Unit":"Count"}]}]},
//!  "Function":"command-api","Outcome":"written","Commands":1}
//! ```

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};

/// The namespace every Eventfold metric is in.
pub const NAMESPACE: &str = "Eventfold";

/// A metric's unit, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

/// One metric of a record: a name, a unit, and one or more values.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The values (several are one metric with several data points).
    pub values: Vec<f64>,
}

impl Metric {
    /// A count.
    pub fn count(name: &'static str, count: usize) -> Self {
        Self {
            name,
            unit: Unit::Count,
            values: vec![count as f64],
        }
    }

    /// Durations in milliseconds.
    pub fn millis(name: &'static str, values: impl IntoIterator<Item = f64>) -> Self {
        Self {
            name,
            unit: Unit::Milliseconds,
            values: values.into_iter().collect(),
        }
    }
}

/// A duration in milliseconds, as metrics carry it.
pub fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Where EMF lines go.
pub trait MetricsSink: Send + Sync + fmt::Debug {
    /// Writes one line.
    fn write_line(&self, line: &str);
}

/// Standard output, where Lambda's log capture finds them.
#[derive(Debug, Default)]
pub struct Stdout;

impl MetricsSink for Stdout {
    fn write_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// The log (target `emf`, level info), where a process serving many functions (the local
/// runner) keeps them out of its standard output.
#[derive(Debug, Default)]
pub struct Log;

impl MetricsSink for Log {
    fn write_line(&self, line: &str) {
        tracing::info!(target: "emf", "{line}");
    }
}

/// Lines kept in memory, for tests.
#[derive(Debug, Default)]
pub struct Recorded {
    lines: Mutex<Vec<String>>,
}

impl Recorded {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl MetricsSink for Recorded {
    fn write_line(&self, line: &str) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.to_owned());
    }
}

/// A function's metrics: its name as the `Function` dimension, and where the lines go.
#[derive(Clone, Debug)]
pub struct Metrics {
    function: String,
    sink: Arc<dyn MetricsSink>,
}

impl Metrics {
    /// Metrics of `function`, on standard output.
    pub fn stdout(function: &str) -> Self {
        Self::to(function, Arc::new(Stdout))
    }

    /// Metrics of the running Lambda function, on standard output: its deployed name (from
    /// `AWS_LAMBDA_FUNCTION_NAME`, unique per stack, so two stacks in one account never mix their
    /// figures) or, outside Lambda, `fallback`.
    pub fn for_lambda(fallback: &str) -> Self {
        let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|name| !name.is_empty());
        Self::stdout(name.as_deref().unwrap_or(fallback))
    }

    /// Metrics of `function`, into `sink`.
    pub fn to(function: &str, sink: Arc<dyn MetricsSink>) -> Self {
        Self {
            function: function.to_owned(),
            sink,
        }
    }

    /// Writes one record: `metrics` under the `Function` dimension plus `dimensions`.
    pub fn emit(&self, dimensions: &[(&str, &str)], metrics: &[Metric]) {
        let metrics: Vec<&Metric> = metrics.iter().filter(|m| !m.values.is_empty()).collect();
        if metrics.is_empty() {
            return;
        }
        let mut names: Vec<&str> = vec!["Function"];
        names.extend(dimensions.iter().map(|(name, _)| *name));
        // Each metric also under `Function` alone, so a dashboard or alarm can read a figure
        // across every outcome without a search expression.
        let mut dimension_sets = vec![names.clone()];
        if names.len() > 1 {
            dimension_sets.push(vec!["Function"]);
        }
        let timestamp = chrono::Utc::now().timestamp_millis();
        let mut record = Map::new();
        record.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimension_sets,
                    "Metrics": metrics
                        .iter()
                        .map(|m| json!({"Name": m.name, "Unit": m.unit.name()}))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        record.insert("Function".into(), Value::String(self.function.clone()));
        for (name, value) in dimensions {
            record.insert((*name).to_owned(), Value::String((*value).to_owned()));
        }
        for metric in metrics {
            let value = match metric.values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            record.insert(metric.name.to_owned(), value);
        }
        self.sink.write_line(&Value::Object(record).to_string());
    }
}

/// Checks an EMF line the way CloudWatch reads it; the metrics' values by name. For tests.
pub fn parse_emf(line: &str) -> Result<Map<String, Value>, String> {
    let record: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let directive = record
        .get("_aws")
        .ok_or("no _aws")?
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .ok_or("no CloudWatchMetrics")?;
    if directive["Namespace"] != NAMESPACE {
        return Err("another namespace".into());
    }
    let sets = directive["Dimensions"]
        .as_array()
        .filter(|sets| !sets.is_empty())
        .ok_or("no dimension sets")?;
    for dimension in sets
        .iter()
        .map(|set| set.as_array().ok_or("a dimension set is not a list"))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
    {
        let name = dimension.as_str().ok_or("a dimension is not a name")?;
        if !record.get(name).is_some_and(Value::is_string) {
            return Err(format!("dimension {name} has no value"));
        }
    }
    let mut values = Map::new();
    for metric in directive["Metrics"].as_array().ok_or("no metrics")? {
        let name = metric["Name"].as_str().ok_or("a metric has no name")?;
        let value = record
            .get(name)
            .ok_or(format!("metric {name} has no value"))?;
        let numeric = value.is_number()
            || value
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_number));
        if !numeric {
            return Err(format!("metric {name} is not a number: {value}"));
        }
        values.insert(name.to_owned(), value.clone());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_embedded_metric_format() {
        let recorded = Arc::new(Recorded::default());
        let metrics = Metrics::to("command-api", recorded.clone());
        metrics.emit(
            &[("Outcome", "written")],
            &[
                Metric::count("Commands", 1),
                Metric::millis("AppendLatency", [12.5]),
                Metric::millis("Lag", [1.0, 2.0]),
                Metric::millis("Nothing", []),
            ],
        );
        let lines = recorded.lines();
        assert_eq!(lines.len(), 1);
        let values = parse_emf(&lines[0]).expect("valid EMF");
        assert_eq!(values["Commands"], json!(1.0));
        assert_eq!(values["Lag"], json!([1.0, 2.0]));
        assert!(
            !values.contains_key("Nothing"),
            "empty metrics are left out"
        );
        let record: Value = serde_json::from_str(&lines[0]).expect("JSON");
        assert_eq!(record["Outcome"], "written");
        assert_eq!(
            record["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Outcome"], ["Function"]])
        );
    }

    #[test]
    fn a_record_without_values_is_not_written() {
        let recorded = Arc::new(Recorded::default());
        Metrics::to("f", recorded.clone()).emit(&[], &[Metric::millis("Lag", [])]);
        assert!(recorded.lines().is_empty());
    }
}
