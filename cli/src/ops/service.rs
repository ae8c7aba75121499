//! What a template says about its service, as the operator commands need it: the events
//! table, the projector functions and the read-model tables each writes, the snapshot
//! function, and the dead-letter queues with where their messages came from. Read from the
//! template's shape and the library's environment names alone, so any service's template
//! works and the CLI knows no domain.

use std::collections::BTreeMap;

use eventfold::names::env;

use crate::local::template::{FunctionSpec, Reference, Template};

use super::OpsError;

/// A function that reads the events table's stream and writes read-model tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectorSpec {
    /// What the operator calls it: the logical id without `Project…` and `…Function`, in
    /// kebab case (`ProjectAccountsFunction` is `accounts`, `ProjectBookLoansFunction`
    /// `book-loans`).
    pub name: String,
    /// The function's logical id.
    pub function: String,
    /// The read-model tables it writes (logical ids), from its environment.
    pub tables: Vec<String>,
    /// Records per invocation, as its event source mapping sends them.
    pub batch_size: usize,
}

/// Where a dead-letter queue's messages come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadLetterSource {
    /// On-failure records of these functions' stream event sources: the message describes a
    /// batch of the events table's stream.
    OnFailure(Vec<String>),
    /// Messages of this queue that failed every receive (its redrive policy).
    Queue(String),
}

/// A dead-letter queue of the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterSpec {
    /// What the operator calls it: the logical id without `…DeadLetterQueue`, lower-cased
    /// (`ProjectorDeadLetterQueue` is `projector`).
    pub name: String,
    /// The queue's logical id.
    pub queue: String,
    /// Where its messages come from.
    pub source: DeadLetterSource,
}

/// The service a template describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The events table's logical id.
    pub events_table: String,
    /// The snapshots table's logical id, if the service keeps snapshots.
    pub snapshots_table: Option<String>,
    /// The snapshot function (logical id): the one with a queue source and the snapshots table.
    pub snapshotter: Option<String>,
    /// Projectors, by name.
    pub projectors: BTreeMap<String, ProjectorSpec>,
    /// Dead-letter queues, by name.
    pub dead_letters: BTreeMap<String, DeadLetterSpec>,
}

/// A logical id without a prefix and a suffix, in kebab case (`BookLoans` is `book-loans`);
/// the whole id when nothing would be left.
fn short_name(logical_id: &str, prefixes: &[&str], suffix: &str) -> String {
    let mut name = logical_id.strip_suffix(suffix).unwrap_or(logical_id);
    // The first prefix that matches is the one: `ProjectorFunction` is `projector`.
    if let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p))
        && !rest.is_empty()
    {
        name = rest;
    }
    let name = if name.is_empty() { logical_id } else { name };
    let mut kebab = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            kebab.push('-');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        kebab.push(c.to_ascii_lowercase());
    }
    kebab
}

/// The table a function's environment variable names, if it is one of the template's tables.
fn table_ref<'a>(
    template: &Template,
    function: &'a FunctionSpec,
    variable: &str,
) -> Option<&'a str> {
    match function.environment.get(variable)? {
        Reference::Ref(id) if template.table(id).is_some() => Some(id),
        _ => None,
    }
}

