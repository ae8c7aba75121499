//! `#[derive(DomainEvent)]`: the event type of each variant is the name serde writes for it, so
//! the two cannot drift apart, and an enum whose events could be written but not read back does
//! not compile.
//!
//! What it checks, at compile time:
//! - the enum is adjacently tagged, `#[serde(tag = "type", content = "data")]`: the tag is the
//!   stored event type, the content the payload;
//! - every variant's stored name (after `rename` and `rename_all`) is a valid event type and
//!   unique;
//! - every variant has a payload the store can hold: named fields, one unnamed field (its type
//!   must serialize as an object; the runtime's round-trip check catches one that does not), or
//!   none at all (a unit variant, stored as `{}`);
//! - nothing serde would skip or reinterpret (`skip`, `other`, `untagged`).
//!
//! `#[event(schema = N)]` on a variant sets the schema version its payload is written in.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitInt, LitStr, parse_macro_input};

/// Implements `eventfold::aggregate::DomainEvent` from the enum's serde attributes.
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The longest event type the store accepts.
const MAX_EVENT_TYPE_LEN: usize = 100;

/// A variant as it will be stored.
struct StoredVariant {
    ident: syn::Ident,
    event_type: String,
    schema: u32,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "DomainEvent is derived for enums: one variant per fact",
        ));
    };
    let container = SerdeContainer::read(input)?;
    let mut variants: Vec<StoredVariant> = Vec::with_capacity(data.variants.len());
    for variant in &data.variants {
        check_shape(variant)?;
        let serde = SerdeVariant::read(variant)?;
        let event_type = serde
            .rename
            .unwrap_or_else(|| container.rename_all.apply(&variant.ident.to_string()));
        if let Err(why) = valid_event_type(&event_type) {
            return Err(syn::Error::new_spanned(
                &variant.ident,
                format!("`{event_type}` is not a valid event type: {why}"),
            ));
        }
        if let Some(earlier) = variants.iter().find(|v| v.event_type == event_type) {
            return Err(syn::Error::new_spanned(
                &variant.ident,
                format!(
                    "`{}` and `{}` are both stored as `{event_type}`",
                    earlier.ident, variant.ident
                ),
            ));
        }
        variants.push(StoredVariant {
            ident: variant.ident.clone(),
            event_type,
            schema: schema_of(variant)?,
        });
    }
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let types = variants
        .iter()
        .map(|v| LitStr::new(&v.event_type, Span::call_site()));
    let type_arms = variants.iter().map(|v| {
        let (ident, text) = (&v.ident, &v.event_type);
        quote! { Self::#ident { .. } => #text }
    });
    let schema_fn = variants.iter().any(|v| v.schema != 1).then(|| {
        let arms = variants.iter().map(|v| {
            let (ident, schema) = (&v.ident, v.schema);
            quote! { Self::#ident { .. } => #schema }
        });
        quote! {
            fn schema_version(&self) -> u32 {
                match self { #(#arms,)* }
            }
        }
    });
    Ok(quote! {
        impl #impl_generics ::eventfold::aggregate::DomainEvent for #name #type_generics #where_clause {
            const TYPES: &'static [&'static str] = &[#(#types),*];

            fn event_type(&self) -> &'static str {
                match self { #(#type_arms,)* }
            }

            #schema_fn
        }
    })
}

/// Refuses payload shapes the store cannot hold as an object.
fn check_shape(variant: &syn::Variant) -> syn::Result<()> {
    match &variant.fields {
        Fields::Named(_) | Fields::Unit => Ok(()),
        Fields::Unnamed(fields) if fields.unnamed.len() == 1 => Ok(()),
        Fields::Unnamed(_) => Err(syn::Error::new_spanned(
            variant,
            format!(
                "`{}` would be stored as an array; name its fields (`{} {{ .. }}`) so its \
                 payload is an object",
                variant.ident, variant.ident
            ),
        )),
    }
}

/// `[A-Za-z][A-Za-z0-9_.]{0,99}`, the store's rule for event types.
fn valid_event_type(text: &str) -> Result<(), &'static str> {
    let mut chars = text.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err("it must start with an ASCII letter");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        return Err("only ASCII letters, digits, `_` and `.` may follow");
    }
    if text.len() > MAX_EVENT_TYPE_LEN {
        return Err("it is longer than 100 characters");
    }
    Ok(())
}

