//! The authorizer: SQLite asks it about every action a statement would take
//! while preparing it; anything but reading is denied, and the reason is kept
//! so that the caller can say why.

use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Pragmas that only report on the schema and never change anything, even
/// with an argument (SQLite gives the authorizer no way to tell `x(arg)` from
/// `x = value`, so only pragmas where both are reads are listed).
const READ_ONLY_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    "function_list",
];

/// Functions that reach outside the query: loading code, or poking at
/// SQLite's own state.
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

pub(super) fn read_only(
    refusal: Arc<Mutex<Option<String>>>,
) -> impl for<'r> FnMut(AuthContext<'r>) -> Authorization + Send + 'static {
    move |ctx: AuthContext<'_>| {
        let denied = match ctx.action {
            AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => None,
            AuthAction::Function { function_name } => {
                let name = function_name.to_ascii_lowercase();
                DENIED_FUNCTIONS
                    .contains(&name.as_str())
                    .then(|| format!("function {function_name}() is not allowed"))
            }
            AuthAction::Pragma { pragma_name, .. } => {
                let name = pragma_name.to_ascii_lowercase();
                (!READ_ONLY_PRAGMAS.contains(&name.as_str()))
                    .then(|| format!("PRAGMA {pragma_name} is not allowed"))
            }
            AuthAction::Attach { .. } => Some("ATTACH is not allowed".to_string()),
            AuthAction::Detach { .. } => Some("DETACH is not allowed".to_string()),
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                Some("transactions are not allowed".to_string())
            }
            AuthAction::Insert { .. } | AuthAction::Update { .. } | AuthAction::Delete { .. } => {
                Some("writing data (INSERT, UPDATE, DELETE) is not allowed".to_string())
            }
            other => Some(format!(
                "{} is not allowed (only reads are)",
                describe(&other)
            )),
        };
        match denied {
            None => Authorization::Allow,
            Some(why) => {
                if let Ok(mut slot) = refusal.lock() {
                    // The first refusal is the one the statement tripped on.
                    slot.get_or_insert(why);
                }
                Authorization::Deny
            }
        }
    }
}

fn describe(action: &AuthAction<'_>) -> String {
    let debug = format!("{action:?}");
    let name = debug.split([' ', '{', '(']).next().unwrap_or("this action");
    // `CreateTable` -> `create table`
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    words
}
