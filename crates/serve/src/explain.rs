//! Turns a failed execution into a sentence a person can act on. SQLite's
//! messages are terse (`no such column: T2.nmae`); the page shows this text
//! and keeps SQLite's own words as the detail.

use crate::backend::RunError;

/// Whose SQL failed: it changes the sentence, not the meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Model,
    User,
}

impl Author {
    fn subject(self) -> &'static str {
        match self {
            Author::Model => "The model's SQL",
            Author::User => "Your SQL",
        }
    }
}

/// A machine-readable code and a plain-language message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub code: &'static str,
    pub message: String,
}

/// `sql` is the statement that failed; SQLite (through rusqlite) repeats it
/// in its message as `… in <sql> at offset N`, which is cut from the sentence.
pub fn explain(error: &RunError, author: Author, sql: &str) -> Explanation {
    let who = author.subject();
    match error {
        RunError::Refused(reason) => Explanation {
            code: "refused",
            message: format!(
                "{who} was not run: only one read-only SELECT statement may run here ({reason})."
            ),
        },
        RunError::TimedOut(limit) => Explanation {
            code: "timed_out",
            message: format!(
                "{who} ran for longer than {} and was stopped; try a narrower query.",
                seconds(limit.as_secs_f64())
            ),
        },
        RunError::Unavailable(detail) => Explanation {
            code: "database_unavailable",
            message: format!("The database could not be opened: {detail}"),
        },
        RunError::Sql(message) => Explanation {
            code: "sql_error",
            message: explain_sqlite(strip_location(message, sql), who),
        },
    }
}

fn seconds(value: f64) -> String {
    if value >= 1.0 {
        format!("{value:.0} s")
    } else {
        format!("{:.0} ms", value * 1000.0)
    }
}

/// Cuts `" in <sql> at offset N"` from the end of a SQLite message: exactly
/// when the runner quotes `sql` unchanged, else from the first `" in "`.
pub fn strip_location<'m>(message: &'m str, sql: &str) -> &'m str {
    let Some(at) = message.rfind(" at offset ") else {
        return message;
    };
    let offset = &message[at + " at offset ".len()..];
    if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return message;
    }
    let head = &message[..at];
    if let Some(stripped) = head.strip_suffix(sql).and_then(|h| h.strip_suffix(" in ")) {
        return stripped;
    }
    head.find(" in ").map_or(message, |i| &message[..i])
}

fn explain_sqlite(message: &str, who: &str) -> String {
    let message = message.trim();
    let after = |prefix: &str| message.strip_prefix(prefix).map(str::trim);
    if let Some(column) = after("no such column:") {
        return format!("{who} refers to a column that does not exist: {column}.");
    }
    if let Some(table) = after("no such table:") {
        return format!("{who} refers to a table that does not exist: {table}.");
    }
    if let Some(column) = after("ambiguous column name:") {
        return format!(
            "{who} names the column {column}, which more than one table in the query has; \
             write it as table.column."
        );
    }
    if let Some(function) = after("no such function:") {
        return format!("{who} calls a function SQLite does not have: {function}.");
    }
    if let Some(function) = after("wrong number of arguments to function") {
        return format!("{who} calls {function} with the wrong number of arguments.");
    }
    if let Some(rest) = after("near") {
        if let Some(token) = rest.strip_suffix(": syntax error") {
            return format!("{who} has a syntax error near {}.", token.trim());
        }
    }
    if message == "incomplete input" {
        return format!("{who} is incomplete: it stops before the statement ends.");
    }
    if message.starts_with("misuse of aggregate") {
        return format!(
            "{who} uses an aggregate such as COUNT or SUM where it is not allowed \
             (in WHERE instead of HAVING, or nested): {message}."
        );
    }
    if message.contains("do not have the same number of result columns") {
        return format!(
            "{who} combines two SELECTs (UNION, INTERSECT or EXCEPT) that return \
             different numbers of columns."
        );
    }
    format!("SQLite could not run {}: {message}.", lowercase_first(who))
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sql(message: &str, author: Author) -> String {
        explain(&RunError::Sql(message.into()), author, "SELECT 1").message
    }

    #[test]
    fn common_sqlite_messages_become_sentences() {
        assert_eq!(
            sql("no such column: T2.nmae", Author::Model),
            "The model's SQL refers to a column that does not exist: T2.nmae."
        );
        assert_eq!(
            sql("no such table: singers", Author::User),
            "Your SQL refers to a table that does not exist: singers."
        );
        assert_eq!(
            sql("near \"SELEC\": syntax error", Author::User),
            "Your SQL has a syntax error near \"SELEC\"."
        );
        assert!(
            sql("ambiguous column name: id", Author::Model).contains("write it as table.column")
        );
        assert!(sql("incomplete input", Author::User).contains("is incomplete"));
        assert!(sql("no such function: YEAR", Author::Model)
            .contains("function SQLite does not have: YEAR"));
        assert!(sql("misuse of aggregate: COUNT()", Author::Model).contains("HAVING"));
        assert!(sql(
            "SELECTs to the left and right of UNION do not have the same number of result columns",
            Author::Model
        )
        .contains("different numbers of columns"));
        assert_eq!(
            sql("datatype mismatch", Author::Model),
            "SQLite could not run the model's SQL: datatype mismatch."
        );
    }

    #[test]
    fn sqlite_location_suffix_is_cut() {
        let sql_text = "SELECT nme FROM singer WHERE name in ('a')";
        let message = format!("no such column: nme in {sql_text} at offset 7");
        assert_eq!(strip_location(&message, sql_text), "no such column: nme");
        // The runner quoted a different text: cut at the first " in ".
        assert_eq!(strip_location(&message, "SELECT 1"), "no such column: nme");
        assert_eq!(
            strip_location("no such table: t", "SELECT 1"),
            "no such table: t"
        );
        assert_eq!(
            strip_location("weird at offset x", "SELECT 1"),
            "weird at offset x"
        );
        let explained = explain(&RunError::Sql(message.clone()), Author::Model, sql_text);
        assert_eq!(
            explained.message,
            "The model's SQL refers to a column that does not exist: nme."
        );
    }

    #[test]
    fn refusals_and_timeouts_have_their_own_codes() {
        let refused = explain(
            &RunError::Refused("it writes".into()),
            Author::User,
            "DELETE FROM t",
        );
        assert_eq!(refused.code, "refused");
        assert!(
            refused.message.contains("read-only SELECT") && refused.message.contains("it writes")
        );
        let slow = explain(
            &RunError::TimedOut(Duration::from_secs(5)),
            Author::Model,
            "SELECT 1",
        );
        assert_eq!(slow.code, "timed_out");
        assert!(slow.message.contains("longer than 5 s"), "{}", slow.message);
        let fast = explain(
            &RunError::TimedOut(Duration::from_millis(250)),
            Author::User,
            "SELECT 1",
        );
        assert!(fast.message.contains("250 ms"), "{}", fast.message);
    }
}
