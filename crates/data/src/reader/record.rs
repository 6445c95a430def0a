//! One corpus record, parsed and validated. Valid records take a fast path
//! (serde derive, borrowing strings from the mapped file where they have no
//! escapes); a record that fails it is parsed again as a `serde_json::Value`
//! to name the exact field and cause, which derive errors do not.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The layout of the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// SynSQL-2.5M `data.json`: db_id, sql_complexity, question_style,
    /// question, external_knowledge, cot, sql.
    Synsql,
    /// Spider `dev.json` / `train_spider.json`: question, query, db_id.
    Spider,
    /// BIRD `dev.json` / `train.json`: question, evidence, SQL, db_id, and an
    /// optional difficulty (simple/moderate/challenging).
    Bird,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Synsql => "synsql",
            Format::Spider => "spider",
            Format::Bird => "bird",
        }
    }
}

/// `Display` writes the name `as_str` gives, so the two never differ.
macro_rules! display_as_str {
    ($($name:ty),+) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

display_as_str!(Format, Tier);

/// SynSQL's `sql_complexity`: the curriculum tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Simple,
    Moderate,
    Complex,
    HighlyComplex,
}

impl Tier {
    pub const ALL: [Tier; 4] = [
        Tier::Simple,
        Tier::Moderate,
        Tier::Complex,
        Tier::HighlyComplex,
    ];

    /// The spelling SynSQL uses, also the one written to Parquet.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Simple => "Simple",
            Tier::Moderate => "Moderate",
            Tier::Complex => "Complex",
            Tier::HighlyComplex => "Highly Complex",
        }
    }
}

impl FromStr for Tier {
    type Err = String;

    /// Any case; spaces, `_` and `-` are ignored (`highly_complex` works).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // SynSQL's own spellings first: this runs once per record.
        if let Some(&tier) = Tier::ALL.iter().find(|t| t.as_str() == s) {
            return Ok(tier);
        }
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "simple" => Ok(Tier::Simple),
            "moderate" => Ok(Tier::Moderate),
            "complex" => Ok(Tier::Complex),
            "highlycomplex" => Ok(Tier::HighlyComplex),
            _ => Err(format!(
                "unknown complexity `{s}` (expected Simple, Moderate, Complex or Highly Complex)"
            )),
        }
    }
}

impl Serialize for Tier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a record was rejected; `--skip-invalid` counts records per cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidCause {
    /// The record is not valid JSON.
    MalformedJson,
    /// The record is JSON but not an object.
    NotAnObject,
    MissingField,
    /// A field holds another JSON type than the format requires.
    WrongType,
    /// `question`, `sql` or `db_id` is empty.
    EmptyField,
    /// `db_id` is not in the tables file.
    UnknownDbId,
    /// `sql_complexity` is not one of the four tiers.
    UnknownComplexity,
    /// `--databases` was given and the record's database file is missing.
    MissingDatabase,
    /// The file ends inside a record.
    Truncated,
    /// Bytes that are not part of the array (between records or after it).
    TrailingData,
}

impl InvalidCause {
    pub const ALL: [InvalidCause; 10] = [
        InvalidCause::MalformedJson,
        InvalidCause::NotAnObject,
        InvalidCause::MissingField,
        InvalidCause::WrongType,
        InvalidCause::EmptyField,
        InvalidCause::UnknownDbId,
        InvalidCause::UnknownComplexity,
        InvalidCause::MissingDatabase,
        InvalidCause::Truncated,
        InvalidCause::TrailingData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvalidCause::MalformedJson => "malformed_json",
            InvalidCause::NotAnObject => "not_an_object",
            InvalidCause::MissingField => "missing_field",
            InvalidCause::WrongType => "wrong_type",
            InvalidCause::EmptyField => "empty_field",
            InvalidCause::UnknownDbId => "unknown_db_id",
            InvalidCause::UnknownComplexity => "unknown_complexity",
            InvalidCause::MissingDatabase => "missing_database",
            InvalidCause::Truncated => "truncated",
            InvalidCause::TrailingData => "trailing_data",
        }
    }
}

/// A rejected record: the cause, the field (`<record>` for the whole
/// record) and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub cause: InvalidCause,
    pub field: String,
    pub message: String,
}

