//! The {{aggregate}} domain: the aggregate with its commands and events, the {{aggregates}}
//! read model, and the problems its refusals become over HTTP. This crate builds on the
//! eventfold core alone (no AWS, no Lambda), and its tests run in memory.
//!
//! Start with [`{{Aggregate}}::decide`] (what a command does) and [`{{Aggregate}}::evolve`]
//! (what an event means); `functions/` wires them to HTTP and DynamoDB.

use eventfold::envelope::format_timestamp;
use eventfold::prelude::*;
use serde::{Deserialize, Serialize};

/// What happened to a {{aggregate}}. The stored event type is each variant's name; the shape of
/// a stored event is forever (change it with `#[event(schema = N)]` and an upcaster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum {{Aggregate}}Event {
    /// Registered under a name.
    {{Aggregate}}Registered {
        /// Its name.
        name: String,
    },
    /// Given another name.
    {{Aggregate}}Renamed {
        /// The new name.
        name: String,
    },
    /// Archived: it takes no more commands.
    {{Aggregate}}Archived,
}

/// A {{aggregate}}'s name: 1 to 200 characters, not blank; checked once, where it is parsed
/// (a request body with a bad name is a 400 and writes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a name is 1 to 200 characters and not blank")]
pub struct BadName;

impl TryFrom<String> for Name {
    type Error = BadName;

    fn try_from(name: String) -> Result<Self, BadName> {
        let length = name.chars().count();
        if name.trim().is_empty() || length > 200 {
            return Err(BadName);
        }
        Ok(Self(name))
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.0
    }
}

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What can be asked of a {{aggregate}}.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum {{Aggregate}}Command {
    /// Register it (once).
    Register {
        /// Its name.
        name: Name,
    },
    /// Rename it; the same name again changes nothing.
    Rename {
        /// The new name.
        name: Name,
    },
    /// Archive it.
    Archive,
}

/// Why a {{aggregate}} refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum {{Aggregate}}Error {
    /// Never registered.
    #[error("no such {{aggregate}}")]
    NotFound,
    /// Registered already.
    #[error("the {{aggregate}} is registered already")]
    AlreadyRegistered,
    /// Archived: it takes no more commands.
    #[error("the {{aggregate}} is archived")]
    Archived,
}

/// Where a {{aggregate}} is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not registered.
    #[default]
    Unregistered,
    /// Registered.
    Active,
    /// Archived; final.
    Archived,
}

/// The state of one {{aggregate}}, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct {{Aggregate}} {
    /// Its name, once registered.
    pub name: Option<String>,
    /// Where it is.
    pub status: Status,
}

impl Aggregate for {{Aggregate}} {
    const CATEGORY: &'static str = "{{Aggregate}}";
    // Bump when the state's shape changes: snapshots of the old shape are then ignored.
    const STATE_SCHEMA: u32 = 1;

    type Event = {{Aggregate}}Event;
    type Command = {{Aggregate}}Command;
    type Error = {{Aggregate}}Error;

    fn decide(&self, command: &{{Aggregate}}Command) -> Result<Vec<{{Aggregate}}Event>, {{Aggregate}}Error> {
        use {{Aggregate}}Command as C;
        use {{Aggregate}}Event as E;
        match (command, self.status) {
            (C::Register { name }, Status::Unregistered) => Ok(vec![E::{{Aggregate}}Registered {
                name: name.as_str().to_owned(),
            }]),
            (C::Register { .. }, _) => Err({{Aggregate}}Error::AlreadyRegistered),
            (_, Status::Unregistered) => Err({{Aggregate}}Error::NotFound),
            (_, Status::Archived) => Err({{Aggregate}}Error::Archived),
            (C::Rename { name }, Status::Active) if self.name.as_deref() == Some(name.as_str()) => {
                Ok(Vec::new())
            }
            (C::Rename { name }, Status::Active) => Ok(vec![E::{{Aggregate}}Renamed {
                name: name.as_str().to_owned(),
            }]),
            (C::Archive, Status::Active) => Ok(vec![E::{{Aggregate}}Archived]),
        }
    }

