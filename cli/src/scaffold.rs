//! `eventfold new <dir> --aggregate <Name>`: a complete service for one aggregate, ready for
//! `make test` and `make local`: a workspace with the domain crate (the aggregate, its
//! commands and events with the derive, a projection, given/when/then tests), the functions
//! on the library's runtimes with their contracts, the operator tool, a SAM template held by
//! the drift checks, the demo, a Makefile, CI, and a README saying what to edit.
//!
//! The files are this crate's `scaffold/` folder with names filled in; the scripts are this
//! repository's own (`scripts/`), so a generated service runs the emulator exactly as
//! eventfold's own tests do.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A file of the new service: its path, its text (with `{{names}}`), whether it is a script.
struct File {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

macro_rules! files {
    ($($path:literal => $source:literal $(, $executable:ident)?;)*) => {
        &[$(File {
            path: $path,
            text: include_str!($source),
            executable: files!(@executable $($executable)?),
        },)*]
    };
    (@executable executable) => { true };
    (@executable) => { false };
}

const FILES: &[File] = files! {
    "Cargo.toml" => "../scaffold/Cargo.toml";
    "Makefile" => "../scaffold/Makefile";
    "README.md" => "../scaffold/README.md";
    ".gitignore" => "../scaffold/.gitignore";
    ".ci/run" => "../scaffold/.ci/run", executable;
    "samconfig.toml" => "../scaffold/samconfig.toml";
    "rust-toolchain.toml" => "../../rust-toolchain.toml";
    "clippy.toml" => "../../clippy.toml";
    "domain/Cargo.toml" => "../scaffold/domain/Cargo.toml";
    "domain/src/lib.rs" => "../scaffold/domain/src/lib.rs";
    "functions/Cargo.toml" => "../scaffold/functions/Cargo.toml";
    "functions/src/lib.rs" => "../scaffold/functions/src/lib.rs";
    "functions/src/bin/command-api.rs" => "../scaffold/functions/src/bin/command-api.rs";
    "functions/src/bin/query-api.rs" => "../scaffold/functions/src/bin/query-api.rs";
    "functions/src/bin/project.rs" => "../scaffold/functions/src/bin/project.rs";
    "functions/src/bin/publish-events.rs" => "../scaffold/functions/src/bin/publish-events.rs";
    "functions/src/bin/snapshot-streams.rs" => "../scaffold/functions/src/bin/snapshot-streams.rs";
    "functions/tests/drift.rs" => "../scaffold/functions/tests/drift.rs";
    "functions/tests/http.rs" => "../scaffold/functions/tests/http.rs";
    "ops/Cargo.toml" => "../scaffold/ops/Cargo.toml";
    "ops/src/main.rs" => "../scaffold/ops/src/main.rs";
    "infra/template.yaml" => "../scaffold/infra/template.yaml";
    "infra/demo.yaml" => "../scaffold/infra/demo.yaml";
    "scripts/emulator.sh" => "../../scripts/emulator.sh", executable;
    "scripts/session-emulator.sh" => "../../scripts/session-emulator.sh";
    "scripts/with-emulator.sh" => "../../scripts/with-emulator.sh", executable;
    "scripts/local.sh" => "../../scripts/local.sh", executable;
    "scripts/deploy-local.sh" => "../../scripts/deploy-local.sh", executable;
    "scripts/deploy_local.py" => "../../scripts/deploy_local.py";
};

/// Why a service was not written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScaffoldError(String);

fn refuse(message: impl Into<String>) -> ScaffoldError {
    ScaffoldError(message.into())
}

/// How the new service depends on eventfold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dependency {
    /// A checkout of this repository (its root).
    Path(PathBuf),
    /// A git repository, at a revision if given (`git:<url>[#<rev>]`).
    Git {
        /// The repository.
        url: String,
        /// A commit, tag or branch.
        rev: Option<String>,
    },
    /// A published version (`version:0.1`).
    Version(String),
}