impl RecordError {
    pub fn new(cause: InvalidCause, field: &str, message: impl Into<String>) -> Self {
        Self {
            cause,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A record in the common shape of all formats. Strings borrow from the
/// file where JSON needed no unescaping.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub db_id: Cow<'a, str>,
    /// SynSQL's complexity; `None` for Spider and BIRD.
    pub tier: Option<Tier>,
    /// BIRD's own difficulty label (simple/moderate/challenging), kept as is.
    pub difficulty: Option<Cow<'a, str>>,
    pub question_style: Option<Cow<'a, str>>,
    pub question: Cow<'a, str>,
    /// BIRD's `evidence`; empty when there is none.
    pub external_knowledge: Cow<'a, str>,
    pub sql: Cow<'a, str>,
    /// SynSQL's chain of thought, when present.
    pub cot: Option<Cow<'a, str>>,
}

/// `null` reads as an empty string (SynSQL leaves `external_knowledge`
/// empty, some exports write null); the field must still be present.
fn nullable_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    Ok(Option::<Cow<'a, str>>::deserialize(d)?.unwrap_or_default())
}

/// A string (or, inside an `Option`, null) that is type-checked but not
/// kept: SynSQL's chain of thought is most of each record and is dropped
/// unless asked for, so it should not be copied.
struct SkippedString;

impl<'de> Deserialize<'de> for SkippedString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Check;
        impl serde::de::Visitor<'_> for Check {
            type Value = SkippedString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SkippedString, E> {
                Ok(SkippedString)
            }
        }
        deserializer.deserialize_str(Check)
    }
}

/// `C`: `Cow<str>` to keep the chain of thought, [`SkippedString`] to drop
/// it, `IgnoredAny` to drop it when its type is known to be right.
#[derive(Deserialize)]
struct SynsqlRow<'a, C> {
    #[serde(borrow)]
    db_id: Cow<'a, str>,
    #[serde(borrow)]
    sql_complexity: Cow<'a, str>,
    #[serde(borrow)]
    question_style: Cow<'a, str>,
    #[serde(borrow)]
    question: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "nullable_str")]
    external_knowledge: Cow<'a, str>,
    // A missing `Option` field reads as `None` without `default`.
    cot: Option<C>,
    #[serde(borrow)]
    sql: Cow<'a, str>,
}

#[derive(Deserialize)]
struct SpiderRow<'a> {
    #[serde(borrow)]
    db_id: Cow<'a, str>,
    #[serde(borrow)]
    question: Cow<'a, str>,
    #[serde(borrow)]
    query: Cow<'a, str>,
}

#[derive(Deserialize)]
struct BirdRow<'a> {
    #[serde(borrow)]
    db_id: Cow<'a, str>,
    #[serde(borrow)]
    question: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "nullable_str")]
    evidence: Cow<'a, str>,
    #[serde(borrow, rename = "SQL")]
    sql: Cow<'a, str>,
    #[serde(borrow, default)]
    difficulty: Option<Cow<'a, str>>,
}

#[derive(Clone, Copy)]
enum Kind {
    String,
    NullableString,
}

/// The fields each format requires, in the order they are checked.
fn required_fields(format: Format) -> &'static [(&'static str, Kind)] {
    match format {
        Format::Synsql => &[
            ("db_id", Kind::String),
            ("sql_complexity", Kind::String),
            ("question_style", Kind::String),
            ("question", Kind::String),
            ("external_knowledge", Kind::NullableString),
            ("sql", Kind::String),
        ],
        Format::Spider => &[
            ("db_id", Kind::String),
            ("question", Kind::String),
            ("query", Kind::String),
        ],
        Format::Bird => &[
            ("db_id", Kind::String),
            ("question", Kind::String),
            ("evidence", Kind::NullableString),
            ("SQL", Kind::String),
        ],
    }
}

fn optional_fields(format: Format) -> &'static [&'static str] {
    match format {
        Format::Synsql => &["cot"],
        Format::Spider => &[],
        Format::Bird => &["difficulty"],
    }
}

/// Parses and validates the JSON of one record (its structure and field
/// types, non-empty question/SQL/db_id and, for SynSQL, the complexity).
/// Whether its `db_id` is known is the caller's check. SynSQL's `cot` is
/// type-checked always and kept only with `keep_cot`.
pub fn parse_record(
    bytes: &[u8],
    format: Format,
    keep_cot: bool,
) -> Result<Record<'_>, RecordError> {
    parse_scanned_record(bytes, format, keep_cot, false)
}