    fn evolve(mut self, event: &{{Aggregate}}Event) -> Self {
        use {{Aggregate}}Event as E;
        match event {
            E::{{Aggregate}}Registered { name } => {
                self.name = Some(name.clone());
                self.status = Status::Active;
            }
            E::{{Aggregate}}Renamed { name } => self.name = Some(name.clone()),
            E::{{Aggregate}}Archived => self.status = Status::Archived,
        }
        self
    }
}

/// A registered {{aggregate}} exists already (409).
pub const ALREADY_REGISTERED: ProblemType =
    ProblemType::new(409, "{{aggregate_kebab}}-exists", "{{Aggregate}} already registered");
/// An archived {{aggregate}} takes no more commands (422).
pub const ARCHIVED: ProblemType = ProblemType::new(422, "{{aggregate_kebab}}-archived", "{{Aggregate}} archived");

impl IntoProblem for {{Aggregate}}Error {
    fn to_problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            Self::NotFound => Problem::new(eventfold::problem::kinds::NOT_FOUND, detail),
            Self::AlreadyRegistered => Problem::new(ALREADY_REGISTERED, detail),
            Self::Archived => Problem::new(ARCHIVED, detail),
        }
    }
}

/// Commands on {{aggregates}}, over a command service (which stores, retries, deduplicates
/// and snapshots).
#[derive(Clone, Debug)]
pub struct {{Aggregates}} {
    commands: CommandService,
}

impl {{Aggregates}} {
    /// {{Aggregates}} stored through `commands`.
    pub fn new(commands: CommandService) -> Self {
        Self { commands }
    }

    /// The command service underneath.
    pub fn commands(&self) -> &CommandService {
        &self.commands
    }

    /// Registers a new {{aggregate}}; its id is the receipt.
    pub async fn register(
        &self,
        context: &CommandContext,
        name: Name,
    ) -> Result<Executed<EntityId>, CommandError<{{Aggregate}}Error>> {
        let id = EntityId::generate();
        self.commands
            .execute_one::<{{Aggregate}}, _>(
                context,
                Target::new({{Aggregate}}::stream_id(&id)),
                &{{Aggregate}}Command::Register { name },
                id.clone(),
            )
            .await
    }

    /// Runs a command on an existing {{aggregate}}, pinned to a version with `if_match`.
    pub async fn handle(
        &self,
        context: &CommandContext,
        id: &EntityId,
        if_match: Option<u64>,
        command: &{{Aggregate}}Command,
    ) -> Result<Executed<()>, CommandError<{{Aggregate}}Error>> {
        let target = Target::new({{Aggregate}}::stream_id(id)).if_match(if_match);
        self.commands
            .execute_one::<{{Aggregate}}, _>(context, target, command, ())
            .await
    }
}

/// The read-model table's key attribute.
pub const ROW_KEY: &str = "{{aggregate_snake}}_id";

/// One row per {{aggregate}}: what `GET /{{aggregates_kebab}}/{id}` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct {{Aggregate}}Row {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub status: Status,
    /// When its last event happened (RFC 3339).
    pub updated_at: String,
}

/// The {{aggregates}} read model: a row per {{aggregate}}, kept from its stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct {{Aggregates}}Projection;

impl Projection for {{Aggregates}}Projection {
    type Row = {{Aggregate}}Row;

    fn name(&self) -> &str {
        "{{aggregates_kebab}}"
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == {{Aggregate}}::CATEGORY
    }

    fn row_key(&self, event: &RecordedEvent, _previous: Option<&str>) -> Option<String> {
        Some(event.stream_id.entity_id().to_owned())
    }