impl Service {
    /// Reads the service out of a template.
    pub fn of(template: &Template) -> Result<Self, OpsError> {
        let mut named: Vec<&str> = template
            .functions
            .iter()
            .filter_map(|f| table_ref(template, f, env::EVENTS_TABLE))
            .collect();
        named.sort_unstable();
        named.dedup();
        let events_table = match named.as_slice() {
            [one] => (*one).to_owned(),
            [] if template.table("EventsTable").is_some() => "EventsTable".to_owned(),
            [] => {
                return Err(OpsError::new(format!(
                    "the template has no events table: no function names one in {}",
                    env::EVENTS_TABLE
                )));
            }
            many => {
                return Err(OpsError::new(format!(
                    "the template's functions name different events tables: {}",
                    many.join(", ")
                )));
            }
        };
        let snapshots_table = template
            .functions
            .iter()
            .find_map(|f| table_ref(template, f, env::SNAPSHOTS_TABLE))
            .map(str::to_owned);
        let snapshotter = template
            .functions
            .iter()
            .find(|f| {
                !f.queue_sources.is_empty()
                    && table_ref(template, f, env::SNAPSHOTS_TABLE).is_some()
            })
            .map(|f| f.logical_id.clone());
        // The library's own tables: a stream reader naming only these (the publisher and its
        // feed) keeps no read model.
        let system: Vec<&str> = [
            env::EVENTS_TABLE,
            env::COMMANDS_TABLE,
            env::SNAPSHOTS_TABLE,
            env::FEED_TABLE,
        ]
        .into_iter()
        .filter_map(|v| {
            template
                .functions
                .iter()
                .find_map(|f| table_ref(template, f, v))
        })
        .collect();
        let mut projectors = BTreeMap::new();
        for function in &template.functions {
            let Some(source) = function
                .stream_sources
                .iter()
                .find(|s| s.table == events_table)
            else {
                continue;
            };
            let mut tables: Vec<String> = function
                .environment
                .values()
                .filter_map(|r| match r {
                    Reference::Ref(id) if template.table(id).is_some() => Some(id.as_str()),
                    _ => None,
                })
                .filter(|id| *id != events_table && !system.contains(id))
                .map(str::to_owned)
                .collect();
            tables.sort();
            tables.dedup();
            if tables.is_empty() {
                continue;
            }
            let name = short_name(&function.logical_id, &["Projector", "Project"], "Function");
            let spec = ProjectorSpec {
                name: name.clone(),
                function: function.logical_id.clone(),
                tables,
                batch_size: source.batch_size.max(1),
            };
            if projectors.insert(name.clone(), spec).is_some() {
                return Err(OpsError::new(format!(
                    "two projector functions are both called {name}: rename one"
                )));
            }
        }
        let mut sources: BTreeMap<String, DeadLetterSource> = BTreeMap::new();
        for queue in &template.queues {
            if let Some((dead_letters, _)) = &queue.redrive {
                sources.insert(
                    dead_letters.clone(),
                    DeadLetterSource::Queue(queue.logical_id.clone()),
                );
            }
        }
        for function in &template.functions {
            for source in &function.stream_sources {
                let Some(destination) = &source.on_failure else {
                    continue;
                };
                match sources
                    .entry(destination.clone())
                    .or_insert_with(|| DeadLetterSource::OnFailure(Vec::new()))
                {
                    DeadLetterSource::OnFailure(functions) => {
                        functions.push(function.logical_id.clone());
                    }
                    DeadLetterSource::Queue(queue) => {
                        return Err(OpsError::new(format!(
                            "{destination} is both {queue}'s dead-letter queue and an \
                             on-failure destination: give each its own"
                        )));
                    }
                }
            }
        }
        let dead_letters = sources
            .into_iter()
            .map(|(queue, source)| {
                let name = short_name(&queue, &[], "DeadLetterQueue");
                (
                    name.clone(),
                    DeadLetterSpec {
                        name,
                        queue,
                        source,
                    },
                )
            })
            .collect();
        Ok(Self {
            events_table,
            snapshots_table,
            snapshotter,
            projectors,
            dead_letters,
        })
    }