/// [`parse_record`] for a record whose values the scanner saw to be strings
/// and nulls only ([`crate::reader::Span::strings_only`]): a dropped `cot`
/// then needs no type check and is skipped without being unescaped, which
/// saves a sixth of the parsing time on SynSQL.
pub fn parse_scanned_record(
    bytes: &[u8],
    format: Format,
    keep_cot: bool,
    strings_only: bool,
) -> Result<Record<'_>, RecordError> {
    // Checking UTF-8 once over the whole record is cheaper than serde_json
    // checking each string it returns; `from_str` then trusts the text.
    let text = std::str::from_utf8(bytes).map_err(|e| explain(bytes, format, &e))?;
    let record = match format {
        Format::Synsql if keep_cot => {
            serde_json::from_str::<SynsqlRow<Cow<str>>>(text).map(|r| Record {
                db_id: r.db_id,
                tier: None,
                difficulty: Some(r.sql_complexity),
                question_style: Some(r.question_style),
                question: r.question,
                external_knowledge: r.external_knowledge,
                sql: r.sql,
                cot: r.cot,
            })
        }
        Format::Synsql if strings_only => {
            serde_json::from_str::<SynsqlRow<IgnoredAny>>(text).map(|r| Record {
                db_id: r.db_id,
                tier: None,
                difficulty: Some(r.sql_complexity),
                question_style: Some(r.question_style),
                question: r.question,
                external_knowledge: r.external_knowledge,
                sql: r.sql,
                cot: None,
            })
        }
        Format::Synsql => serde_json::from_str::<SynsqlRow<SkippedString>>(text).map(|r| Record {
            db_id: r.db_id,
            tier: None,
            difficulty: Some(r.sql_complexity),
            question_style: Some(r.question_style),
            question: r.question,
            external_knowledge: r.external_knowledge,
            sql: r.sql,
            cot: None,
        }),
        Format::Spider => serde_json::from_str::<SpiderRow>(text).map(|r| Record {
            db_id: r.db_id,
            tier: None,
            difficulty: None,
            question_style: None,
            question: r.question,
            external_knowledge: Cow::Borrowed(""),
            sql: r.query,
            cot: None,
        }),
        Format::Bird => serde_json::from_str::<BirdRow>(text).map(|r| Record {
            db_id: r.db_id,
            tier: None,
            difficulty: r.difficulty,
            question_style: None,
            question: r.question,
            external_knowledge: r.evidence,
            sql: r.sql,
            cot: None,
        }),
    };
    let mut record = record.map_err(|e| explain(bytes, format, &e))?;
    if format == Format::Synsql {
        // The complexity travelled in `difficulty` to keep one constructor above.
        let complexity = record.difficulty.take().unwrap_or_default();
        record.tier = Some(complexity.parse().map_err(|message| {
            RecordError::new(InvalidCause::UnknownComplexity, "sql_complexity", message)
        })?);
    }
    let sql_field = match format {
        Format::Synsql => "sql",
        Format::Spider => "query",
        Format::Bird => "SQL",
    };
    for (field, value) in [
        ("db_id", &record.db_id),
        ("question", &record.question),
        (sql_field, &record.sql),
    ] {
        if value.trim().is_empty() {
            return Err(RecordError::new(
                InvalidCause::EmptyField,
                field,
                "must not be empty",
            ));
        }
    }
    Ok(record)
}

/// Works out which field made the fast path fail.
fn explain(bytes: &[u8], format: Format, fast_error: &dyn fmt::Display) -> RecordError {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return RecordError::new(
                InvalidCause::MalformedJson,
                "<record>",
                format!("invalid JSON: {e}"),
            )
        }
    };
    let Some(object) = value.as_object() else {
        return RecordError::new(
            InvalidCause::NotAnObject,
            "<record>",
            format!("expected an object, found {}", json_kind(&value)),
        );
    };
    for &(field, expected) in required_fields(format) {
        match (object.get(field), expected) {
            (None, _) => {
                return RecordError::new(InvalidCause::MissingField, field, "missing field")
            }
            (Some(Value::String(_)), _) | (Some(Value::Null), Kind::NullableString) => {}
            (Some(other), _) => {
                return RecordError::new(
                    InvalidCause::WrongType,
                    field,
                    format!("expected a string, found {}", json_kind(other)),
                )
            }
        }
    }
    for &field in optional_fields(format) {
        match object.get(field) {
            None | Some(Value::String(_)) | Some(Value::Null) => {}
            Some(other) => {
                return RecordError::new(
                    InvalidCause::WrongType,
                    field,
                    format!("expected a string or null, found {}", json_kind(other)),
                )
            }
        }
    }
    RecordError::new(
        InvalidCause::MalformedJson,
        "<record>",
        fast_error.to_string(),
    )
}