impl Dependency {
    /// This checkout, where the CLI was built from one; the published version otherwise.
    pub fn default_for_this_build() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if root.join("shared/eventfold/Cargo.toml").is_file() {
            Self::Path(root.canonicalize().unwrap_or(root))
        } else {
            Self::Version(env!("CARGO_PKG_VERSION").to_owned())
        }
    }

    /// The dependency's TOML for one of the two crates (`shared/eventfold` is `eventfold`, `cli`
    /// is `eventfold-cli`).
    fn toml(&self, folder: &str) -> String {
        match self {
            Self::Path(root) => {
                let path = root.join(folder);
                format!("{{ path = {:?} }}", path.display().to_string())
            }
            Self::Git { url, rev: None } => format!("{{ git = {url:?} }}"),
            Self::Git {
                url,
                rev: Some(rev),
            } => format!("{{ git = {url:?}, rev = {rev:?} }}"),
            Self::Version(version) => format!("{version:?}"),
        }
    }
}

impl FromStr for Dependency {
    type Err = ScaffoldError;

    fn from_str(text: &str) -> Result<Self, ScaffoldError> {
        let (kind, value) = text.split_once(':').ok_or_else(|| {
            refuse(format!(
                "{text:?}: say path:<checkout>, git:<url>[#<rev>] or version:<semver>"
            ))
        })?;
        match (kind, value) {
            (_, "") => Err(refuse(format!("{text:?} names nothing after {kind}:"))),
            ("path", path) => {
                let root = PathBuf::from(path);
                if !root.join("shared/eventfold/Cargo.toml").is_file() {
                    return Err(refuse(format!(
                        "{path} is not an eventfold checkout (no shared/eventfold/Cargo.toml)"
                    )));
                }
                Ok(Self::Path(root.canonicalize().unwrap_or(root)))
            }
            ("git", spec) => {
                let (url, rev) = match spec.split_once('#') {
                    Some((url, rev)) => (url.to_owned(), Some(rev.to_owned())),
                    None => (spec.to_owned(), None),
                };
                Ok(Self::Git { url, rev })
            }
            ("version", version) => Ok(Self::Version(version.to_owned())),
            _ => Err(refuse(format!(
                "{kind}: is not a kind of dependency (path, git, version)"
            ))),
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(root) => write!(f, "path:{}", root.display()),
            Self::Git { url, rev: None } => write!(f, "git:{url}"),
            Self::Git {
                url,
                rev: Some(rev),
            } => write!(f, "git:{url}#{rev}"),
            Self::Version(version) => write!(f, "version:{version}"),
        }
    }
}

/// The names a service is written with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The service (its folder's name by default): kebab case, `book-club`.
    pub service: String,
    /// The aggregate, in Pascal case: `BookLoan`.
    pub aggregate: String,
    /// Its plural, in Pascal case: `BookLoans`.
    pub plural: String,
}

/// `BookLoan` as `["book", "loan"]`.
fn words(pascal: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for c in pascal.chars() {
        match words.last_mut() {
            Some(word) if !c.is_ascii_uppercase() => word.push(c),
            _ => words.push(c.to_ascii_lowercase().to_string()),
        }
    }
    words
}