    /// A projector by its name or its function's logical id (any case).
    pub fn projector(&self, name: &str) -> Result<&ProjectorSpec, OpsError> {
        self.projectors
            .values()
            .find(|p| p.name.eq_ignore_ascii_case(name) || p.function.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                OpsError::new(format!(
                    "no projection {name}; there is {}",
                    names(self.projectors.keys())
                ))
            })
    }

    /// A dead-letter queue by its name or its logical id (any case).
    pub fn dead_letter(&self, name: &str) -> Result<&DeadLetterSpec, OpsError> {
        self.dead_letters
            .values()
            .find(|d| d.name.eq_ignore_ascii_case(name) || d.queue.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                OpsError::new(format!(
                    "no dead-letter queue {name}; there is {}",
                    names(self.dead_letters.keys())
                ))
            })
    }
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let listed: Vec<&str> = names.map(String::as_str).collect();
    if listed.is_empty() {
        "none".into()
    } else {
        listed.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r"
Resources:
  EventsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: stream_id, AttributeType: S}, {AttributeName: version, AttributeType: N}]
      KeySchema: [{AttributeName: stream_id, KeyType: HASH}, {AttributeName: version, KeyType: RANGE}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  SnapshotsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: stream_id, AttributeType: S}]
      KeySchema: [{AttributeName: stream_id, KeyType: HASH}]
  LoansTable:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: member_id, AttributeType: S}]
      KeySchema: [{AttributeName: member_id, KeyType: HASH}]
  SnapshotQueue:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: {deadLetterTargetArn: !GetAtt SnapshotDeadLetterQueue.Arn, maxReceiveCount: 5}
  SnapshotDeadLetterQueue:
    Type: AWS::SQS::Queue
  ProjectorDeadLetterQueue:
    Type: AWS::SQS::Queue
  ProjectLoansFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: project-loans}}
    Properties:
      Environment: {Variables: {EVENTS_TABLE: !Ref EventsTable, LOANS_TABLE: !Ref LoansTable}}
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt EventsTable.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 50
            DestinationConfig: {OnFailure: {Destination: !GetAtt ProjectorDeadLetterQueue.Arn}}
  SnapshotFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: snapshot}}
    Properties:
      Environment: {Variables: {EVENTS_TABLE: !Ref EventsTable, SNAPSHOTS_TABLE: !Ref SnapshotsTable}}
      Events:
        Requests:
          Type: SQS
          Properties: {Queue: !GetAtt SnapshotQueue.Arn, BatchSize: 10}
";

    #[test]
    fn a_template_says_which_function_projects_which_tables_and_where_dead_letters_come_from() {
        let service = Service::of(&Template::parse(TEMPLATE).expect("parses")).expect("a service");
        assert_eq!(service.events_table, "EventsTable");
        assert_eq!(service.snapshots_table.as_deref(), Some("SnapshotsTable"));
        assert_eq!(service.snapshotter.as_deref(), Some("SnapshotFunction"));
        let loans = service.projector("loans").expect("by name");
        assert_eq!(
            loans,
            service.projector("projectloansfunction").expect("by id")
        );
        assert_eq!(
            (
                loans.function.as_str(),
                loans.tables.as_slice(),
                loans.batch_size
            ),
            ("ProjectLoansFunction", &["LoansTable".to_owned()][..], 50)
        );
        assert_eq!(
            service.dead_letter("projector").expect("projector").source,
            DeadLetterSource::OnFailure(vec!["ProjectLoansFunction".into()])
        );
        assert_eq!(
            service
                .dead_letter("SnapshotDeadLetterQueue")
                .expect("snapshot")
                .source,
            DeadLetterSource::Queue("SnapshotQueue".into())
        );
        let missing = service
            .projector("accounts")
            .expect_err("no such projection");
        assert!(missing.to_string().contains("there is loans"), "{missing}");
    }

    #[test]
    fn short_names_drop_the_conventional_parts_only() {
        assert_eq!(
            short_name(
                "ProjectAccountsFunction",
                &["Projector", "Project"],
                "Function"
            ),
            "accounts"
        );
        assert_eq!(
            short_name("ProjectorFunction", &["Projector", "Project"], "Function"),
            "projector"
        );
        assert_eq!(
            short_name("EventsDeadLetterQueue", &[], "DeadLetterQueue"),
            "events"
        );
        assert_eq!(
            short_name("DeadLetterQueue", &[], "DeadLetterQueue"),
            "dead-letter-queue"
        );
        assert_eq!(
            short_name("ProjectBookLoansFunction", &["Project"], "Function"),
            "book-loans"
        );
    }
}