/// A JSON value's type, as error messages name it.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"db_id":"shop","sql_complexity":"highly complex","question_style":"Formal",
        "question":"How many?","external_knowledge":"","cot":"think","sql":"SELECT\n1"}"#;

    #[test]
    fn synsql_record_parses_with_any_case_tier() {
        let r = parse_record(GOOD.as_bytes(), Format::Synsql, true).unwrap();
        assert_eq!(r.tier, Some(Tier::HighlyComplex));
        assert_eq!(r.difficulty, None);
        assert_eq!(r.sql, "SELECT\n1");
        assert_eq!(r.cot.as_deref(), Some("think"));
        assert_eq!(r.question_style.as_deref(), Some("Formal"));
        assert!(matches!(r.db_id, Cow::Borrowed(_)), "plain strings borrow");
    }

    #[test]
    fn each_defect_names_its_field_and_cause() {
        let cases = [
            (
                GOOD.replace(r#""sql":"SELECT\n1""#, r#""x":1"#),
                InvalidCause::MissingField,
                "sql",
            ),
            (
                GOOD.replace(r#""question":"How many?""#, r#""question":5"#),
                InvalidCause::WrongType,
                "question",
            ),
            (
                GOOD.replace(r#""cot":"think""#, r#""cot":[1]"#),
                InvalidCause::WrongType,
                "cot",
            ),
            (
                GOOD.replace("highly complex", "Medium"),
                InvalidCause::UnknownComplexity,
                "sql_complexity",
            ),
            (
                GOOD.replace("How many?", " "),
                InvalidCause::EmptyField,
                "question",
            ),
            (
                GOOD.replace("\"Formal\",", "\"Formal\""),
                InvalidCause::MalformedJson,
                "<record>",
            ),
            ("[1]".to_string(), InvalidCause::NotAnObject, "<record>"),
        ];
        for (text, cause, field) in cases {
            let err = parse_record(text.as_bytes(), Format::Synsql, true).unwrap_err();
            assert_eq!(
                (err.cause, err.field.as_str()),
                (cause, field),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn dropped_cot_is_still_type_checked() {
        let r = parse_record(GOOD.as_bytes(), Format::Synsql, false).unwrap();
        assert_eq!(r.cot, None);
        let skipped = parse_scanned_record(GOOD.as_bytes(), Format::Synsql, false, true).unwrap();
        assert_eq!(skipped, r, "skipping the cot changes nothing else");
        let bad = GOOD.replace(r#""cot":"think""#, r#""cot":7"#);
        let err = parse_record(bad.as_bytes(), Format::Synsql, false).unwrap_err();
        assert_eq!(
            (err.cause, err.field.as_str()),
            (InvalidCause::WrongType, "cot")
        );
    }

    #[test]
    fn null_external_knowledge_is_empty_but_absence_is_an_error() {
        let text = GOOD.replace(r#""external_knowledge":"""#, r#""external_knowledge":null"#);
        let r = parse_record(text.as_bytes(), Format::Synsql, true).unwrap();
        assert_eq!(r.external_knowledge, "");
        let err = parse_record(
            GOOD.replace(r#""external_knowledge":"","#, "").as_bytes(),
            Format::Synsql,
            true,
        )
        .unwrap_err();
        assert_eq!(err.field, "external_knowledge");
    }

    #[test]
    fn spider_and_bird_records_map_to_the_common_shape() {
        let spider = r#"{"db_id":"concert_singer","query":"SELECT count(*) FROM singer","query_toks":["x"],"question":"How many singers?"}"#;
        let r = parse_record(spider.as_bytes(), Format::Spider, false).unwrap();
        assert_eq!(
            (r.tier, r.sql.as_ref()),
            (None, "SELECT count(*) FROM singer")
        );
        let bird = r#"{"question_id":0,"db_id":"cf","question":"Q?","evidence":"hint","SQL":"SELECT 1","difficulty":"challenging"}"#;
        let r = parse_record(bird.as_bytes(), Format::Bird, false).unwrap();
        assert_eq!(r.difficulty.as_deref(), Some("challenging"));
        assert_eq!(r.external_knowledge, "hint");
        let err = parse_record(
            r#"{"db_id":"cf","question":"Q?","evidence":""}"#.as_bytes(),
            Format::Bird,
            false,
        )
        .unwrap_err();
        assert_eq!(
            (err.cause, err.field.as_str()),
            (InvalidCause::MissingField, "SQL")
        );
    }

    #[test]
    fn tiers_parse_in_any_spelling() {
        for s in [
            "Highly Complex",
            "HIGHLY COMPLEX",
            "highly_complex",
            "Highly-Complex",
        ] {
            assert_eq!(s.parse::<Tier>(), Ok(Tier::HighlyComplex));
        }
        assert!("Medium".parse::<Tier>().is_err());
        let json = serde_json::to_string(&Tier::HighlyComplex).unwrap();
        assert_eq!(json, "\"Highly Complex\"");
        assert_eq!(
            serde_json::from_str::<Tier>("\"simple\"").unwrap(),
            Tier::Simple
        );
    }
}