    fn apply(
        &self,
        row: Option<{{Aggregate}}Row>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<{{Aggregate}}Row>>, StoreError> {
        use {{Aggregate}}Event as E;
        let Some(decoded) = decode_known::<{{Aggregate}}Event>(event)? else {
            return Ok(None);
        };
        let updated_at = format_timestamp(&event.occurred_at);
        let row = match (decoded, row) {
            (E::{{Aggregate}}Registered { name }, _) => {{Aggregate}}Row {
                name,
                status: Status::Active,
                updated_at,
            },
            (E::{{Aggregate}}Renamed { name }, Some(row)) => {{Aggregate}}Row {
                name,
                updated_at,
                ..row
            },
            (E::{{Aggregate}}Archived, Some(row)) => {{Aggregate}}Row {
                status: Status::Archived,
                updated_at,
                ..row
            },
            (_, None) => {
                return Err(StoreError::corrupt(format!(
                    "{} version {} ({}) comes before its registration",
                    event.stream_id, event.version, event.event_type
                )));
            }
        };
        Ok(Some(Update {
            row: Some(row),
            counters: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use eventfold::testing::given;

    use super::*;

    fn name(text: &str) -> Name {
        Name::try_from(text.to_owned()).expect("a valid name")
    }

    fn registered(text: &str) -> {{Aggregate}}Event {
        {{Aggregate}}Event::{{Aggregate}}Registered { name: text.into() }
    }

    #[test]
    fn a_new_one_registers_once() {
        given::<{{Aggregate}}>([])
            .when({{Aggregate}}Command::Register { name: name("first") })
            .then([registered("first")]);
        given::<{{Aggregate}}>([registered("first")])
            .when({{Aggregate}}Command::Register { name: name("again") })
            .then_error({{Aggregate}}Error::AlreadyRegistered);
    }

    #[test]
    fn only_a_registered_one_is_renamed_and_the_same_name_changes_nothing() {
        given::<{{Aggregate}}>([])
            .when({{Aggregate}}Command::Rename { name: name("x") })
            .then_error({{Aggregate}}Error::NotFound);
        given::<{{Aggregate}}>([registered("first")])
            .when({{Aggregate}}Command::Rename { name: name("second") })
            .then([{{Aggregate}}Event::{{Aggregate}}Renamed { name: "second".into() }]);
        given::<{{Aggregate}}>([registered("first")])
            .when({{Aggregate}}Command::Rename { name: name("first") })
            .then([]);
    }

    #[test]
    fn an_archived_one_takes_no_more_commands() {
        let archived = [registered("first"), {{Aggregate}}Event::{{Aggregate}}Archived];
        given::<{{Aggregate}}>(archived.clone())
            .when({{Aggregate}}Command::Rename { name: name("second") })
            .then_error({{Aggregate}}Error::Archived);
        given::<{{Aggregate}}>(archived)
            .when({{Aggregate}}Command::Archive)
            .then_error({{Aggregate}}Error::Archived);
    }

    #[test]
    fn a_blank_or_overlong_name_is_refused_where_it_is_parsed() {
        assert_eq!(Name::try_from("  ".to_owned()), Err(BadName));
        assert_eq!(Name::try_from("n".repeat(201)), Err(BadName));
        assert!(serde_json::from_str::<Name>("\"\"").is_err());
        assert_eq!(name("ok").as_str(), "ok");
    }

    #[test]
    fn refusals_are_problems_with_their_status() {
        assert_eq!({{Aggregate}}Error::NotFound.to_problem().status(), 404);
        assert_eq!({{Aggregate}}Error::AlreadyRegistered.to_problem().status(), 409);
        assert_eq!({{Aggregate}}Error::Archived.to_problem().status(), 422);
    }

    #[tokio::test]
    async fn the_read_model_follows_the_commands() -> Result<(), Box<dyn std::error::Error>> {
        let store = Arc::new(MemoryStore::new());
        let {{aggregates_snake}} = {{Aggregates}}::new(CommandService::new(store.clone()));
        let context = CommandContext::default();
        let id = {{aggregates_snake}}.register(&context, name("first")).await?.receipt;
        let rename = {{Aggregate}}Command::Rename { name: name("second") };
        {{aggregates_snake}}.handle(&context, &id, Some(1), &rename).await?;
        let stale = {{aggregates_snake}}.handle(&context, &id, Some(1), &{{Aggregate}}Command::Archive).await;
        assert!(stale.is_err(), "If-Match 1 no longer holds");
        {{aggregates_snake}}.handle(&context, &id, None, &{{Aggregate}}Command::Archive).await?;

        let projector = Projector::new(
            {{Aggregates}}Projection,
            Arc::new(MemoryReadModel::new(ROW_KEY)),
            store.clone(),
        );
        eventfold::testing::project_all(&store, &projector).await?;
        let (version, row) = projector.row(id.as_str()).await?.ok_or("no row")?;
        assert_eq!(version, 3);
        assert_eq!((row.name.as_str(), row.status), ("second", Status::Archived));
        Ok(())
    }
}
