//! Renaming the tables and columns a query names, token-aware: what schema
//! symbols need (see `text2sql_data::serialize::SchemaSymbols`), where a
//! text replace would also hit strings, keywords and function names.

use super::lexer::{Lexer, Tok, Token};
use super::vocabulary::reserved;
use super::Rejection;

/// `sql` with each name that `rename` maps (it receives the name's inner
/// text, unquoted, case kept) replaced by what it returns. Names are bare
/// words that are not clause keywords and not function calls, and back-quoted
/// or bracketed names; double-quoted text is left alone, since SQLite reads
/// it as a string when no column has that name. Everything else, spacing
/// included, is kept byte for byte.
pub fn rename_identifiers(
    sql: &str,
    mut rename: impl FnMut(&str) -> Option<String>,
) -> Result<String, Rejection> {
    let tokens = lex(sql)?;
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for (i, token) in tokens.iter().enumerate() {
        let calls = matches!(
            tokens.get(i + 1),
            Some(Token {
                tok: Tok::Punct("("),
                ..
            })
        );
        let (start, end, inner) = match &token.tok {
            Tok::Word(word) if !reserved(word) && !calls => {
                let end = token_end(sql, token);
                (token.offset, end, &sql[token.offset..end])
            }
            Tok::Quoted(_) => {
                let end = token_end(sql, token);
                (token.offset, end, &sql[token.offset + 1..end - 1])
            }
            _ => continue,
        };
        if let Some(replacement) = rename(inner) {
            out.push_str(&sql[copied..start]);
            out.push_str(&replacement);
            copied = end;
        }
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// `sql`'s tokens, or where and why it cannot be read.
pub(super) fn lex(sql: &str) -> Result<Vec<Token>, Rejection> {
    let mut lexer = Lexer::default();
    let mut tokens = Vec::new();
    let lexed = lexer
        .push(sql, &mut tokens)
        .and_then(|()| lexer.finish(&mut tokens));
    lexed.map_err(|e| Rejection {
        offset: e.offset,
        message: e.message,
    })?;
    Ok(tokens)
}

/// Where a name token (a bare word, or a back-quoted or bracketed name)
/// ends in `sql`: the lexer keeps where tokens start only.
pub(super) fn token_end(sql: &str, token: &Token) -> usize {
    match token.tok {
        Tok::Quoted(_) => quoted_end(sql, token.offset),
        _ => word_end(sql, token.offset),
    }
}

/// Where the bare word starting at `start` ends (the lexer's word
/// characters: letters, digits, `_`, `$` and any non-ASCII character).
fn word_end(sql: &str, start: usize) -> usize {
    sql[start..]
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()))
        .map_or(sql.len(), |(i, _)| start + i)
}

/// Where the back-quoted or bracketed name starting at `start` ends, its
/// closing quote included (a doubled back-quote is an escaped one).
fn quoted_end(sql: &str, start: usize) -> usize {
    let close = if sql[start..].starts_with('[') {
        ']'
    } else {
        '`'
    };
    let mut chars = sql[start + 1..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == close {
            if close == '`' && matches!(chars.peek(), Some((_, '`'))) {
                chars.next();
                continue;
            }
            return start + 1 + i + 1;
        }
    }
    sql.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper_known(sql: &str) -> String {
        rename_identifiers(sql, |name| {
            ["singer", "name", "age", "stadium name"]
                .contains(&name.to_lowercase().as_str())
                .then(|| format!("<{}>", name.to_uppercase()))
        })
        .unwrap()
    }

    #[test]
    fn names_are_renamed_and_keywords_strings_and_functions_are_not() {
        assert_eq!(
            upper_known(
                "SELECT T1.name, count(*) FROM singer AS T1 WHERE name = 'name' ORDER BY age"
            ),
            "SELECT T1.<NAME>, count(*) FROM <SINGER> AS T1 WHERE <NAME> = 'name' ORDER BY <AGE>"
        );
        assert_eq!(
            upper_known("SELECT `Stadium Name`, [name] FROM Singer WHERE x = \"name\""),
            "SELECT <STADIUM NAME>, <NAME> FROM <SINGER> WHERE x = \"name\""
        );
        // A function that shares a table's name stays a call.
        assert_eq!(
            upper_known("SELECT age(name) FROM singer"),
            "SELECT age(<NAME>) FROM <SINGER>"
        );
    }

    #[test]
    fn unmapped_text_is_kept_byte_for_byte() {
        let sql = "SELECT  a ,b\nFROM t\n-- note\nWHERE c LIKE '%x%'";
        assert_eq!(upper_known(sql), sql);
    }

    #[test]
    fn an_unterminated_string_is_an_error() {
        assert!(rename_identifiers("SELECT 'abc", |_| None).is_err());
    }
}