/// English plural of a Pascal-case noun, by the common rules (`--plural` for the rest).
fn plural_of(noun: &str) -> String {
    let lower = noun.to_ascii_lowercase();
    let consonant_y =
        lower.ends_with('y') && !lower[..lower.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']);
    if consonant_y {
        format!("{}ies", &noun[..noun.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| lower.ends_with(end))
    {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

fn is_pascal(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Crate names a service may not take: they would shadow what it depends on.
const TAKEN: &[&str] = &[
    "eventfold",
    "eventfold-cli",
    "eventfold-derive",
    "serde",
    "serde_json",
    "tokio",
    "reqwest",
    "thiserror",
    "std",
    "core",
    "alloc",
    "test",
    "proc-macro",
];

impl Names {
    /// Checks the names: the service in kebab case, the aggregate and its plural in Pascal
    /// case and a valid stream category.
    pub fn new(
        service: &str,
        aggregate: &str,
        plural: Option<&str>,
    ) -> Result<Self, ScaffoldError> {
        let kebab = service
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && service
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !service.ends_with('-')
            && !service.contains("--");
        if !kebab || service.len() > 40 {
            return Err(refuse(format!(
                "{service:?} is not a service name: lower case letters, digits and single dashes, \
                 a letter first, at most 40 (--name sets it)"
            )));
        }
        if TAKEN.contains(&service) || service.starts_with("eventfold-") {
            return Err(refuse(format!(
                "{service:?} is the name of a crate the service depends on: choose another"
            )));
        }
        if !is_pascal(aggregate) || aggregate.len() > 40 {
            return Err(refuse(format!(
                "{aggregate:?} is not an aggregate name: Pascal case (BookLoan), ASCII letters \
                 and digits, at most 40"
            )));
        }
        if !eventfold::ids::is_valid_category(aggregate) {
            return Err(refuse(format!(
                "{aggregate:?} is not a valid stream category"
            )));
        }
        let plural = plural.map_or_else(|| plural_of(aggregate), str::to_owned);
        if !is_pascal(&plural) || plural == aggregate {
            return Err(refuse(format!(
                "{plural:?} is not a plural for {aggregate}: Pascal case, not the singular"
            )));
        }
        Ok(Self {
            service: service.to_owned(),
            aggregate: aggregate.to_owned(),
            plural,
        })
    }

    /// Every placeholder and its value.
    fn placeholders(&self, eventfold: &Dependency) -> Vec<(&'static str, String)> {
        let (one, many) = (words(&self.aggregate), words(&self.plural));
        vec![
            ("{{service}}", self.service.clone()),
            ("{{service_rs}}", self.service.replace('-', "_")),
            ("{{Aggregate}}", self.aggregate.clone()),
            ("{{Aggregates}}", self.plural.clone()),
            ("{{aggregate}}", one.join(" ")),
            ("{{aggregates}}", many.join(" ")),
            ("{{aggregate_snake}}", one.join("_")),
            ("{{aggregates_snake}}", many.join("_")),
            ("{{aggregate_kebab}}", one.join("-")),
            ("{{aggregates_kebab}}", many.join("-")),
            ("{{AGGREGATES}}", many.join("_").to_ascii_uppercase()),
            ("{{eventfold}}", eventfold.toml("shared/eventfold")),
            ("{{eventfold_cli}}", eventfold.toml("cli")),
        ]
    }
}

/// Fills the placeholders of one file.
fn fill(text: &str, placeholders: &[(&'static str, String)]) -> String {
    placeholders
        .iter()
        .fold(text.to_owned(), |text, (name, value)| {
            text.replace(name, value)
        })
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The service's folder.
    pub root: PathBuf,
    /// Its files, relative to the folder.
    pub files: Vec<PathBuf>,
    /// Whether rustfmt laid the Rust files out (it is skipped where it is not installed).
    pub formatted: bool,
}

/// Writes the service into `root`, which must not exist or be empty.
pub fn write(root: &Path, names: &Names, eventfold: &Dependency) -> Result<Written, ScaffoldError> {
    let failed = |what: &Path, e: std::io::Error| refuse(format!("{}: {e}", what.display()));
    if root.exists() {
        let mut entries = std::fs::read_dir(root).map_err(|e| failed(root, e))?;
        if entries.next().is_some() {
            return Err(refuse(format!(
                "{} is not empty: eventfold new writes into a new or empty folder",
                root.display()
            )));
        }
    }
    let placeholders = names.placeholders(eventfold);
    let mut files = Vec::with_capacity(FILES.len());
    for file in FILES {
        let text = fill(file.text, &placeholders);
        if let Some(left) = text.find("{{") {
            let end = text[left..].find("}}").map_or(left + 2, |e| left + e + 2);
            return Err(refuse(format!(
                "{}: {} has no value (a bug in eventfold new)",
                file.path,
                &text[left..end]
            )));
        }
        let path = root.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| failed(&path, e))?;
        if file.executable {
            make_executable(&path).map_err(|e| failed(&path, e))?;
        }
        files.push(PathBuf::from(file.path));
    }
    let formatted = format_rust(root, &files);
    Ok(Written {
        root: root.to_path_buf(),
        files,
        formatted,
    })
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Lays the Rust files out with rustfmt (names of other lengths move line breaks); false if
/// rustfmt is not there or refused.
fn format_rust(root: &Path, files: &[PathBuf]) -> bool {
    let sources: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .map(|f| root.join(f))
        .collect();
    std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(&sources)
        .current_dir(root)
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_aggregate() {
        let names = Names::new("book-club", "BookLoan", None).expect("valid");
        let filled: std::collections::BTreeMap<_, _> = names
            .placeholders(&Dependency::Version("0.1".into()))
            .into_iter()
            .collect();
        assert_eq!(filled["{{service_rs}}"], "book_club");
        assert_eq!(filled["{{Aggregates}}"], "BookLoans");
        assert_eq!(filled["{{aggregates}}"], "book loans");
        assert_eq!(filled["{{aggregate_snake}}"], "book_loan");
        assert_eq!(filled["{{aggregates_kebab}}"], "book-loans");
        assert_eq!(filled["{{AGGREGATES}}"], "BOOK_LOANS");
        assert_eq!(filled["{{eventfold}}"], "\"0.1\"");
    }

    #[test]
    fn plurals_follow_the_common_rules() {
        for (one, many) in [
            ("Book", "Books"),
            ("Policy", "Policies"),
            ("Day", "Days"),
            ("Box", "Boxes"),
            ("Match", "Matches"),
            ("Address", "Addresses"),
        ] {
            assert_eq!(plural_of(one), many);
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_rule() {
        assert!(Names::new("Loans", "Book", None).is_err());
        assert!(Names::new("loans-", "Book", None).is_err());
        assert!(Names::new("eventfold", "Book", None).is_err());
        assert!(Names::new("loans", "book", None).is_err());
        assert!(Names::new("loans", "Book-Loan", None).is_err());
        assert!(Names::new("loans", "Sheep", Some("Sheep")).is_err());
        assert!(Names::new("loans", "Sheep", Some("Flock")).is_ok());
    }

    #[test]
    fn dependencies_read_and_write_as_toml() {
        let git: Dependency = "git:https://example.com/eventfold.git#v0.1.0"
            .parse()
            .expect("git");
        assert_eq!(
            git.toml("cli"),
            r#"{ git = "https://example.com/eventfold.git", rev = "v0.1.0" }"#
        );
        assert_eq!(
            git.to_string(),
            "git:https://example.com/eventfold.git#v0.1.0"
        );
        assert!("path:/nowhere".parse::<Dependency>().is_err());
        assert!("svn:x".parse::<Dependency>().is_err());
        assert!("version:".parse::<Dependency>().is_err());
    }

    #[test]
    fn every_placeholder_of_every_file_is_filled() {
        let names = Names::new("book-club", "BookLoan", None).expect("valid");
        let placeholders = names.placeholders(&Dependency::Version("0.1".into()));
        for file in FILES {
            let text = fill(file.text, &placeholders);
            assert!(!text.contains("{{"), "{}: {}", file.path, text);
        }
    }

    /// examples/orders was written by `eventfold new examples/orders --aggregate Order`, then
    /// given its domain, routes, read models, a reactor, demo, tests and README; the rest of its
    /// wiring is still exactly what the generator writes.
    #[test]
    fn the_example_keeps_the_wiring_eventfold_new_writes() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders");
        let names = Names::new("orders", "Order", None).expect("valid");
        let placeholders = names.placeholders(&Dependency::Version("0.1".into()));
        let edited = [
            "Cargo.toml",
            "README.md",
            "domain/",
            "functions/Cargo.toml",
            "functions/src/lib.rs",
            "functions/tests/",
            "infra/",
        ];
        let mut compared = 0;
        for file in FILES {
            if edited.iter().any(|e| file.path.starts_with(e)) {
                continue;
            }
            let kept = std::fs::read_to_string(example.join(file.path))
                .unwrap_or_else(|e| panic!("examples/orders/{}: {e}", file.path));
            assert_eq!(
                kept,
                fill(file.text, &placeholders),
                "examples/orders/{}",
                file.path
            );
            compared += 1;
        }
        assert!(compared >= 15, "{compared} files compared");
    }

    #[test]
    fn a_folder_with_files_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("scaffold-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("keep"), "mine").expect("file");
        let names = Names::new("loans", "Book", None).expect("valid");
        let refused = write(&dir, &names, &Dependency::Version("0.1".into()));
        assert!(refused.is_err());
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1);
        std::fs::remove_dir_all(&dir).expect("cleaned");
    }
}