fn schema_of(variant: &syn::Variant) -> syn::Result<u32> {
    let mut schema = 1;
    for attr in variant.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("schema") {
                let value: LitInt = meta.value()?.parse()?;
                schema = value.base10_parse()?;
                if schema == 0 {
                    return Err(meta.error("schema versions start at 1"));
                }
                Ok(())
            } else {
                Err(meta.error("expected `schema = N`"))
            }
        })?;
    }
    Ok(schema)
}

/// The serde attributes of the enum that decide how it is stored.
struct SerdeContainer {
    rename_all: RenameRule,
}

impl SerdeContainer {
    fn read(input: &DeriveInput) -> syn::Result<Self> {
        let (mut tag, mut content, mut rename_all) = (None, None, RenameRule::None);
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(ToString::to_string);
                match key.as_deref() {
                    Some("tag") => tag = Some(string_value(&meta)?),
                    Some("content") => content = Some(string_value(&meta)?),
                    Some("rename_all") => rename_all = RenameRule::parse(&meta)?,
                    Some("untagged") => {
                        return Err(meta.error(
                            "an untagged enum stores no event type; use #[serde(tag = \"type\", \
                             content = \"data\")]",
                        ));
                    }
                    _ => skip_value(&meta)?,
                }
                Ok(())
            })?;
        }
        match (tag.as_deref(), content.as_deref()) {
            (Some("type"), Some("data")) => Ok(Self { rename_all }),
            _ => Err(syn::Error::new_spanned(
                &input.ident,
                "a DomainEvent enum is stored adjacently tagged: add \
                 #[serde(tag = \"type\", content = \"data\")] (the tag is the event type, the \
                 content its payload)",
            )),
        }
    }
}

/// The serde attributes of one variant that decide how it is stored.
struct SerdeVariant {
    rename: Option<String>,
}

impl SerdeVariant {
    fn read(variant: &syn::Variant) -> syn::Result<Self> {
        let mut rename = None;
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(ToString::to_string);
                match key.as_deref() {
                    Some("rename") => {
                        rename = Some(one_direction(&meta, "rename")?);
                        Ok(())
                    }
                    Some(
                        refused @ ("skip" | "skip_serializing" | "skip_deserializing" | "other"
                        | "untagged"),
                    ) => Err(meta.error(format!(
                        "#[serde({refused})] on an event variant means an event that is written \
                         is not read back as itself"
                    ))),
                    _ => skip_value(&meta),
                }
            })?;
        }
        Ok(Self { rename })
    }
}

fn string_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<String> {
    let value: LitStr = meta.value()?.parse()?;
    Ok(value.value())
}

/// `rename = "x"`, or `rename(serialize = "x", deserialize = "x")` with both the same: an event
/// is read under the name it was written with.
fn one_direction(meta: &syn::meta::ParseNestedMeta<'_>, what: &str) -> syn::Result<String> {
    if meta.input.peek(syn::Token![=]) {
        return string_value(meta);
    }
    let (mut serialize, mut deserialize) = (None, None);
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("serialize") {
            serialize = Some(string_value(&inner)?);
        } else if inner.path.is_ident("deserialize") {
            deserialize = Some(string_value(&inner)?);
        } else {
            skip_value(&inner)?;
        }
        Ok(())
    })?;
    match (serialize, deserialize) {
        (Some(s), Some(d)) if s == d => Ok(s),
        _ => Err(meta.error(format!(
            "{what} must write and read one name, or events are written under a name they are \
             not read by"
        ))),
    }
}

/// Consumes whatever value an attribute we do not interpret carries.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

