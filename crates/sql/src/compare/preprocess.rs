//! The text rewrites `exec_eval.py` applies before executing either query.

/// `postprocess`: `> =`, `< =`, `! =` closed up.
pub fn close_up_operators(sql: &str) -> String {
    sql.replace("> =", ">=")
        .replace("< =", "<=")
        .replace("! =", "!=")
}

/// `replace_cur_year`: `YEAR(CURDATE())` (any case and spacing, plus the
/// whitespace after it) becomes `2020`.
pub fn replace_current_year(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let mut out = String::with_capacity(sql.len());
    let mut pos = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("year") {
        let start = search + found;
        match match_cur_year(&lower, start + 4) {
            Some(end) => {
                out.push_str(&sql[pos..start]);
                out.push_str("2020");
                pos = end;
                search = end;
            }
            None => search = start + 4,
        }
    }
    out.push_str(&sql[pos..]);
    out
}

/// After `year`: `\s*\(\s*curdate\s*\(\s*\)\s*\)\s*`; the end of the match.
fn match_cur_year(lower: &str, mut i: usize) -> Option<usize> {
    let bytes = lower.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && (bytes[i] as char).is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    for part in ["(", "curdate", "(", ")", ")"] {
        i = skip_ws(i);
        if !lower[i..].starts_with(part) {
            return None;
        }
        i += part.len();
    }
    Some(skip_ws(i))
}

/// `remove_distinct`: the script joins sqlparse's tokens, leaving out every
/// token that reads `distinct` in any case. Those are bare words only (a
/// quoted `"distinct"` or `'distinct'` keeps its quotes in the token), so
/// this scanner drops whole words equal to `distinct` outside string
/// literals, quoted identifiers and comments, and keeps every other byte.
/// The script keeps only `sqlparse.parse(s)[0]`, the first statement: text
/// after the first `;` outside quotes and comments is dropped too, so a
/// stacked prediction is scored on its first statement alone.
/// Hand-written because no SQL tokenizer crate keeps the exact source text
/// of every token while never failing on broken SQL, as sqlparse does.
pub fn remove_distinct(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    let mut copied_to = 0;
    while let Some((start, c)) = chars.next() {
        match c {
            '\'' | '"' | '`' => skip_quoted(&mut chars, c),
            ';' => {
                out.push_str(&sql[copied_to..=start]);
                return out;
            }
            '-' if chars.peek().is_some_and(|(_, n)| *n == '-') => {
                for (_, n) in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, n)| *n == '*') => {
                chars.next();
                let mut previous = ' ';
                for (_, n) in chars.by_ref() {
                    if previous == '*' && n == '/' {
                        break;
                    }
                    previous = n;
                }
            }
            c if is_word_char(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, n)) = chars.peek() {
                    if !is_word_char(n) {
                        break;
                    }
                    end = i + n.len_utf8();
                    chars.next();
                }
                if sql[start..end].eq_ignore_ascii_case("distinct") {
                    out.push_str(&sql[copied_to..start]);
                    copied_to = end;
                }
            }
            _ => {}
        }
    }
    out.push_str(&sql[copied_to..]);
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Skips to the closing `quote`; a doubled quote is an escaped one.
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, quote: char) {
    while let Some((_, c)) = chars.next() {
        if c == quote {
            if chars.peek().is_some_and(|(_, n)| *n == quote) {
                chars.next();
            } else {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_is_removed_as_a_word_only() {
        assert_eq!(
            remove_distinct("SELECT DISTINCT name FROM t"),
            "SELECT  name FROM t"
        );
        assert_eq!(
            remove_distinct("select count(distinct x) from t"),
            "select count( x) from t"
        );
        assert_eq!(
            remove_distinct("SELECT distinct_id, 'distinct', \"DISTINCT\" FROM t -- distinct"),
            "SELECT distinct_id, 'distinct', \"DISTINCT\" FROM t -- distinct"
        );
        assert_eq!(
            remove_distinct("SELECT 'it''s' , Distinct a"),
            "SELECT 'it''s' ,  a"
        );
    }

    #[test]
    fn only_the_first_statement_survives_like_sqlparse_parse_0() {
        assert_eq!(
            remove_distinct("SELECT a FROM t; LIMIT 2"),
            "SELECT a FROM t;"
        );
        assert_eq!(
            remove_distinct("SELECT ';' FROM t -- ;\n; DROP TABLE t"),
            "SELECT ';' FROM t -- ;\n;"
        );
    }

    #[test]
    fn operators_are_closed_up() {
        assert_eq!(
            close_up_operators("a > = 1 AND b < = 2 AND c ! = 3"),
            "a >= 1 AND b <= 2 AND c != 3"
        );
    }

    #[test]
    fn current_year_becomes_2020() {
        assert_eq!(
            replace_current_year("SELECT year ( CURDATE ( ) )  - age FROM t"),
            "SELECT 2020- age FROM t"
        );
        assert_eq!(
            replace_current_year("SELECT year FROM t"),
            "SELECT year FROM t"
        );
    }
}
