//! Writing table aliases out: `SELECT T2.name FROM a AS T1 JOIN b AS T2 ON
//! T1.id = T2.a_id` becomes `SELECT b.name FROM a JOIN b ON a.id = b.a_id`,
//! the same query. Spider's gold SQL names every joined table `T1`, `T2`,
//! ...: a model writing the SELECT list before FROM must then guess which
//! number the FROM clause will give which table, and a small model trained
//! from scratch guesses inconsistently (`SELECT T2.x FROM a AS T1 JOIN b AS
//! T3 ...`, which no FROM can complete). Without aliases the qualifier is the
//! table itself, which the model has to name anyway. NatSQL and IRNet's
//! SemQL drop aliases from their targets for the same reason.

use super::lexer::{Tok, Token};
use super::rename::{lex, token_end};
use super::vocabulary::reserved;
use super::Rejection;

/// `sql` with its table aliases written out where that keeps the query's
/// meaning. An alias stays when its table is a source twice in its SELECT (a
/// self-join needs its aliases), when another source there is keyed by the
/// alias or the table's name, when a subquery between a use and the
/// definition has a source of that table or keyed by its name (it would
/// capture the written-out name), or when the alias appears other than as an
/// `alias.column` qualifier. Aliases of derived tables and table-valued
/// functions stay. Spacing and case elsewhere are kept.
pub fn unalias_tables(sql: &str) -> Result<String, Rejection> {
    let tokens = lex(sql)?;
    let Some(scan) = Scan::new(sql, &tokens) else {
        return Ok(sql.to_string());
    };
    let mut removable: Vec<Vec<bool>> = scan
        .cores
        .iter()
        .map(|core| {
            (0..core.sources.len())
                .map(|s| core.alias_removable(s))
                .collect()
        })
        .collect();
    // Each alias use, resolved as SQLite would: (token, core, source).
    let mut uses = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Tok::Word(word) = &token.tok else {
            continue;
        };
        if scan.alias_tokens.contains(&i) {
            continue;
        }
        let aliased = |core: &Core| core.sources.iter().any(|s| s.alias_is(word));
        if !scan.cores.iter().any(aliased) {
            continue;
        }
        let qualifies = matches!(tokens.get(i + 1).map(|t| &t.tok), Some(Tok::Punct(".")));
        let follows_dot = i > 0 && matches!(tokens[i - 1].tok, Tok::Punct("."));
        let resolved = scan.core_of[i].and_then(|core| scan.resolve(core, word));
        match resolved {
            Some((core, source, shadowed)) if qualifies && !follows_dot => {
                if shadowed {
                    removable[core][source] = false;
                }
                uses.push((i, core, source));
            }
            _ => {
                // Not a plain qualifier: every alias of that name stays.
                for (c, core) in scan.cores.iter().enumerate() {
                    for (s, source) in core.sources.iter().enumerate() {
                        if source.alias_is(word) {
                            removable[c][s] = false;
                        }
                    }
                }
            }
        }
    }

    // (start, end, replacement) byte edits.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for (c, core) in scan.cores.iter().enumerate() {
        for (s, source) in core.sources.iter().enumerate() {
            if let (true, Some(alias)) = (removable[c][s], &source.alias) {
                edits.push((source.name_end, alias.end, String::new()));
            }
        }
    }
    for (i, c, s) in uses {
        if removable[c][s] {
            let source = &scan.cores[c].sources[s];
            let token = &tokens[i];
            edits.push((
                token.offset,
                token_end(sql, token),
                sql[source.name_start..source.name_end].to_string(),
            ));
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for (start, end, replacement) in edits {
        out.push_str(&sql[copied..start]);
        out.push_str(&replacement);
        copied = end;
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// One FROM source.
struct FromSource {
    /// The table's (or CTE's) lower-cased name; None for a derived table or
    /// a table-valued function.
    table: Option<String>,
    name_start: usize,
    name_end: usize,
    alias: Option<Alias>,
}

impl FromSource {
    /// What qualifies its columns: the alias, else the table's name.
    fn key(&self) -> Option<&str> {
        match &self.alias {
            Some(alias) => Some(&alias.name),
            None => self.table.as_deref(),
        }
    }

    fn alias_is(&self, word: &str) -> bool {
        self.alias.as_ref().is_some_and(|a| a.name == word)
    }
}

struct Alias {
    /// Lower-cased.
    name: String,
    /// Where the alias token ends.
    end: usize,
}

/// One SELECT (a query, a compound query's member, a subquery, a CTE's
/// body) and the SELECT whose scope it sees.
struct Core {
    parent: Option<usize>,
    sources: Vec<FromSource>,
}

impl Core {
    /// Source `s` has an alias that could be written out: its table is no
    /// other source of this SELECT and no other source is keyed by the
    /// table's name or by the alias.
    fn alias_removable(&self, s: usize) -> bool {
        let source = &self.sources[s];
        let (Some(table), Some(alias)) = (&source.table, &source.alias) else {
            return false;
        };
        self.sources.iter().enumerate().all(|(o, other)| {
            o == s
                || (other.table.as_deref() != Some(table.as_str())
                    && other.key() != Some(table.as_str())
                    && other.key() != Some(alias.name.as_str()))
        })
    }
}

/// Clause keywords that end a FROM clause at its own depth.
const AFTER_FROM: &[&str] = &[
    "where",
    "group",
    "having",
    "order",
    "limit",
    "window",
    "union",
    "intersect",
    "except",
];

/// The SELECTs of a query, their FROM sources, and which SELECT each token
/// belongs to.
struct Scan {
    cores: Vec<Core>,
    core_of: Vec<Option<usize>>,
    /// Tokens that define an alias.
    alias_tokens: Vec<usize>,
}

impl Scan {
    /// None when a source is written in a form this rewrite does not follow
    /// (`main.t`, a quoted alias).
    fn new(sql: &str, tokens: &[Token]) -> Option<Self> {
        let mut cores: Vec<Core> = Vec::new();
        let mut core_of = vec![None; tokens.len()];
        let mut alias_tokens = Vec::new();
        // Per parenthesis depth: the SELECT open there, and whether its FROM
        // clause is being read.
        let mut open: Vec<Option<usize>> = vec![None];
        let mut in_from = vec![false];
        let enclosing = |open: &[Option<usize>]| open.iter().rev().find_map(|c| *c);
        let mut i = 0;
        while i < tokens.len() {
            let depth = open.len() - 1;
            let starts_source = match &tokens[i].tok {
                Tok::Punct("(") => {
                    open.push(None);
                    in_from.push(false);
                    false
                }
                Tok::Punct(")") => {
                    if open.len() > 1 {
                        open.pop();
                        in_from.pop();
                    }
                    false
                }
                Tok::Punct(";") => {
                    in_from[depth] = false;
                    false
                }
                Tok::Word(w) if w == "select" => {
                    let parent = enclosing(&open[..depth]);
                    cores.push(Core {
                        parent,
                        sources: Vec::new(),
                    });
                    open[depth] = Some(cores.len() - 1);
                    in_from[depth] = false;
                    false
                }
                Tok::Word(w) if w == "from" => {
                    in_from[depth] = true;
                    true
                }
                Tok::Word(w) if AFTER_FROM.contains(&w.as_str()) => {
                    in_from[depth] = false;
                    false
                }
                Tok::Word(w) if w == "join" => in_from[depth],
                Tok::Punct(",") => in_from[depth],
                _ => false,
            };
            let core = enclosing(&open);
            core_of[i] = core;
            i += 1;
            if !starts_source {
                continue;
            }
            let (Some(core), Some(first)) = (core, tokens.get(i)) else {
                continue;
            };
            // A derived table or table-valued function: its alias is read
            // after its closing parenthesis, the parenthesis itself is left
            // to the loop above.
            let (table, name_end, after) = match (&first.tok, tokens.get(i + 1).map(|t| &t.tok)) {
                (Tok::Punct("("), _) => (None, first.offset, matching_paren(tokens, i)? + 1),
                (Tok::Word(w) | Tok::Quoted(w), Some(Tok::Punct("("))) if !reserved(w) => {
                    (None, first.offset, matching_paren(tokens, i + 1)? + 1)
                }
                (_, Some(Tok::Punct("."))) => return None,
                (Tok::Word(w) | Tok::Quoted(w), _) if !reserved(w) => {
                    (Some(w.clone()), token_end(sql, first), i + 1)
                }
                _ => continue,
            };
            let alias_at = match tokens.get(after).map(|t| &t.tok) {
                Some(Tok::Word(w)) if w == "as" => Some(after + 1),
                Some(Tok::Word(w)) if !reserved(w) && w != "window" && w != "indexed" => {
                    Some(after)
                }
                Some(Tok::Quoted(_)) => return None,
                _ => None,
            };
            let alias = match alias_at {
                Some(at) => match tokens.get(at) {
                    Some(
                        token @ Token {
                            tok: Tok::Word(w), ..
                        },
                    ) if !reserved(w) => {
                        alias_tokens.push(at);
                        Some(Alias {
                            name: w.clone(),
                            end: token_end(sql, token),
                        })
                    }
                    _ => return None,
                },
                None => None,
            };
            cores[core].sources.push(FromSource {
                table,
                name_start: first.offset,
                name_end,
                alias,
            });
        }
        Some(Scan {
            cores,
            core_of,
            alias_tokens,
        })
    }

    /// The source a qualifier `word` used in `core` names, as SQLite
    /// resolves it (the innermost SELECT with a source keyed so), and
    /// whether a SELECT in between has a source of that table or keyed by
    /// its name, which would capture the name written out.
    fn resolve(&self, core: usize, word: &str) -> Option<(usize, usize, bool)> {
        let mut path = Vec::new();
        let mut at = Some(core);
        while let Some(c) = at {
            if let Some(s) = self.cores[c]
                .sources
                .iter()
                .position(|s| s.key() == Some(word))
            {
                let table = self.cores[c].sources[s].table.as_deref();
                // A source of that table in between captures the name,
                // whether it keeps its own alias or loses it too.
                let shadowed = table.is_some_and(|t| {
                    path.iter().any(|&p: &usize| {
                        self.cores[p]
                            .sources
                            .iter()
                            .any(|o| o.key() == Some(t) || o.table.as_deref() == Some(t))
                    })
                });
                return Some((c, s, shadowed));
            }
            path.push(c);
            at = self.cores[c].parent;
        }
        None
    }
}

/// The index of the `)` that closes the `(` at `open`.
fn matching_paren(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.tok {
            Tok::Punct("(") => depth += 1,
            Tok::Punct(")") => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unalias(sql: &str) -> String {
        unalias_tables(sql).unwrap()
    }

    #[test]
    fn aliases_become_their_tables() {
        assert_eq!(
            unalias(
                "SELECT T2.name FROM singer AS T1 JOIN concert AS T2 ON T1.id  =  T2.singer_id \
                 WHERE T1.age > 3"
            ),
            "SELECT concert.name FROM singer JOIN concert ON singer.id  =  concert.singer_id \
             WHERE singer.age > 3"
        );
        // Without AS, lower-case aliases, a table's case kept.
        assert_eq!(
            unalias("SELECT t1.a FROM Singer t1 JOIN b t2 ON t1.x = t2.y"),
            "SELECT Singer.a FROM Singer JOIN b ON Singer.x = b.y"
        );
    }

    #[test]
    fn subqueries_with_their_own_tables_are_rewritten_too() {
        assert_eq!(
            unalias(
                "SELECT T1.a FROM x AS T1 WHERE T1.b IN (SELECT T3.b FROM y AS T3 JOIN z AS T4 \
                 ON T3.c = T4.c)"
            ),
            "SELECT x.a FROM x WHERE x.b IN (SELECT y.b FROM y JOIN z ON y.c = z.c)"
        );
    }

    #[test]
    fn queries_that_need_their_aliases_are_kept() {
        for sql in [
            // A self-join.
            "SELECT T1.a FROM t AS T1 JOIN t AS T2 ON T1.p = T2.id",
            // A correlated use inside a subquery that has the same table.
            "SELECT T1.a FROM t AS T1 WHERE T1.b > (SELECT avg(b) FROM t WHERE t.c = T1.c)",
            // An alias that is a table's name.
            "SELECT a.x FROM b AS a JOIN a AS b ON a.y = b.y",
            // A schema-qualified table.
            "SELECT T1.a FROM main.t AS T1",
        ] {
            assert_eq!(unalias(sql), sql);
        }
    }

    #[test]
    fn each_select_has_its_own_aliases() {
        // Compound members and subqueries reuse T1 for other tables.
        assert_eq!(
            unalias(
                "SELECT T1.a FROM t AS T1 JOIN u AS T2 ON T1.i = T2.i EXCEPT \
                 SELECT T1.a FROM t AS T1 WHERE T1.b IN (SELECT T1.b FROM u AS T1)"
            ),
            "SELECT t.a FROM t JOIN u ON t.i = u.i EXCEPT \
             SELECT t.a FROM t WHERE t.b IN (SELECT u.b FROM u)"
        );
        // The same table in a subquery that does not use the outer alias.
        assert_eq!(
            unalias("SELECT T1.a FROM t AS T1 WHERE T1.b > (SELECT avg(b) FROM t)"),
            "SELECT t.a FROM t WHERE t.b > (SELECT avg(b) FROM t)"
        );
    }

    #[test]
    fn an_outer_alias_used_under_an_inner_alias_of_its_table_stays() {
        // The inner alias goes; the outer one, used inside, must stay.
        assert_eq!(
            unalias(
                "SELECT T1.a FROM t AS T1 WHERE T1.b > (SELECT AVG(T2.b) FROM t AS T2 \
                 WHERE T2.c = T1.c)"
            ),
            "SELECT T1.a FROM t AS T1 WHERE T1.b > (SELECT AVG(t.b) FROM t \
             WHERE t.c = T1.c)"
        );
    }

    #[test]
    fn column_aliases_and_derived_tables_are_left_alone() {
        assert_eq!(
            unalias("SELECT T1.a AS x, count(*) AS n FROM t AS T1 GROUP BY x"),
            "SELECT t.a AS x, count(*) AS n FROM t GROUP BY x"
        );
        assert_eq!(
            unalias("SELECT d.n, T1.a FROM (SELECT count(*) AS n FROM u) AS d, t AS T1"),
            "SELECT d.n, t.a FROM (SELECT count(*) AS n FROM u) AS d, t"
        );
        let no_alias = "SELECT name FROM singer WHERE age > 30";
        assert_eq!(unalias(no_alias), no_alias);
    }
}