/// serde's `rename_all` rules, as they apply to variant names (which Rust writes in PascalCase).
#[derive(Clone, Copy)]
enum RenameRule {
    None,
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl RenameRule {
    fn parse(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Self> {
        let rule = one_direction(meta, "rename_all")?;
        Ok(match rule.as_str() {
            "lowercase" => Self::Lower,
            "UPPERCASE" => Self::Upper,
            "PascalCase" => Self::Pascal,
            "camelCase" => Self::Camel,
            "snake_case" => Self::Snake,
            "SCREAMING_SNAKE_CASE" => Self::ScreamingSnake,
            "kebab-case" => Self::Kebab,
            "SCREAMING-KEBAB-CASE" => Self::ScreamingKebab,
            other => return Err(meta.error(format!("unknown rename_all rule {other:?}"))),
        })
    }

    fn apply(self, variant: &str) -> String {
        let separated = |separator: char| {
            let mut out = String::with_capacity(variant.len() + 4);
            for (i, c) in variant.char_indices() {
                if i > 0 && c.is_uppercase() {
                    out.push(separator);
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        };
        match self {
            Self::None | Self::Pascal => variant.to_owned(),
            Self::Lower => variant.to_ascii_lowercase(),
            Self::Upper => variant.to_ascii_uppercase(),
            Self::Camel => {
                let mut chars = variant.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_lowercase().to_string() + chars.as_str()
                })
            }
            Self::Snake => separated('_'),
            Self::ScreamingSnake => separated('_').to_ascii_uppercase(),
            Self::Kebab => separated('-'),
            Self::ScreamingKebab => separated('-').to_ascii_uppercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(input: DeriveInput) -> String {
        match expand(&input) {
            Ok(tokens) => panic!("expected a compile error, got {tokens}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn event_types_are_serde_names() {
        let input: DeriveInput = syn::parse_quote! {
            #[derive(Serialize)]
            #[serde(tag = "type", content = "data", rename_all = "snake_case", deny_unknown_fields)]
            enum Loan {
                BookLent { member: String },
                #[serde(rename = "Returned")]
                BookReturned,
                #[event(schema = 2)]
                FineCharged(Fine),
            }
        };
        let tokens = expand(&input).expect("expands").to_string();
        assert!(
            tokens.contains(r#"& ["book_lent" , "Returned" , "fine_charged"]"#),
            "{tokens}"
        );
        assert!(tokens.contains("fn schema_version"), "{tokens}");
        assert!(
            tokens.contains(r#"Self :: BookReturned { .. } => "Returned""#),
            "{tokens}"
        );
    }

    #[test]
    fn an_enum_that_is_not_adjacently_tagged_does_not_compile() {
        let message = error_of(syn::parse_quote! {
            #[serde(tag = "kind")]
            enum Loan { BookLent { member: String } }
        });
        assert!(
            message.contains(r#"#[serde(tag = "type", content = "data")]"#),
            "{message}"
        );
        let message = error_of(syn::parse_quote! {
            #[serde(untagged)]
            enum Loan { BookLent { member: String } }
        });
        assert!(message.contains("untagged"), "{message}");
    }

    #[test]
    fn shapes_that_cannot_be_read_back_do_not_compile() {
        let message = error_of(syn::parse_quote! {
            #[serde(tag = "type", content = "data")]
            enum Loan { Lent(String, u32) }
        });
        assert!(message.contains("stored as an array"), "{message}");
        let message = error_of(syn::parse_quote! {
            #[serde(tag = "type", content = "data")]
            enum Loan { Lent { member: String }, #[serde(other)] Unknown }
        });
        assert!(message.contains("not read back"), "{message}");
        let message = error_of(syn::parse_quote! {
            #[serde(tag = "type", content = "data")]
            enum Loan { #[serde(rename(serialize = "A", deserialize = "B"))] Lent {} }
        });
        assert!(message.contains("one name"), "{message}");
    }

    #[test]
    fn invalid_and_duplicate_event_types_do_not_compile() {
        let message = error_of(syn::parse_quote! {
            #[serde(tag = "type", content = "data", rename_all = "kebab-case")]
            enum Loan { BookLent {} }
        });
        assert!(
            message.contains("`book-lent` is not a valid event type"),
            "{message}"
        );
        let message = error_of(syn::parse_quote! {
            #[serde(tag = "type", content = "data")]
            enum Loan { BookLent {}, #[serde(rename = "BookLent")] Again {} }
        });
        assert!(message.contains("both stored as `BookLent`"), "{message}");
    }

    #[test]
    fn rename_rules_follow_serde() {
        let cases = [
            (RenameRule::Lower, "bookreturned"),
            (RenameRule::Upper, "BOOKRETURNED"),
            (RenameRule::Camel, "bookReturned"),
            (RenameRule::Snake, "book_returned"),
            (RenameRule::ScreamingSnake, "BOOK_RETURNED"),
            (RenameRule::Kebab, "book-returned"),
            (RenameRule::ScreamingKebab, "BOOK-RETURNED"),
            (RenameRule::Pascal, "BookReturned"),
        ];
        for (rule, expected) in cases {
            assert_eq!(rule.apply("BookReturned"), expected);
        }
    }
}
