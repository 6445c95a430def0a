//! SQLite's query grammar as an explicit-stack (pushdown) parser, so that its
//! whole state is a value: a decoder clones it per hypothesis and feeds it
//! one token at a time, and a check costs the new tokens only.
//!
//! Each frame on the stack is a grammar rule and where in it the parser
//! stands. A token goes to the top frame, which pops itself and pushes its
//! continuation, then any sub-rules above it, and says whether it consumed
//! the token or whether the new top should see it ([`Flow`]).
//!
//! Names are checked against the schema in scopes: a query's scope holds
//! its CTE names, a SELECT's scope its FROM sources (tables, aliases,
//! derived tables) and its result-column aliases. A column can only be
//! resolved once its SELECT's FROM clause is complete (the SELECT list comes
//! first), so references that do not resolve yet wait in the scope and are
//! settled when its FROM ends, falling through to enclosing scopes as SQLite
//! does for correlated subqueries.

use std::sync::Arc;

use super::lexer::{Tok, Token};
use super::vocabulary::{
    names_database, reserved, BINARY, COLLATIONS, COMPARISONS, DATABASES, FUNCTIONS, MAX_ARGUMENTS,
    OPERAND_KEYWORDS, OTHER_KEYWORDS, QUOTE_CHARS, RESERVED, ROWID, TABLE_FUNCTIONS,
};
use super::SchemaIndex;

/// Where the query's names are still open (a FROM clause not yet read),
/// an unknown word may be an alias defined later (`T1` in `SELECT T1.name
/// FROM singer AS T1`); such aliases are short. A decoder that could type
/// any word there would extend a misspelt column name forever.
const MAX_FORWARD_ALIAS: usize = 4;

/// An alias without AS (`FROM singer s`, `count(*) n`) is at most this
/// long: gold SQL keeps them short, and a decoder that may take any word
/// after a table or a result column for an alias can write garbage there.
const MAX_IMPLICIT_ALIAS: usize = 4;

/// No word is longer than this unless the schema has a longer name: aliases
/// are free-form, and a decoder must not grow one without end.
const MAX_FREE_WORD: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq)]
enum StmtAt {
    Start,
    AfterQuery,
    AfterSemi,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum QueryAt {
    Start,
    WithRecursive,
    CteName,
    CteAfterName,
    CteAs,
    CteBody,
    CteNext,
    Body,
    AfterCore,
    UnionAll,
    AfterOrder,
    AfterLimit,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CoreAt {
    Start,
    Distinct,
    Result,
    ResultAlias,
    AliasName,
    AfterResult,
    AfterFrom,
    AfterWhere,
    AfterGroup,
    AfterHaving,
    WindowName,
    WindowAs,
    WindowNext,
    ValuesRow,
    ValuesNext,
}

#[derive(Debug, Clone, PartialEq)]
enum FromAt {
    TableStart,
    AfterName {
        name: String,
        offset: usize,
        /// After `main.`: no second dot.
        qualified: bool,
    },
    AfterSchemaDot,
    Alias {
        source: Source,
    },
    AliasName {
        source: Source,
    },
    ParenOpen,
    NestedClose,
    /// After a derived table's or table-valued function's `)`.
    Derived {
        function: bool,
    },
    DerivedAliasName {
        columns: Columns,
    },
    AfterTable,
    /// After a join's ON or USING constraint: what may follow a table, but
    /// not a second constraint.
    AfterConstraint,
    /// After NATURAL: an outer or inner join kind, or JOIN.
    JoinNatural,
    /// After LEFT/RIGHT/FULL: OUTER or JOIN.
    JoinOuter,
    /// JOIN itself.
    Join,
}

#[derive(Debug, Clone, PartialEq)]
enum ExprAt {
    Operand,
    AfterName {
        name: String,
        offset: usize,
    },
    Qualified {
        qualifier: String,
        offset: usize,
    },
    Qualified2 {
        qualifier: String,
        column: String,
        offset: usize,
    },
    /// After `main.table.`: a column of `table`.
    Qualified3 {
        table: String,
        offset: usize,
    },
    AfterOperand,
    AfterBetween,
    IsRest,
    IsNot,
    NotOp,
    InOpen,
    InParen,
    ParenOpen,
    ParenList,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FuncAt {
    /// After `(`, with the function's bound on its arguments.
    Start(ArgumentBound),
    /// After an argument: `count` read so far.
    Args {
        count: usize,
        bound: ArgumentBound,
    },
    Post,
}

/// The most arguments a call may take (see [`MAX_ARGUMENTS`]), and its
/// function's name for the message.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ArgumentBound {
    function: &'static str,
    max: usize,
}

impl ArgumentBound {
    /// No bound: table-valued and variadic functions.
    const NONE: ArgumentBound = ArgumentBound {
        function: "",
        max: usize::MAX,
    };

    fn of(name: &str) -> ArgumentBound {
        MAX_ARGUMENTS
            .iter()
            .find(|(function, _)| function.eq_ignore_ascii_case(name))
            .map_or(ArgumentBound::NONE, |&(function, max)| ArgumentBound {
                function,
                max,
            })
    }

    /// Err when an argument number `count` is one too many.
    fn admit(self, count: usize) -> Result<(), String> {
        if count > self.max {
            return Err(format!(
                "{}() takes at most {} argument{}",
                self.function,
                self.max,
                if self.max == 1 { "" } else { "s" }
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CaseAt {
    Start,
    ExpectWhen,
    Then,
    AfterThen,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WindowAt {
    /// After OVER: a window name or `(`.
    AfterOver,
    /// After WINDOW name AS: `(`.
    Open,
    Spec,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OrderAt {
    AfterExpr,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum IdentAt {
    Start,
    Next,
}

#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Stmt(StmtAt),
    Query(QueryAt),
    Core(CoreAt),
    From {
        at: FromAt,
        nested: bool,
        /// The current source follows a JOIN or a comma: it may take an ON
        /// or USING constraint (the first source of a FROM may not).
        joined: bool,
    },
    Expr {
        at: ExprAt,
        no_and: bool,
        /// A comparison operator was read since the last AND/OR: another
        /// one (`a = b = c`) is refused.
        compared: bool,
    },
    ExprList,
    OrderList(OrderAt),
    Func(FuncAt),
    Case(CaseAt),
    Window(WindowAt),
    /// A type name inside CAST; true once a word was read.
    CastType(bool),
    /// Identifiers up to `)` (USING, a CTE's column list), `(` already read;
    /// true for a CTE's, which names its columns.
    IdentList(IdentAt, bool),
    /// Any tokens up to the `)` that closes the current parentheses (window
    /// frame specs, type arguments), which it leaves for its parent.
    Skip(u32),
    Expect(&'static [&'static str]),
}

/// What the parser does with the token after a frame's step.
enum Flow {
    Consumed,
    Retry,
    Accept,
}

/// One FROM source under the name its columns are qualified by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Source {
    /// Lower-cased alias, or the table's own name when it has none.
    key: String,
    columns: Columns,
}

/// The columns a FROM source (or a CTE) offers.
#[derive(Debug, Clone, PartialEq)]
enum Columns {
    /// A schema table, by index.
    Table(usize),
    /// A CTE's or derived table's result columns, known once its query is
    /// read. Shared: the parser is cloned per candidate token.
    Result(Arc<ResultColumns>),
    /// Not tracked, any name resolves: a table-valued function, a VALUES
    /// list, a star over such a source, or a recursive CTE without a column
    /// list inside its own body.
    Untracked,
}

impl Columns {
    /// Any column name resolves in it.
    fn any_name(&self) -> bool {
        match self {
            Columns::Untracked => true,
            Columns::Result(result) => result.open,
            Columns::Table(_) => false,
        }
    }

    fn has(&self, schema: &SchemaIndex, column: &str) -> bool {
        match self {
            Columns::Table(index) => {
                schema.tables[*index].columns.iter().any(|c| c == column) || ROWID.contains(&column)
            }
            Columns::Result(result) => result.has(column),
            Columns::Untracked => true,
        }
    }

    /// Whether a column name beginning with `prefix` may follow `source.`.
    fn has_prefix(&self, schema: &SchemaIndex, prefix: &str) -> bool {
        let starts = |name: &String| name.starts_with(prefix);
        ROWID.iter().any(|c| c.starts_with(prefix))
            || match self {
                Columns::Table(index) => schema.tables[*index].columns.iter().any(starts),
                Columns::Result(result) => result.open || result.names.iter().any(starts),
                Columns::Untracked => true,
            }
    }
}

/// A query's result column names, as SQLite names them: an alias, else a
/// bare column's own name, else the expression's text.
#[derive(Debug, Clone, Default, PartialEq)]
struct ResultColumns {
    names: Vec<String>,
    /// Some column is named by its expression's text (`count(*)`), or two
    /// share a name (SQLite makes the second `name:1`): names that are not
    /// plain words resolve too.
    unnamed: bool,
    /// Some column's name is not known here (a string alias, `AS 'n'`):
    /// any name resolves.
    open: bool,
}

impl ResultColumns {
    fn has(&self, column: &str) -> bool {
        self.open
            || self.names.iter().any(|n| n == column)
            // Permissive: SQLite gives a subquery no rowid, but a wrong
            // rejection costs more than a missed one.
            || ROWID.contains(&column)
            || (self.unnamed && !plain_word(column))
    }
}

/// Letters, digits and underscores, not starting with a digit: a name an
/// expression's text cannot be.
fn plain_word(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One item of a SELECT list, until its FROM is known.
#[derive(Debug, Clone, PartialEq)]
enum ResultItem {
    Named(String),
    /// An expression without an alias, named by its text.
    Unnamed,
    /// A string alias (`AS 'n'`), whose text the lexer does not keep.
    Unknown,
    /// `*`, or `qualifier.*`.
    Star(Option<String>),
}

/// A CTE in scope, with its columns once its column list or body is read
/// (`None` while its body is being read: a recursive reference is untracked).
#[derive(Debug, Clone, PartialEq)]
struct Cte {
    name: String,
    columns: Option<Columns>,
    /// It has a column list (`cnt(x) AS ...`), which names its columns.
    listed: bool,
}

/// Tokens of a result item kept to tell a bare column (`t.name`) from an
/// expression: a bare one is at most `main . t . name` plus COLLATE and
/// parentheses.
const MAX_ITEM_TOKENS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
struct Ref {
    qualifier: Option<String>,
    /// None for `qualifier.*`.
    column: Option<String>,
    offset: usize,
}

impl Ref {
    fn describe(&self) -> String {
        match (&self.qualifier, &self.column) {
            (Some(q), Some(c)) => format!("{q}.{c}"),
            (Some(q), None) => format!("{q}.*"),
            (None, Some(c)) => c.clone(),
            (None, None) => "*".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ScopeKind {
    Query,
    Core,
}

/// How many result columns each SELECT of a compound must have: SQLite
/// refuses `SELECT a, b ... INTERSECT SELECT a ...` ("do not have the same
/// number of result columns").
#[derive(Debug, Clone, Copy, PartialEq)]
enum Width {
    /// The first SELECT's list is not finished yet.
    Unset,
    Known(usize),
    /// The first SELECT has a star or is VALUES: not tracked.
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
struct Scope {
    kind: ScopeKind,
    ctes: Vec<Cte>,
    sources: Vec<Source>,
    aliases: Vec<String>,
    /// The FROM clause is complete: every source is known.
    done: bool,
    /// A core without a FROM clause.
    from_less: bool,
    /// A core's FROM clause is being read (its ON clauses).
    in_from: bool,
    /// The qualifiers its SELECT list's columns wait on (`T1` of `SELECT
    /// T1.x FROM ...`), once FROM begins.
    awaited: Vec<String>,
    /// USING or NATURAL joins: a shared column name is not ambiguous.
    merged_columns: bool,
    pending: Vec<Ref>,
    /// Bare names resolved while FROM was still open (in an ON clause): a
    /// source added later can make them ambiguous, so FROM's end checks
    /// them again.
    settled_early: Vec<Ref>,
    /// A core's result columns so far, a star counted as one.
    result_columns: usize,
    /// A core's result list has `*` or `t.*`: at least `result_columns`.
    result_star: bool,
    /// A query's: the width of its compound's first SELECT.
    compound_width: Width,
    /// A core's result items so far.
    result_items: Vec<ResultItem>,
    /// A core's current result item's tokens, while it is read (None
    /// otherwise); past [`MAX_ITEM_TOKENS`] it is an expression.
    item_tokens: Option<Vec<Tok>>,
    /// A query's: its first SELECT's result columns, once that is read.
    first_columns: Option<Columns>,
}

impl Scope {
    fn new(kind: ScopeKind) -> Self {
        Self {
            kind,
            ctes: Vec::new(),
            sources: Vec::new(),
            aliases: Vec::new(),
            done: false,
            from_less: false,
            in_from: false,
            awaited: Vec::new(),
            merged_columns: false,
            pending: Vec::new(),
            settled_early: Vec::new(),
            result_columns: 0,
            result_star: false,
            compound_width: Width::Unset,
            result_items: Vec::new(),
            item_tokens: None,
            first_columns: None,
        }
    }
}

impl Scope {
    /// The current result item has the alias `name` (token `t`).
    fn name_last_item(&mut self, t: &Tok, name: &str) {
        if let Some(item) = self.result_items.last_mut() {
            *item = match t {
                Tok::Str => ResultItem::Unknown,
                _ => ResultItem::Named(name.to_string()),
            };
        }
    }
}

/// The most digits a FROM alias ends with (`T1`, `t12`).
const MAX_ALIAS_DIGITS: usize = 2;

/// Whether an alias's digits, if any, end it and number at most
/// [`MAX_ALIAS_DIGITS`]: a model whose `T2` lacked the columns it had
/// promised wrote `AS T2ill_ms_ms` and `AS T20000000` (pieces of several
/// characters, so the prefix rule of `longer_alias_possible` never saw
/// `T2` alone). No gold alias goes on past a number.
fn numbered_alias_ends_at_its_number(alias: &str) -> bool {
    // Quoted aliases with other characters have rules of their own.
    if !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return true;
    }
    match alias.find(|c: char| c.is_ascii_digit()) {
        None => true,
        Some(at) => {
            let number = &alias[at..];
            number.len() <= MAX_ALIAS_DIGITS && number.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// The longest FROM alias under `conventional` rules. Gold tables' aliases
/// are short (Spider's and the sample corpus's at most 2 characters, the
/// real SynSQL records' 3), derived tables' longer. A cap of 4 for tables
/// cost rescues on Spider train's tuning databases (28 SQL errors against
/// 22): a model that named its first table `TDISTINCT…` went on to define
/// the `T1` it had promised on a later one.
const MAX_CONVENTIONAL_ALIAS: usize = 24;

/// The most result columns of a SELECT under `conventional` rules: gold
/// SQL has at most 6 (Spider train and dev, the sample corpus, the real
/// SynSQL records), and a small model that cannot copy a name loops over
/// its SELECT list (`MIN(x) AS n, MAX(x) AS n, …`) until the token limit.
const MAX_CONVENTIONAL_RESULT_COLUMNS: usize = 8;

/// The longest string literal under `conventional` rules: gold SQL's
/// longest has 37 characters (Spider train and dev, the sample corpus, the
/// real SynSQL records), and a looping model writes `'20202-02-1-1-02-…'`
/// until the token limit.
pub(crate) const MAX_CONVENTIONAL_STRING: usize = 48;

/// A numbered alias's letters and number (`T2` -> `("t2"[..1], 2)`), or
/// None for any other alias. Gold SQL numbers a core's aliases T1, T2, …
/// in FROM order: 2 of Spider's 8,034 train and dev queries do not
/// (`FROM management AS T2 JOIN head AS T1`), none of the sample corpus.
fn numbered_alias(alias: &str) -> Option<(&str, usize)> {
    let at = alias.find(|c: char| c.is_ascii_digit())?;
    let (letters, number) = alias.split_at(at);
    let valid = !letters.is_empty()
        && letters.bytes().all(|b| b.is_ascii_alphabetic())
        && number.len() <= MAX_ALIAS_DIGITS
        && number.bytes().all(|b| b.is_ascii_digit());
    Some((letters, number.parse().ok()?)).filter(|_| valid)
}

/// A finished core's result columns, stars expanded over its FROM sources.
fn core_columns(schema: &SchemaIndex, core: &Scope) -> Columns {
    let mut result = ResultColumns::default();
    for item in &core.result_items {
        match item {
            ResultItem::Named(name) => result.names.push(name.clone()),
            ResultItem::Unnamed => result.unnamed = true,
            ResultItem::Unknown => result.open = true,
            ResultItem::Star(qualifier) => {
                let sources = core
                    .sources
                    .iter()
                    .filter(|s| qualifier.as_ref().is_none_or(|q| &s.key == q));
                for source in sources {
                    match &source.columns {
                        Columns::Table(index) => result
                            .names
                            .extend(schema.tables[*index].columns.iter().cloned()),
                        Columns::Result(inner) => {
                            result.names.extend(inner.names.iter().cloned());
                            result.unnamed |= inner.unnamed;
                            result.open |= inner.open;
                        }
                        Columns::Untracked => return Columns::Untracked,
                    }
                }
            }
        }
    }
    // SQLite renames a repeated name (`id:1`), which is not a plain word.
    let mut seen = std::collections::HashSet::new();
    if !result.names.iter().all(|name| seen.insert(name)) {
        result.unnamed = true;
    }
    Columns::Result(Arc::new(result))
}

/// What a result item without an alias is named, from its tokens: a bare
/// column reference (`name`, `t.name`, `main.t.name`, in parentheses or
/// with COLLATE) is named after the column, as SQLite does; `t.*` is a star.
fn result_item(tokens: &[Tok]) -> ResultItem {
    let mut tokens = tokens;
    if tokens.len() > MAX_ITEM_TOKENS {
        return ResultItem::Unnamed;
    }
    loop {
        match tokens {
            [Tok::Punct("("), inner @ .., Tok::Punct(")")] => tokens = inner,
            [rest @ .., Tok::Word(collate), _] if collate == "collate" => tokens = rest,
            _ => break,
        }
    }
    // A double-quoted name that resolves is a column too (SQLite reads
    // it as a string only when it does not).
    let name = |t: &Tok| match t {
        Tok::Word(w) | Tok::Quoted(w) | Tok::DQuoted(w) => Some(w.clone()),
        _ => None,
    };
    let dotted = |t: &Tok| is_punct(t, ".");
    match tokens {
        [column] => name(column).map_or(ResultItem::Unnamed, ResultItem::Named),
        [qualifier, dot, Tok::Punct("*")] if dotted(dot) => {
            name(qualifier).map_or(ResultItem::Unnamed, |q| ResultItem::Star(Some(q)))
        }
        [_, dot, column] | [_, _, _, dot, column] if dotted(dot) => {
            name(column).map_or(ResultItem::Unnamed, ResultItem::Named)
        }
        _ => ResultItem::Unnamed,
    }
}

enum Lookup {
    Hit,
    Miss,
    Error(String),
}

enum Resolution {
    /// In the scope of that index.
    Found(usize),
    Defer(usize),
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parser {
    stack: Vec<Frame>,
    scopes: Vec<Scope>,
    /// The result columns of the query read last: a CTE's body or a
    /// derived table, when its `)` has just been read.
    finished_columns: Columns,
    /// Conventions of gold SQL that plain SQL does not require: numbered
    /// aliases in FROM order (see [`Parser::check_conventional_alias`]), and a column read
    /// through a not yet defined alias is some table's or CTE's column
    /// (see [`Parser::impossible_qualified_column`]).
    pub(crate) conventional: bool,
    /// The number of the numbered alias defined last (0: none yet).
    last_alias_number: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            stack: vec![Frame::Stmt(StmtAt::Start)],
            scopes: Vec::new(),
            finished_columns: Columns::Untracked,
            conventional: false,
            last_alias_number: 0,
        }
    }
}

fn is_kw(t: &Tok, k: &str) -> bool {
    matches!(t, Tok::Word(w) if w == k)
}

fn is_punct(t: &Tok, p: &str) -> bool {
    matches!(t, Tok::Punct(q) if *q == p)
}

fn starts_query(t: &Tok) -> bool {
    is_kw(t, "select") || is_kw(t, "with") || is_kw(t, "values")
}

/// A name where any identifier may stand: a non-reserved word or a quoted name.
fn ident(t: &Tok) -> Option<&str> {
    match t {
        Tok::Word(w) if !reserved(w) => Some(w),
        Tok::Quoted(w) | Tok::DQuoted(w) => Some(w),
        _ => None,
    }
}

/// A column alias: an identifier or a string (SQLite accepts `AS 'name'`).
fn alias(t: &Tok) -> Option<String> {
    match t {
        Tok::Str => Some(String::new()),
        _ => ident(t).map(str::to_string),
    }
}

impl Parser {
    /// Feeds one token. Errors are messages; the caller knows the offset.
    pub fn feed(&mut self, schema: &SchemaIndex, token: &Token) -> Result<(), String> {
        if let Some(tokens) = self.scopes.last_mut().and_then(|s| s.item_tokens.as_mut()) {
            if tokens.len() <= MAX_ITEM_TOKENS {
                tokens.push(token.tok.clone());
            }
        }
        loop {
            let Some(frame) = self.stack.pop() else {
                return Err(format!(
                    "unexpected {} after the end of the query",
                    token.tok
                ));
            };
            match self.step(schema, frame, token)? {
                Flow::Consumed | Flow::Accept => return Ok(()),
                Flow::Retry => {}
            }
        }
    }

    /// Why a quoted token still open, `text` so far, cannot be what it
    /// must be here: an alias, free-form but short and without quote
    /// characters (a model wrote `AS "x"" ORDER BY ... LIMIT 1; ..."`,
    /// hiding SQL in one, and `AS "Spring"" AND ...`, a string meant as a
    /// value). Aliases are the query's own names, so no query needs such
    /// a one. Elsewhere a quote may be a string of any length.
    pub fn quoted_alias_rejection(&self, schema: &SchemaIndex, text: &str) -> Option<String> {
        let at_alias = matches!(
            self.stack.last(),
            Some(Frame::From {
                at: FromAt::AfterName { .. }
                    | FromAt::Alias { .. }
                    | FromAt::AliasName { .. }
                    | FromAt::Derived { .. }
                    | FromAt::DerivedAliasName { .. },
                ..
            }) | Some(Frame::Core(CoreAt::ResultAlias | CoreAt::AliasName))
        );
        if !at_alias {
            return None;
        }
        if text.len() > MAX_FREE_WORD.max(schema.longest_name()) {
            return Some("a quoted alias longer than any name".into());
        }
        if text.contains(QUOTE_CHARS) {
            return Some("a quote character inside an alias".into());
        }
        None
    }

    /// Whether a word starting with `prefix` (lower-case) could come next,
    /// where that can be told from the schema or the grammar alone.
    pub fn word_prefix_possible(&self, schema: &SchemaIndex, prefix: &str) -> bool {
        let starts = |name: &str| name.starts_with(prefix);
        if prefix.len() > MAX_FREE_WORD.max(schema.longest_name()) {
            return false;
        }
        match self.stack.last() {
            Some(Frame::Stmt(StmtAt::Start)) | Some(Frame::Query(QueryAt::Start)) => {
                ["select", "with", "values"].iter().any(|k| starts(k))
            }
            Some(Frame::Expect(alternatives)) => alternatives.iter().any(|a| starts(a)),
            // `main.`: one of the schema's tables.
            Some(Frame::From {
                at: FromAt::AfterSchemaDot,
                ..
            }) => schema.tables.iter().any(|t| starts(&t.name)),
            Some(Frame::From {
                at: FromAt::TableStart,
                ..
            }) => {
                schema.tables.iter().any(|t| starts(&t.name))
                    || self
                        .scopes
                        .iter()
                        .flat_map(|s| &s.ctes)
                        .any(|c| starts(&c.name))
                    || DATABASES.iter().chain(TABLE_FUNCTIONS).any(|k| starts(k))
                    || starts_query(&Tok::Word(prefix.to_string()))
            }
            Some(Frame::Expr {
                at: ExprAt::Qualified { qualifier, .. },
                ..
            }) => match self.source_for(qualifier) {
                Some(source) => source.columns.has_prefix(schema, prefix),
                None => match self.columns_named(schema, qualifier) {
                    Some(columns) => columns.has_prefix(schema, prefix),
                    None => !self.conventional || self.some_column(schema, prefix, true),
                },
            },
            Some(Frame::Expr {
                at: ExprAt::Operand,
                ..
            })
            | Some(Frame::Core(CoreAt::Result)) => self.operand_word_possible(schema, prefix),
            // After a table or a result column: a keyword, or a short alias.
            Some(Frame::From {
                at: FromAt::Alias { .. } | FromAt::AfterName { .. },
                ..
            })
            | Some(Frame::Core(CoreAt::ResultAlias)) => {
                let keyword = |word: &str| reserved(word) || OTHER_KEYWORDS.contains(&word);
                ((prefix.len() <= MAX_IMPLICIT_ALIAS || keyword(prefix))
                    && self.take_word(schema, prefix).is_ok())
                    || self.longer_alias_possible(schema, prefix, MAX_IMPLICIT_ALIAS)
                    || self
                        .words_beginning(schema, prefix)
                        .filter(|word| keyword(word))
                        .any(|word| self.take_word(schema, word).is_ok())
            }
            // After AS in FROM, or after a derived table: an alias of any
            // length (or a keyword, after a derived table).
            Some(Frame::From {
                at:
                    FromAt::AliasName { .. } | FromAt::DerivedAliasName { .. } | FromAt::Derived { .. },
                ..
            }) => {
                self.take_word(schema, prefix).is_ok()
                    || self.longer_alias_possible(schema, prefix, MAX_FREE_WORD)
                    || self
                        .words_beginning(schema, prefix)
                        .any(|word| self.take_word(schema, word).is_ok())
            }
            // After SELECT or `count(`: DISTINCT, ALL or an operand.
            Some(Frame::Core(CoreAt::Distinct)) | Some(Frame::Func(FuncAt::Start(_))) => {
                ["distinct", "all"].iter().any(|k| starts(k))
                    || self.operand_word_possible(schema, prefix)
            }
            // Elsewhere a word is a keyword, a name or an alias: possible
            // when the word so far would be taken as it stands (a free
            // alias), or some keyword or name it begins would.
            _ => {
                self.take_word(schema, prefix).is_ok()
                    || self
                        .words_beginning(schema, prefix)
                        .any(|word| self.take_word(schema, word).is_ok())
            }
        }
    }

    /// Whether an alias of at most `max` characters that extends `prefix`
    /// could be taken here, where `prefix` itself cannot: `u` of `FROM
    /// ratings ur JOIN users u` would give `u.name` (read before FROM) to
    /// the wrong table, and `p` of `pr` is another source's alias already;
    /// a fresh longer name is neither. A numbered alias (`T1`) never grows
    /// this way: the longer names end past its number, which
    /// `numbered_alias_ends_at_its_number` refuses.
    fn longer_alias_possible(&self, schema: &SchemaIndex, prefix: &str, max: usize) -> bool {
        prefix.len() < max
            && ["_", "a", "z"]
                .iter()
                .any(|more| self.take_word(schema, &format!("{prefix}{more}")).is_ok())
    }

    /// Every keyword, function and name (the schema's and the query's)
    /// longer than `prefix` that begins with it.
    fn words_beginning<'a>(
        &'a self,
        schema: &'a SchemaIndex,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        RESERVED
            .iter()
            .chain(OPERAND_KEYWORDS)
            .chain(OTHER_KEYWORDS)
            .chain(FUNCTIONS)
            .copied()
            .chain(self.defined_names(schema))
            .filter(move |word| word.len() > prefix.len() && word.starts_with(prefix))
    }

    /// The names the schema and the query so far define: tables, every
    /// table's columns, rowid aliases, CTEs, FROM aliases and SELECT-list
    /// aliases.
    fn defined_names<'a>(&'a self, schema: &'a SchemaIndex) -> impl Iterator<Item = &'a str> + 'a {
        schema
            .tables
            .iter()
            .flat_map(|t| {
                std::iter::once(t.name.as_str()).chain(t.columns.iter().map(String::as_str))
            })
            .chain(ROWID.iter().copied())
            .chain(self.scopes.iter().flat_map(|s| {
                s.ctes
                    .iter()
                    .map(|c| c.name.as_str())
                    .chain(s.aliases.iter().map(String::as_str))
                    .chain(s.sources.iter().map(|src| src.key.as_str()))
            }))
            .chain(
                self.result_columns()
                    .flat_map(|r| r.names.iter().map(String::as_str)),
            )
    }

    /// The result columns of every CTE and derived table in scope.
    fn result_columns(&self) -> impl Iterator<Item = &ResultColumns> {
        self.scopes.iter().flat_map(|s| {
            s.ctes
                .iter()
                .filter_map(|c| c.columns.as_ref())
                .chain(s.sources.iter().map(|src| &src.columns))
                .filter_map(|columns| match columns {
                    Columns::Result(result) => Some(result.as_ref()),
                    _ => None,
                })
        })
    }

    /// Whether a bare `name` can be a column somewhere: some table's
    /// column, a rowid, a result column's alias, or a column of a CTE or
    /// derived table in scope.
    fn column_name_exists(&self, schema: &SchemaIndex, name: &str) -> bool {
        schema
            .tables
            .iter()
            .any(|t| t.columns.iter().any(|c| c == name))
            || ROWID.contains(&name)
            || self
                .scopes
                .iter()
                .any(|s| s.aliases.iter().any(|a| a == name))
            || self.result_columns().any(|r| r.has(name))
    }

    /// Feeds `word` as the next token to a copy (the state is kept).
    pub(crate) fn take_word(&self, schema: &SchemaIndex, word: &str) -> Result<(), String> {
        let token = Token {
            tok: Tok::Word(word.to_string()),
            offset: 0,
        };
        self.clone().feed(schema, &token)
    }

    /// Why no word beginning with `prefix` fits here, in the words of the
    /// most telling refusal: a name that does not resolve (`no such column`)
    /// says more than `expected X, found Y`.
    pub fn word_rejection(&self, schema: &SchemaIndex, prefix: &str) -> String {
        let generic = format!("no name or keyword that fits here starts with `{prefix}`");
        // A column after `qualifier.` is checked whole as soon as it ends,
        // so the prefix taken as a whole word would only say that no column
        // is named like the prefix.
        if let Some(Frame::Expr {
            at: ExprAt::Qualified { qualifier, .. },
            ..
        }) = self.stack.last()
        {
            if !names_database(qualifier) {
                return format!("no column of `{qualifier}` starts with `{prefix}`");
            }
        }
        std::iter::once(prefix)
            .chain(self.words_beginning(schema, prefix))
            .filter_map(|word| self.take_word(schema, word).err())
            .find(|message| !message.starts_with("expected"))
            .unwrap_or(generic)
    }

    /// Whether an operand (a name, a function call, a keyword such as CASE)
    /// can start with `prefix`.
    fn operand_word_possible(&self, schema: &SchemaIndex, prefix: &str) -> bool {
        let starts = |name: &str| name.starts_with(prefix);
        self.known_word(schema, &starts)
            || OPERAND_KEYWORDS.iter().any(|k| starts(k))
            || FUNCTIONS.iter().any(|f| starts(f))
            || self.free_word_allowed(prefix)
    }

    /// Whether one of [`Parser::defined_names`] satisfies `starts`.
    fn known_word(&self, schema: &SchemaIndex, starts: &dyn Fn(&str) -> bool) -> bool {
        self.defined_names(schema).any(starts)
    }

    /// Whether a word nobody defined yet may stand in an expression: any
    /// word where a source or CTE whose columns are not tracked is in scope
    /// or defined (a FROM still to come may name it); a short one where a
    /// FROM clause is still to come.
    fn free_word_allowed(&self, word: &str) -> bool {
        self.untracked_columns()
            || (word.len() <= MAX_FORWARD_ALIAS
                && self
                    .scopes
                    .iter()
                    .any(|s| s.kind == ScopeKind::Core && !s.done)
                && self.unjoined_qualifier(word).is_none())
    }

    /// Why `qualifier.` cannot stand here, in an ON clause (or a FROM
    /// function's arguments): the SELECT list waits on that qualifier and
    /// no source joined so far, nor of an enclosing query, has it yet (nor
    /// may an enclosing query's FROM still define it). Stricter than
    /// SQLite, which lets an inner join's ON name a table joined after it
    /// (two Spider train queries do, never one the SELECT list waits on):
    /// a model that had promised `T1.x` and could not give `T1` a table with
    /// `x` wrote `FROM a AS T2 JOIN a AS T3 ON T1.x = T2.x` and never
    /// defined `T1`.
    fn unjoined_qualifier(&self, qualifier: &str) -> Option<String> {
        let index = self
            .scopes
            .iter()
            .rposition(|s| s.kind == ScopeKind::Core)?;
        let scope = &self.scopes[index];
        if !scope.in_from || scope.done || !scope.awaited.iter().any(|q| q == qualifier) {
            return None;
        }
        let cores = || {
            self.scopes[..=index]
                .iter()
                .filter(|s| s.kind == ScopeKind::Core)
        };
        if cores().any(|s| s.sources.iter().any(|src| src.key == qualifier))
            || self.scopes[..index]
                .iter()
                .any(|s| s.kind == ScopeKind::Core && !s.done)
        {
            return None;
        }
        Some(format!(
            "`{qualifier}` is not joined yet: the SELECT list waits on it, and an ON clause \
             reads the tables joined before it"
        ))
    }

    /// A source or CTE whose columns are not tracked is in scope or
    /// defined: any column name may resolve in it.
    fn untracked_columns(&self) -> bool {
        self.scopes.iter().any(|s| {
            s.ctes
                .iter()
                .any(|c| c.columns.as_ref().is_none_or(Columns::any_name))
                || (s.kind == ScopeKind::Core && s.sources.iter().any(|src| src.columns.any_name()))
        })
    }

    /// The source a qualifier names in the innermost scope that has it.
    fn source_for(&self, qualifier: &str) -> Option<&Source> {
        self.scopes
            .iter()
            .rev()
            .filter(|s| s.kind == ScopeKind::Core)
            .find_map(|s| s.sources.iter().find(|src| src.key == qualifier))
    }

    fn push(&mut self, frame: Frame) {
        self.stack.push(frame);
    }

    fn expr(&mut self) {
        self.push(Frame::Expr {
            at: ExprAt::Operand,
            no_and: false,
            compared: false,
        });
    }

    fn expr_list(&mut self) {
        self.push(Frame::ExprList);
        self.expr();
    }

    fn order_list(&mut self) {
        self.push(Frame::OrderList(OrderAt::AfterExpr));
        self.expr();
    }

    fn expect(&mut self, words: &'static [&'static str]) {
        self.push(Frame::Expect(words));
    }

    fn step(&mut self, schema: &SchemaIndex, frame: Frame, token: &Token) -> Result<Flow, String> {
        let t = &token.tok;
        match frame {
            Frame::Stmt(at) => self.stmt(at, t),
            Frame::Query(at) => self.query(schema, at, t),
            Frame::Core(at) => self.core(schema, at, t),
            Frame::From { at, nested, joined } => self.from(schema, at, nested, joined, token),
            Frame::Expr {
                at,
                no_and,
                compared,
            } => self.expression(schema, at, no_and, compared, token),
            Frame::ExprList => {
                if is_punct(t, ",") {
                    self.expr_list();
                    return Ok(Flow::Consumed);
                }
                Ok(Flow::Retry)
            }
            Frame::OrderList(OrderAt::AfterExpr) => {
                if is_kw(t, "asc") || is_kw(t, "desc") {
                    self.push(Frame::OrderList(OrderAt::AfterExpr));
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "nulls") {
                    self.push(Frame::OrderList(OrderAt::AfterExpr));
                    self.expect(&["first", "last"]);
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, ",") {
                    self.order_list();
                    return Ok(Flow::Consumed);
                }
                Ok(Flow::Retry)
            }
            Frame::Func(at) => self.function(at, t),
            Frame::Case(at) => self.case(at, t),
            Frame::Window(at) => self.window(at, t),
            Frame::CastType(seen) => {
                if let Tok::Word(_) | Tok::Quoted(_) | Tok::DQuoted(_) = t {
                    self.push(Frame::CastType(true));
                    return Ok(Flow::Consumed);
                }
                if !seen {
                    return Err(format!("expected a type name, found {t}"));
                }
                if is_punct(t, "(") {
                    self.expect(&[")"]);
                    self.push(Frame::Skip(0));
                    return Ok(Flow::Consumed);
                }
                Ok(Flow::Retry)
            }
            Frame::IdentList(at, cte) => match at {
                IdentAt::Start => {
                    if let Some(name) = ident(t) {
                        if cte {
                            self.list_cte_column(name);
                        }
                        self.push(Frame::IdentList(IdentAt::Next, cte));
                        return Ok(Flow::Consumed);
                    }
                    Err(format!("expected a column name, found {t}"))
                }
                IdentAt::Next => {
                    if is_punct(t, ",") {
                        self.push(Frame::IdentList(IdentAt::Start, cte));
                        return Ok(Flow::Consumed);
                    }
                    if is_punct(t, ")") {
                        return Ok(Flow::Consumed);
                    }
                    Err(format!("expected `,` or `)`, found {t}"))
                }
            },
            Frame::Skip(depth) => {
                if *t == Tok::End {
                    return Err("unclosed `(`".to_string());
                }
                if is_punct(t, "(") {
                    self.push(Frame::Skip(depth + 1));
                } else if is_punct(t, ")") {
                    if depth == 0 {
                        return Ok(Flow::Retry);
                    }
                    self.push(Frame::Skip(depth - 1));
                } else {
                    self.push(Frame::Skip(depth));
                }
                Ok(Flow::Consumed)
            }
            Frame::Expect(words) => {
                let hit = words.iter().any(|w| match t {
                    Tok::Word(x) => x == w,
                    Tok::Punct(p) => p == w,
                    _ => false,
                });
                if hit {
                    return Ok(Flow::Consumed);
                }
                let wanted: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();
                Err(format!("expected {}, found {t}", wanted.join(" or ")))
            }
        }
    }

    fn stmt(&mut self, at: StmtAt, t: &Tok) -> Result<Flow, String> {
        match at {
            StmtAt::Start => {
                self.push(Frame::Stmt(StmtAt::AfterQuery));
                self.push(Frame::Query(QueryAt::Start));
                Ok(Flow::Retry)
            }
            StmtAt::AfterQuery => {
                if is_punct(t, ";") {
                    self.push(Frame::Stmt(StmtAt::AfterSemi));
                    return Ok(Flow::Consumed);
                }
                if *t == Tok::End {
                    return Ok(Flow::Accept);
                }
                Err(format!("unexpected {t} after the end of the query"))
            }
            StmtAt::AfterSemi => {
                if *t == Tok::End {
                    return Ok(Flow::Accept);
                }
                Err(format!("a second statement ({t}) after `;`"))
            }
        }
    }

    fn query(&mut self, schema: &SchemaIndex, at: QueryAt, t: &Tok) -> Result<Flow, String> {
        let next = |p: &mut Self, at: QueryAt| p.push(Frame::Query(at));
        match at {
            QueryAt::Start => {
                self.scopes.push(Scope::new(ScopeKind::Query));
                if is_kw(t, "with") {
                    next(self, QueryAt::WithRecursive);
                    return Ok(Flow::Consumed);
                }
                next(self, QueryAt::Body);
                Ok(Flow::Retry)
            }
            QueryAt::WithRecursive => {
                next(self, QueryAt::CteName);
                Ok(if is_kw(t, "recursive") {
                    Flow::Consumed
                } else {
                    Flow::Retry
                })
            }
            QueryAt::CteName => {
                let Some(name) = ident(t) else {
                    return Err(format!("expected a CTE name, found {t}"));
                };
                if let Some(scope) = self.scopes.last_mut() {
                    scope.ctes.push(Cte {
                        name: name.to_string(),
                        columns: None,
                        listed: false,
                    });
                }
                next(self, QueryAt::CteAfterName);
                Ok(Flow::Consumed)
            }
            QueryAt::CteAfterName => {
                if is_punct(t, "(") {
                    next(self, QueryAt::CteAs);
                    self.push(Frame::IdentList(IdentAt::Start, true));
                    return Ok(Flow::Consumed);
                }
                next(self, QueryAt::CteAs);
                Ok(Flow::Retry)
            }
            QueryAt::CteAs => {
                if is_kw(t, "as") {
                    next(self, QueryAt::CteBody);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected AS, found {t}"))
            }
            QueryAt::CteBody => {
                if is_kw(t, "not") || is_kw(t, "materialized") {
                    next(self, QueryAt::CteBody);
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, "(") {
                    next(self, QueryAt::CteNext);
                    self.expect(&[")"]);
                    next(self, QueryAt::Start);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected `(`, found {t}"))
            }
            QueryAt::CteNext => {
                // Its `)` was the token before: the query just read is the
                // CTE's body.
                let body = std::mem::replace(&mut self.finished_columns, Columns::Untracked);
                if let Some(cte) = self.scopes.last_mut().and_then(|s| s.ctes.last_mut()) {
                    if !cte.listed {
                        cte.columns = Some(body);
                    }
                }
                if is_punct(t, ",") {
                    next(self, QueryAt::CteName);
                    return Ok(Flow::Consumed);
                }
                next(self, QueryAt::Body);
                Ok(Flow::Retry)
            }
            QueryAt::Body => {
                if is_kw(t, "select") || is_kw(t, "values") {
                    next(self, QueryAt::AfterCore);
                    self.push(Frame::Core(CoreAt::Start));
                    return Ok(Flow::Retry);
                }
                Err(format!("expected SELECT, found {t}"))
            }
            QueryAt::AfterCore => {
                if is_kw(t, "union") {
                    next(self, QueryAt::UnionAll);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "intersect") || is_kw(t, "except") {
                    next(self, QueryAt::Body);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "order") {
                    next(self, QueryAt::AfterOrder);
                    self.order_list();
                    self.expect(&["by"]);
                    return Ok(Flow::Consumed);
                }
                self.query(schema, QueryAt::AfterOrder, t)
            }
            QueryAt::UnionAll => {
                next(self, QueryAt::Body);
                Ok(if is_kw(t, "all") {
                    Flow::Consumed
                } else {
                    Flow::Retry
                })
            }
            QueryAt::AfterOrder => {
                if is_kw(t, "limit") {
                    next(self, QueryAt::AfterLimit);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                self.query(schema, QueryAt::Finished, t)
            }
            QueryAt::AfterLimit => {
                if is_kw(t, "offset") || is_punct(t, ",") {
                    next(self, QueryAt::Finished);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                self.query(schema, QueryAt::Finished, t)
            }
            QueryAt::Finished => {
                while let Some(scope) = self.scopes.pop() {
                    if scope.kind == ScopeKind::Query {
                        self.finished_columns = scope.first_columns.unwrap_or(Columns::Untracked);
                        break;
                    }
                    self.end_core(schema, &scope);
                }
                Ok(Flow::Retry)
            }
        }
    }

    /// A new SELECT core: its own scope, which replaces the previous core's
    /// in a compound (keeping its aliases, which ORDER BY may name).
    fn begin_core(&mut self, schema: &SchemaIndex) {
        let mut scope = Scope::new(ScopeKind::Core);
        if self.scopes.last().map(|s| s.kind) == Some(ScopeKind::Core) {
            if let Some(previous) = self.scopes.pop() {
                self.end_core(schema, &previous);
                scope.aliases = previous.aliases;
            }
        }
        self.scopes.push(scope);
    }

    /// A SELECT core is read: the first of its compound names the query's
    /// result columns (its enclosing query scope is now the last).
    fn end_core(&mut self, schema: &SchemaIndex, core: &Scope) {
        if core.kind != ScopeKind::Core {
            return;
        }
        if let Some(query) = self.scopes.last_mut() {
            if query.kind == ScopeKind::Query && query.first_columns.is_none() {
                query.first_columns = Some(core_columns(schema, core));
            }
        }
    }

    /// A name in a CTE's column list (`cnt(x, y) AS ...`).
    fn list_cte_column(&mut self, name: &str) {
        let Some(cte) = self.scopes.last_mut().and_then(|s| s.ctes.last_mut()) else {
            return;
        };
        if !cte.listed {
            cte.listed = true;
            cte.columns = Some(Columns::Result(Arc::default()));
        }
        if let Some(Columns::Result(result)) = &mut cte.columns {
            Arc::make_mut(result).names.push(name.to_string());
        }
    }

    /// The query scope whose compound the current core belongs to.
    fn compound_scope(&mut self) -> Option<&mut Scope> {
        let core = self
            .scopes
            .iter()
            .rposition(|s| s.kind == ScopeKind::Core)?;
        self.scopes[..core]
            .iter_mut()
            .rev()
            .find(|s| s.kind == ScopeKind::Query)
    }

    /// At the end of a result column: another one (`more`) may not pass the
    /// compound's first SELECT's width, and a finished list must reach it.
    /// The first SELECT's finished list sets the width.
    fn check_result_width(&mut self, more: bool) -> Result<(), String> {
        let Some(core) = self.core_scope() else {
            return Ok(());
        };
        let (columns, star) = (core.result_columns, core.result_star);
        let Some(query) = self.compound_scope() else {
            return Ok(());
        };
        match query.compound_width {
            Width::Unset if !more => {
                query.compound_width = if star {
                    Width::Unknown
                } else {
                    Width::Known(columns)
                };
                Ok(())
            }
            Width::Known(width)
                if (more && columns >= width) || (!more && columns != width && !star) =>
            {
                Err(format!(
                    "each SELECT of a compound has the first one's {width} result column(s), \
                     this one {}",
                    if more {
                        format!("more than {columns}")
                    } else {
                        columns.to_string()
                    }
                ))
            }
            _ => Ok(()),
        }
    }

    /// The innermost SELECT core's scope, read-only.
    fn innermost_core(&self) -> Option<&Scope> {
        self.scopes.iter().rfind(|s| s.kind == ScopeKind::Core)
    }

    fn core_scope(&mut self) -> Option<&mut Scope> {
        self.scopes
            .iter_mut()
            .rev()
            .find(|s| s.kind == ScopeKind::Core)
    }

    fn core(&mut self, schema: &SchemaIndex, at: CoreAt, t: &Tok) -> Result<Flow, String> {
        let next = |p: &mut Self, at: CoreAt| p.push(Frame::Core(at));
        match at {
            CoreAt::Start => {
                self.begin_core(schema);
                if is_kw(t, "values") {
                    // Named column1, column2, ...: not tracked.
                    if let Some(scope) = self.core_scope() {
                        scope.result_items.push(ResultItem::Unknown);
                    }
                    if let Some(query) = self.compound_scope() {
                        if query.compound_width == Width::Unset {
                            query.compound_width = Width::Unknown;
                        }
                    }
                    self.finish_from(schema)?;
                    next(self, CoreAt::ValuesRow);
                } else {
                    next(self, CoreAt::Distinct);
                }
                Ok(Flow::Consumed)
            }
            CoreAt::Distinct => {
                next(self, CoreAt::Result);
                Ok(if is_kw(t, "distinct") || is_kw(t, "all") {
                    Flow::Consumed
                } else {
                    Flow::Retry
                })
            }
            CoreAt::Result => {
                let star = is_punct(t, "*");
                let conventional = self.conventional;
                if let Some(scope) = self.core_scope() {
                    if conventional && scope.result_columns == MAX_CONVENTIONAL_RESULT_COLUMNS {
                        return Err(format!(
                            "more than {MAX_CONVENTIONAL_RESULT_COLUMNS} result columns \
                             (conventional rules)"
                        ));
                    }
                    scope.result_columns += 1;
                    scope.result_star |= star;
                    if star {
                        scope.result_items.push(ResultItem::Star(None));
                    } else {
                        scope.item_tokens = Some(vec![t.clone()]);
                    }
                }
                if star {
                    next(self, CoreAt::AfterResult);
                    return Ok(Flow::Consumed);
                }
                next(self, CoreAt::ResultAlias);
                self.expr();
                Ok(Flow::Retry)
            }
            CoreAt::ResultAlias => {
                if let Some(scope) = self.core_scope() {
                    if let Some(mut tokens) = scope.item_tokens.take() {
                        // The last one is `t`, the token after the item.
                        tokens.pop();
                        scope.result_items.push(result_item(&tokens));
                    }
                }
                if is_kw(t, "as") {
                    next(self, CoreAt::AliasName);
                    return Ok(Flow::Consumed);
                }
                if let Some(name) = alias(t) {
                    if let Some(scope) = self.core_scope() {
                        scope.name_last_item(t, &name);
                        scope.aliases.push(name);
                    }
                    next(self, CoreAt::AfterResult);
                    return Ok(Flow::Consumed);
                }
                next(self, CoreAt::AfterResult);
                Ok(Flow::Retry)
            }
            CoreAt::AliasName => {
                let name = match t {
                    // After AS SQLite takes most keywords as a name too.
                    Tok::Word(w) if !matches!(w.as_str(), "from" | "where" | "select") => {
                        Some(w.clone())
                    }
                    _ => alias(t),
                };
                let Some(name) = name else {
                    return Err(format!("expected an alias after AS, found {t}"));
                };
                if let Some(scope) = self.core_scope() {
                    scope.name_last_item(t, &name);
                    scope.aliases.push(name);
                }
                next(self, CoreAt::AfterResult);
                Ok(Flow::Consumed)
            }
            CoreAt::AfterResult => {
                let more = is_punct(t, ",");
                self.check_result_width(more)?;
                if more {
                    next(self, CoreAt::Result);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "from") {
                    if let Some(scope) = self.core_scope() {
                        scope.in_from = true;
                        scope.awaited = scope
                            .pending
                            .iter()
                            .filter_map(|r| r.qualifier.clone())
                            .collect();
                    }
                    next(self, CoreAt::AfterFrom);
                    self.push(Frame::From {
                        at: FromAt::TableStart,
                        nested: false,
                        joined: false,
                    });
                    return Ok(Flow::Consumed);
                }
                if let Some(scope) = self.core_scope() {
                    scope.from_less = true;
                }
                self.finish_from(schema)?;
                self.core(schema, CoreAt::AfterFrom, t)
            }
            CoreAt::AfterFrom => {
                if is_kw(t, "where") {
                    next(self, CoreAt::AfterWhere);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                self.core(schema, CoreAt::AfterWhere, t)
            }
            CoreAt::AfterWhere => {
                if is_kw(t, "group") {
                    next(self, CoreAt::AfterGroup);
                    self.expr_list();
                    self.expect(&["by"]);
                    return Ok(Flow::Consumed);
                }
                self.core(schema, CoreAt::AfterGroup, t)
            }
            CoreAt::AfterGroup => {
                if is_kw(t, "having") {
                    next(self, CoreAt::AfterHaving);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                self.core(schema, CoreAt::AfterHaving, t)
            }
            CoreAt::AfterHaving => {
                if is_kw(t, "window") {
                    next(self, CoreAt::WindowName);
                    return Ok(Flow::Consumed);
                }
                Ok(Flow::Retry)
            }
            CoreAt::WindowName => {
                if ident(t).is_none() {
                    return Err(format!("expected a window name, found {t}"));
                }
                next(self, CoreAt::WindowAs);
                Ok(Flow::Consumed)
            }
            CoreAt::WindowAs => {
                if !is_kw(t, "as") {
                    return Err(format!("expected AS, found {t}"));
                }
                next(self, CoreAt::WindowNext);
                self.push(Frame::Window(WindowAt::Open));
                Ok(Flow::Consumed)
            }
            CoreAt::WindowNext => {
                if is_punct(t, ",") {
                    next(self, CoreAt::WindowName);
                    return Ok(Flow::Consumed);
                }
                Ok(Flow::Retry)
            }
            CoreAt::ValuesRow => {
                if !is_punct(t, "(") {
                    return Err(format!("expected `(`, found {t}"));
                }
                next(self, CoreAt::ValuesNext);
                self.expect(&[")"]);
                self.expr_list();
                Ok(Flow::Consumed)
            }
            CoreAt::ValuesNext => {
                if is_punct(t, ",") {
                    next(self, CoreAt::ValuesRow);
                    return Ok(Flow::Consumed);
                }
                Ok(Flow::Retry)
            }
        }
    }

    /// With `conventional`: in a core whose SELECT list reads through `T1`
    /// (a numbered alias with number 1), the first table of FROM is `T1`,
    /// so it has every column read that way. Gold SQL keeps it (Spider:
    /// all but the 2 queries that alias their first table `T2`); a model
    /// that promised `T1.x` and began FROM with a table without `x` could
    /// only call it `T2` and never define `T1` where `x` is.
    fn check_conventional_first_table(
        &self,
        schema: &SchemaIndex,
        name: &str,
    ) -> Result<(), String> {
        let Some(core) = self.innermost_core() else {
            return Ok(());
        };
        if !core.sources.is_empty() {
            return Ok(());
        }
        let Some(first) = core
            .awaited
            .iter()
            .find(|q| numbered_alias(q).is_some_and(|(_, number)| number == 1))
        else {
            return Ok(());
        };
        let Ok(source) = self.table_source(schema, name) else {
            return Ok(());
        };
        let missing = core
            .pending
            .iter()
            .find_map(|r| match (&r.qualifier, &r.column) {
                (Some(q), Some(column))
                    if q.eq_ignore_ascii_case(first) && !source.columns.has(schema, column) =>
                {
                    Some(column)
                }
                _ => None,
            });
        match missing {
            Some(column) => Err(format!(
                "`{name}` has no column `{column}`, and the SELECT list reads `{first}.{column}`: \
                 the first table of FROM is `{first}`"
            )),
            None => Ok(()),
        }
    }

    /// A table or CTE name in FROM: its source, or why there is none.
    fn table_source(&self, schema: &SchemaIndex, name: &str) -> Result<Source, String> {
        if let Some(cte) = self.cte(name) {
            return Ok(Source {
                key: name.to_string(),
                columns: cte.columns.clone().unwrap_or(Columns::Untracked),
            });
        }
        match schema.table_index(name) {
            Some(index) => Ok(Source {
                key: name.to_string(),
                columns: Columns::Table(index),
            }),
            None => Err(format!("no such table: {name}")),
        }
    }

    /// Adds a FROM source. References through its key that were waiting
    /// for FROM (`SELECT T2.x FROM a AS T1 JOIN b AS T2`) are settled now:
    /// no later source can take that key.
    ///
    /// Stricter than SQLite, which accepts a second source under one name
    /// (`FROM a AS T1 JOIN b AS T1`, `FROM city JOIN city`) and then calls
    /// every `T1.x` or `city.x` ambiguous or resolves it to whichever table
    /// has `x`: it is always a mistake, and one a looping decoder makes.
    fn add_source(&mut self, schema: &SchemaIndex, source: Source) -> Result<(), String> {
        let Some(index) = self.scopes.iter().rposition(|s| s.kind == ScopeKind::Core) else {
            return Ok(());
        };
        if self.scopes[index]
            .sources
            .iter()
            .any(|s| s.key.eq_ignore_ascii_case(&source.key))
        {
            return Err(match source.columns {
                Columns::Table(table)
                    if schema.tables[table].name.eq_ignore_ascii_case(&source.key) =>
                {
                    format!(
                        "the table `{}` is already in FROM: a second one needs an alias",
                        source.key
                    )
                }
                _ => format!("the alias `{}` is already defined", source.key),
            });
        }
        let key = source.key.clone();
        let scope = &mut self.scopes[index];
        scope.sources.push(source);
        let (now, later): (Vec<Ref>, Vec<Ref>) = std::mem::take(&mut scope.pending)
            .into_iter()
            .partition(|r| r.qualifier.as_deref() == Some(key.as_str()));
        scope.pending = later;
        for reference in now {
            self.settle(schema, reference, index)?;
        }
        Ok(())
    }

    /// Adds a source under an explicit alias.
    fn add_aliased_source(
        &mut self,
        schema: &SchemaIndex,
        columns: Columns,
        alias: &str,
    ) -> Result<(), String> {
        if alias.contains(QUOTE_CHARS) {
            return Err(format!(
                "a quote character inside the alias `{alias}` (see quoted_alias_rejection)"
            ));
        }
        if !numbered_alias_ends_at_its_number(alias) {
            return Err(format!(
                "the alias `{alias}` goes on past its number (a numbered alias ends with \
                 at most {MAX_ALIAS_DIGITS} digits)"
            ));
        }
        if self.conventional {
            self.check_conventional_alias(alias)?;
        }
        let key = alias.to_string();
        self.add_source(schema, Source { key, columns })
    }

    /// With `conventional`: an alias has at most [`MAX_CONVENTIONAL_ALIAS`]
    /// characters, and a numbered one is a letter and either one the
    /// SELECT list reads through (`SELECT t2.x FROM a AS t2`), or 1 (a core
    /// starting its numbering, as subqueries do), or one more than the
    /// numbered alias defined last (`T1`, then `T2`; a compound's second
    /// SELECT or a subquery may go on from `T3`). A model that promised
    /// `T1.x` in its SELECT list and then named its first table `T2` (a
    /// table without `x`) can never define `T1` where `x` is: this makes it
    /// choose a table with `x` first.
    fn check_conventional_alias(&mut self, alias: &str) -> Result<(), String> {
        if alias.len() > MAX_CONVENTIONAL_ALIAS {
            return Err(format!(
                "the alias `{alias}` is longer than {MAX_CONVENTIONAL_ALIAS} characters"
            ));
        }
        let Some((letters, number)) = numbered_alias(alias) else {
            return Ok(());
        };
        if letters.len() > 1 {
            return Err(format!(
                "the alias `{alias}`: a numbered alias is one letter and its number (`T1`)"
            ));
        }
        let awaited = self
            .innermost_core()
            .is_some_and(|core| core.awaited.iter().any(|q| q.eq_ignore_ascii_case(alias)));
        if !awaited && number != 1 && number != self.last_alias_number + 1 {
            return Err(format!(
                "the alias `{alias}` out of order: numbered aliases here are {letters}1 or \
                 {letters}{}",
                self.last_alias_number + 1
            ));
        }
        self.last_alias_number = number;
        Ok(())
    }

    fn from(
        &mut self,
        schema: &SchemaIndex,
        at: FromAt,
        nested: bool,
        joined: bool,
        token: &Token,
    ) -> Result<Flow, String> {
        let t = &token.tok;
        let next = |p: &mut Self, at: FromAt| p.push(Frame::From { at, nested, joined });
        // The next source, after JOIN or a comma.
        let next_source = |p: &mut Self| {
            p.push(Frame::From {
                at: FromAt::TableStart,
                nested,
                joined: true,
            })
        };
        match at {
            FromAt::TableStart => {
                if is_punct(t, "(") {
                    next(self, FromAt::ParenOpen);
                    return Ok(Flow::Consumed);
                }
                // SQLite takes keywords such as CAST as names where only a
                // name can stand: a table the schema has is one.
                let name = match t {
                    Tok::Word(w) if self.table_source(schema, w).is_ok() => Some(w.as_str()),
                    _ => ident(t),
                };
                let Some(name) = name else {
                    return Err(format!("expected a table name, found {t}"));
                };
                // Settled now, not when the next token comes: a name that
                // arrives whole (a schema symbol) and is followed by
                // comments only would otherwise never be checked (a model
                // wrote `FROM rgnId` and then `-- ...` lines to the limit).
                let lower = name.to_ascii_lowercase();
                if self.table_source(schema, &lower).is_err()
                    && !names_database(&lower)
                    && !TABLE_FUNCTIONS.contains(&lower.as_str())
                {
                    return Err(format!("no such table: {name}"));
                }
                if self.conventional {
                    self.check_conventional_first_table(schema, &lower)?;
                }
                next(
                    self,
                    FromAt::AfterName {
                        name: name.to_string(),
                        offset: token.offset,
                        qualified: false,
                    },
                );
                Ok(Flow::Consumed)
            }
            FromAt::AfterName {
                name,
                offset,
                qualified,
            } => {
                if is_punct(t, ".") {
                    // database.table: the database is `main`.
                    if qualified || !names_database(&name.to_ascii_lowercase()) {
                        return Err(format!("`{name}.`: `{name}` is not the database `main`"));
                    }
                    next(self, FromAt::AfterSchemaDot);
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, "(") {
                    // A table-valued function (json_each(...)), SQLite's only.
                    if qualified || !TABLE_FUNCTIONS.contains(&name.to_ascii_lowercase().as_str()) {
                        return Err(format!("`{name}` is not a table-valued function"));
                    }
                    next(self, FromAt::Derived { function: true });
                    self.push(Frame::Func(FuncAt::Start(ArgumentBound::NONE)));
                    return Ok(Flow::Consumed);
                }
                let source = self
                    .table_source(schema, &name)
                    .map_err(|e| format!("{e} (at byte {offset})"))?;
                next(self, FromAt::Alias { source });
                Ok(Flow::Retry)
            }
            FromAt::AfterSchemaDot => {
                let Some(name) = ident(t) else {
                    return Err(format!("expected a table name, found {t}"));
                };
                if schema.table_index(&name.to_ascii_lowercase()).is_none() {
                    return Err(format!("no such table: main.{name}"));
                }
                next(
                    self,
                    FromAt::AfterName {
                        name: name.to_string(),
                        offset: token.offset,
                        qualified: true,
                    },
                );
                Ok(Flow::Consumed)
            }
            FromAt::Alias { source } => {
                if is_kw(t, "as") {
                    next(self, FromAt::AliasName { source });
                    return Ok(Flow::Consumed);
                }
                if let Some(name) = ident(t) {
                    // Non-reserved keywords (GROUPS, FILTER...) are names
                    // too, so the typing check cannot stop these.
                    if name.chars().count() > MAX_IMPLICIT_ALIAS && matches!(t, Tok::Word(_)) {
                        return Err(format!(
                            "expected a keyword or an alias of at most {MAX_IMPLICIT_ALIAS} \
                             characters (without AS), found `{name}`"
                        ));
                    }
                    self.add_aliased_source(schema, source.columns, name)?;
                    next(self, FromAt::AfterTable);
                    return Ok(Flow::Consumed);
                }
                self.add_source(schema, source)?;
                next(self, FromAt::AfterTable);
                Ok(Flow::Retry)
            }
            FromAt::AliasName { source } => {
                let Some(name) = ident(t) else {
                    return Err(format!("expected an alias after AS, found {t}"));
                };
                self.add_aliased_source(schema, source.columns, name)?;
                next(self, FromAt::AfterTable);
                Ok(Flow::Consumed)
            }
            FromAt::ParenOpen => {
                if starts_query(t) {
                    next(self, FromAt::Derived { function: false });
                    self.expect(&[")"]);
                    self.push(Frame::Query(QueryAt::Start));
                    return Ok(Flow::Retry);
                }
                next(self, FromAt::NestedClose);
                self.push(Frame::From {
                    at: FromAt::TableStart,
                    nested: true,
                    joined: false,
                });
                Ok(Flow::Retry)
            }
            FromAt::NestedClose => {
                if is_punct(t, ")") {
                    next(self, FromAt::AfterTable);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected `)`, found {t}"))
            }
            FromAt::Derived { function } => {
                // Its `)` was the token before: the subquery just read is
                // the derived table's.
                let columns = if function {
                    Columns::Untracked
                } else {
                    std::mem::replace(&mut self.finished_columns, Columns::Untracked)
                };
                if is_kw(t, "as") {
                    next(self, FromAt::DerivedAliasName { columns });
                    return Ok(Flow::Consumed);
                }
                if let Some(name) = ident(t) {
                    self.add_aliased_source(schema, columns, name)?;
                    next(self, FromAt::AfterTable);
                    return Ok(Flow::Consumed);
                }
                self.add_source(
                    schema,
                    Source {
                        key: String::new(),
                        columns,
                    },
                )?;
                next(self, FromAt::AfterTable);
                Ok(Flow::Retry)
            }
            FromAt::DerivedAliasName { columns } => {
                let Some(name) = ident(t) else {
                    return Err(format!("expected an alias after AS, found {t}"));
                };
                self.add_aliased_source(schema, columns, name)?;
                next(self, FromAt::AfterTable);
                Ok(Flow::Consumed)
            }
            FromAt::AfterTable => {
                let merge = |p: &mut Self| {
                    if let Some(scope) = p.core_scope() {
                        scope.merged_columns = true;
                    }
                };
                if is_punct(t, ",") || is_kw(t, "join") {
                    next_source(self);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "natural") {
                    merge(self);
                    next(self, FromAt::JoinNatural);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "left") || is_kw(t, "right") || is_kw(t, "full") {
                    next(self, FromAt::JoinOuter);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "inner") || is_kw(t, "cross") {
                    next(self, FromAt::Join);
                    return Ok(Flow::Consumed);
                }
                if (is_kw(t, "on") || is_kw(t, "using")) && !joined {
                    return Err(format!("a JOIN clause is required before {t}"));
                }
                if is_kw(t, "on") {
                    next(self, FromAt::AfterConstraint);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "using") {
                    merge(self);
                    next(self, FromAt::AfterConstraint);
                    self.push(Frame::IdentList(IdentAt::Start, false));
                    self.expect(&["("]);
                    return Ok(Flow::Consumed);
                }
                if !nested {
                    self.finish_from(schema)?;
                }
                Ok(Flow::Retry)
            }
            FromAt::AfterConstraint => {
                if is_kw(t, "on") || is_kw(t, "using") {
                    return Err(format!(
                        "a join has one ON or USING constraint, found a second {t}"
                    ));
                }
                self.from(schema, FromAt::AfterTable, nested, joined, token)
            }
            FromAt::JoinNatural => {
                if is_kw(t, "left") || is_kw(t, "right") || is_kw(t, "full") {
                    next(self, FromAt::JoinOuter);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "inner") || is_kw(t, "cross") {
                    next(self, FromAt::Join);
                    return Ok(Flow::Consumed);
                }
                self.from(schema, FromAt::Join, nested, joined, token)
            }
            FromAt::JoinOuter => {
                if is_kw(t, "outer") {
                    next(self, FromAt::Join);
                    return Ok(Flow::Consumed);
                }
                self.from(schema, FromAt::Join, nested, joined, token)
            }
            FromAt::Join => {
                if is_kw(t, "join") {
                    next_source(self);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected JOIN, found {t}"))
            }
        }
    }

    fn expression(
        &mut self,
        schema: &SchemaIndex,
        at: ExprAt,
        no_and: bool,
        compared: bool,
        token: &Token,
    ) -> Result<Flow, String> {
        let t = &token.tok;
        let next = |p: &mut Self, at: ExprAt| {
            p.push(Frame::Expr {
                at,
                no_and,
                compared,
            })
        };
        let subquery = |p: &mut Self| {
            next(p, ExprAt::AfterOperand);
            p.expect(&[")"]);
            p.push(Frame::Query(QueryAt::Start));
        };
        match at {
            ExprAt::Operand => {
                match t {
                    Tok::Punct("-" | "+" | "~") => next(self, ExprAt::Operand),
                    Tok::Num | Tok::Str | Tok::DQuoted(_) | Tok::Punct("?") => {
                        next(self, ExprAt::AfterOperand)
                    }
                    Tok::Punct("(") => next(self, ExprAt::ParenOpen),
                    Tok::Word(w) => match w.as_str() {
                        "not" => next(self, ExprAt::Operand),
                        "null" | "true" | "false" | "current_date" | "current_time"
                        | "current_timestamp" => next(self, ExprAt::AfterOperand),
                        "case" => {
                            next(self, ExprAt::AfterOperand);
                            self.push(Frame::Case(CaseAt::Start));
                        }
                        "cast" => {
                            next(self, ExprAt::AfterOperand);
                            self.expect(&[")"]);
                            self.push(Frame::CastType(false));
                            self.expect(&["as"]);
                            self.expr();
                            self.expect(&["("]);
                        }
                        "exists" => {
                            subquery(self);
                            self.expect(&["("]);
                        }
                        _ if reserved(w) => {
                            return Err(format!("expected an expression, found {t}"))
                        }
                        _ => next(
                            self,
                            ExprAt::AfterName {
                                name: w.clone(),
                                offset: token.offset,
                            },
                        ),
                    },
                    Tok::Quoted(w) => next(
                        self,
                        ExprAt::AfterName {
                            name: w.clone(),
                            offset: token.offset,
                        },
                    ),
                    _ => return Err(format!("expected an expression, found {t}")),
                }
                Ok(Flow::Consumed)
            }
            ExprAt::AfterName { name, offset } => {
                if is_punct(t, "(") {
                    // Only built-in functions: a query against a plain
                    // database file has no others (`WHERE city_code (*)`).
                    if !FUNCTIONS.contains(&name.to_ascii_lowercase().as_str()) {
                        return Err(format!("no such function: {name}"));
                    }
                    next(self, ExprAt::AfterOperand);
                    self.push(Frame::Func(FuncAt::Start(ArgumentBound::of(&name))));
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, ".") {
                    if let Some(message) = self.unjoined_qualifier(&name) {
                        return Err(message);
                    }
                    if let Some(message) = self.unknown_qualifier(schema, &name, offset) {
                        return Err(message);
                    }
                    next(
                        self,
                        ExprAt::Qualified {
                            qualifier: name,
                            offset,
                        },
                    );
                    return Ok(Flow::Consumed);
                }
                self.reference(
                    schema,
                    Ref {
                        qualifier: None,
                        column: Some(name),
                        offset,
                    },
                )?;
                next(self, ExprAt::AfterOperand);
                Ok(Flow::Retry)
            }
            ExprAt::Qualified { qualifier, offset } => {
                if is_punct(t, "*") {
                    if let Some(scope) = self.core_scope() {
                        scope.result_star = true;
                    }
                    self.reference(
                        schema,
                        Ref {
                            qualifier: Some(qualifier),
                            column: None,
                            offset,
                        },
                    )?;
                    next(self, ExprAt::AfterOperand);
                    return Ok(Flow::Consumed);
                }
                let column = match t {
                    Tok::Word(w) | Tok::Quoted(w) | Tok::DQuoted(w) => w.clone(),
                    _ => return Err(format!("expected a column name after `{qualifier}.`")),
                };
                // After a qualifier that is no database no `.` can follow
                // (`database.table.column` only): the column is checked
                // now, as its name ends, rather than at the next token,
                // which blanks would put off.
                if !names_database(&qualifier) {
                    self.reference(
                        schema,
                        Ref {
                            qualifier: Some(qualifier.clone()),
                            column: Some(column.clone()),
                            offset,
                        },
                    )?;
                }
                next(
                    self,
                    ExprAt::Qualified2 {
                        qualifier,
                        column,
                        offset,
                    },
                );
                Ok(Flow::Consumed)
            }
            ExprAt::Qualified2 {
                qualifier,
                column,
                offset,
            } => {
                let database = names_database(&qualifier);
                if is_punct(t, ".") {
                    // database.table.column: the database is `main`, and
                    // the column is looked up in that table.
                    if !database {
                        return Err(format!(
                            "`{qualifier}.{column}.`: `{qualifier}` is not the database \
                             `main`"
                        ));
                    }
                    next(
                        self,
                        ExprAt::Qualified3 {
                            table: column,
                            offset,
                        },
                    );
                    return Ok(Flow::Consumed);
                }
                // Checked as its name ended unless the qualifier could
                // have been a database.
                if database {
                    self.reference(
                        schema,
                        Ref {
                            qualifier: Some(qualifier),
                            column: Some(column),
                            offset,
                        },
                    )?;
                }
                next(self, ExprAt::AfterOperand);
                Ok(Flow::Retry)
            }
            ExprAt::Qualified3 { table, offset } => match t {
                Tok::Word(w) | Tok::Quoted(w) | Tok::DQuoted(w) => {
                    self.reference(
                        schema,
                        Ref {
                            qualifier: Some(table),
                            column: Some(w.clone()),
                            offset,
                        },
                    )?;
                    next(self, ExprAt::AfterOperand);
                    Ok(Flow::Consumed)
                }
                _ => Err(format!("expected a column name, found {t}")),
            },
            ExprAt::AfterOperand => {
                let operand = |p: &mut Self| {
                    next(p, ExprAt::Operand);
                    Ok(Flow::Consumed)
                };
                // The next operand, after a comparison or after AND/OR
                // (which start a new comparison).
                let compared_operand = |p: &mut Self, compared: bool| {
                    p.push(Frame::Expr {
                        at: ExprAt::Operand,
                        no_and,
                        compared,
                    });
                    Ok(Flow::Consumed)
                };
                match t {
                    // Stricter than SQLite, which reads `a = b = c` as
                    // `(a = b) = c`: no gold query chains comparisons, and a
                    // looping model does (`ON T3.id = T3.id = T3.id …`).
                    Tok::Punct(p) if COMPARISONS.contains(p) => {
                        if compared {
                            return Err(format!(
                                "a second comparison `{p}` in a row (`a = b = c`); join \
                                 conditions with AND or OR"
                            ));
                        }
                        compared_operand(self, true)
                    }
                    Tok::Punct(p) if BINARY.contains(p) => operand(self),
                    Tok::Word(w) => match w.as_str() {
                        "and" if no_and => Ok(Flow::Retry),
                        "and" | "or" => compared_operand(self, false),
                        "like" | "glob" | "regexp" | "match" | "escape" => operand(self),
                        "is" => {
                            next(self, ExprAt::IsRest);
                            Ok(Flow::Consumed)
                        }
                        "not" => {
                            next(self, ExprAt::NotOp);
                            Ok(Flow::Consumed)
                        }
                        "in" => {
                            next(self, ExprAt::InOpen);
                            Ok(Flow::Consumed)
                        }
                        "between" => {
                            next(self, ExprAt::AfterBetween);
                            self.push(Frame::Expr {
                                at: ExprAt::Operand,
                                no_and: true,
                                compared: false,
                            });
                            Ok(Flow::Consumed)
                        }
                        "isnull" | "notnull" => {
                            next(self, ExprAt::AfterOperand);
                            Ok(Flow::Consumed)
                        }
                        "collate" => {
                            next(self, ExprAt::AfterOperand);
                            self.expect(COLLATIONS);
                            Ok(Flow::Consumed)
                        }
                        _ => Ok(Flow::Retry),
                    },
                    _ => Ok(Flow::Retry),
                }
            }
            ExprAt::AfterBetween => {
                if is_kw(t, "and") {
                    next(self, ExprAt::Operand);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected AND after BETWEEN, found {t}"))
            }
            ExprAt::IsRest | ExprAt::IsNot => {
                if at == ExprAt::IsRest && is_kw(t, "not") {
                    next(self, ExprAt::IsNot);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "distinct") {
                    next(self, ExprAt::Operand);
                    self.expect(&["from"]);
                    return Ok(Flow::Consumed);
                }
                next(self, ExprAt::Operand);
                Ok(Flow::Retry)
            }
            ExprAt::NotOp => match t {
                Tok::Word(w) => match w.as_str() {
                    "in" => {
                        next(self, ExprAt::InOpen);
                        Ok(Flow::Consumed)
                    }
                    "like" | "glob" | "regexp" | "match" => {
                        next(self, ExprAt::Operand);
                        Ok(Flow::Consumed)
                    }
                    "null" => {
                        next(self, ExprAt::AfterOperand);
                        Ok(Flow::Consumed)
                    }
                    "between" => {
                        self.expression(schema, ExprAt::AfterOperand, no_and, compared, token)
                    }
                    _ => Err(format!(
                        "expected IN, LIKE, BETWEEN or NULL after NOT, found {t}"
                    )),
                },
                _ => Err(format!(
                    "expected IN, LIKE, BETWEEN or NULL after NOT, found {t}"
                )),
            },
            ExprAt::InOpen => {
                if is_punct(t, "(") {
                    next(self, ExprAt::InParen);
                    return Ok(Flow::Consumed);
                }
                if let Some(name) = ident(t) {
                    self.table_source(schema, name)?;
                    next(self, ExprAt::AfterOperand);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected `(` after IN, found {t}"))
            }
            ExprAt::InParen => {
                if starts_query(t) {
                    subquery(self);
                    return Ok(Flow::Retry);
                }
                if is_punct(t, ")") {
                    next(self, ExprAt::AfterOperand);
                    return Ok(Flow::Consumed);
                }
                next(self, ExprAt::ParenList);
                self.expr();
                Ok(Flow::Retry)
            }
            ExprAt::ParenOpen => {
                if starts_query(t) {
                    subquery(self);
                    return Ok(Flow::Retry);
                }
                next(self, ExprAt::ParenList);
                self.expr();
                Ok(Flow::Retry)
            }
            ExprAt::ParenList => {
                if is_punct(t, ",") {
                    next(self, ExprAt::ParenList);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, ")") {
                    next(self, ExprAt::AfterOperand);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected `,` or `)`, found {t}"))
            }
        }
    }

    fn function(&mut self, at: FuncAt, t: &Tok) -> Result<Flow, String> {
        let next = |p: &mut Self, at: FuncAt| p.push(Frame::Func(at));
        match at {
            FuncAt::Start(bound) => {
                if is_punct(t, ")") {
                    next(self, FuncAt::Post);
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, "*") {
                    next(self, FuncAt::Post);
                    self.expect(&[")"]);
                    return Ok(Flow::Consumed);
                }
                bound.admit(1)?;
                next(self, FuncAt::Args { count: 1, bound });
                self.expr();
                Ok(if is_kw(t, "distinct") || is_kw(t, "all") {
                    Flow::Consumed
                } else {
                    Flow::Retry
                })
            }
            FuncAt::Args { count, bound } => {
                if is_punct(t, ",") {
                    bound.admit(count + 1)?;
                    next(
                        self,
                        FuncAt::Args {
                            count: count + 1,
                            bound,
                        },
                    );
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "order") {
                    next(self, FuncAt::Args { count, bound });
                    self.order_list();
                    self.expect(&["by"]);
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, ")") {
                    next(self, FuncAt::Post);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected `,` or `)`, found {t}"))
            }
            FuncAt::Post => {
                if is_kw(t, "filter") {
                    next(self, FuncAt::Post);
                    self.expect(&[")"]);
                    self.expr();
                    self.expect(&["where"]);
                    self.expect(&["("]);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "over") {
                    self.push(Frame::Window(WindowAt::AfterOver));
                    return Ok(Flow::Consumed);
                }
                Ok(Flow::Retry)
            }
        }
    }

    fn case(&mut self, at: CaseAt, t: &Tok) -> Result<Flow, String> {
        let next = |p: &mut Self, at: CaseAt| p.push(Frame::Case(at));
        match at {
            CaseAt::Start => {
                if is_kw(t, "when") {
                    next(self, CaseAt::Then);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                next(self, CaseAt::ExpectWhen);
                self.expr();
                Ok(Flow::Retry)
            }
            CaseAt::ExpectWhen => {
                if is_kw(t, "when") {
                    next(self, CaseAt::Then);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected WHEN, found {t}"))
            }
            CaseAt::Then => {
                if is_kw(t, "then") {
                    next(self, CaseAt::AfterThen);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected THEN, found {t}"))
            }
            CaseAt::AfterThen => {
                if is_kw(t, "when") {
                    next(self, CaseAt::Then);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "else") {
                    self.expect(&["end"]);
                    self.expr();
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "end") {
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected WHEN, ELSE or END, found {t}"))
            }
        }
    }

    fn window(&mut self, at: WindowAt, t: &Tok) -> Result<Flow, String> {
        let spec = |p: &mut Self| p.push(Frame::Window(WindowAt::Spec));
        match at {
            WindowAt::AfterOver | WindowAt::Open => {
                if is_punct(t, "(") {
                    spec(self);
                    return Ok(Flow::Consumed);
                }
                if at == WindowAt::AfterOver && ident(t).is_some() {
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected a window, found {t}"))
            }
            WindowAt::Spec => {
                if is_kw(t, "partition") {
                    spec(self);
                    self.expr_list();
                    self.expect(&["by"]);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "order") {
                    spec(self);
                    self.order_list();
                    self.expect(&["by"]);
                    return Ok(Flow::Consumed);
                }
                if is_kw(t, "rows") || is_kw(t, "range") || is_kw(t, "groups") {
                    spec(self);
                    self.push(Frame::Skip(0));
                    return Ok(Flow::Consumed);
                }
                if is_punct(t, ")") {
                    return Ok(Flow::Consumed);
                }
                if ident(t).is_some() {
                    spec(self);
                    return Ok(Flow::Consumed);
                }
                Err(format!("expected `)` to close the window, found {t}"))
            }
        }
    }

    /// The innermost SELECT's FROM clause is complete: settle the references
    /// that waited for it.
    fn finish_from(&mut self, schema: &SchemaIndex) -> Result<(), String> {
        let Some(index) = self.scopes.iter().rposition(|s| s.kind == ScopeKind::Core) else {
            return Ok(());
        };
        self.scopes[index].done = true;
        let pending = std::mem::take(&mut self.scopes[index].pending);
        for reference in pending {
            self.settle(schema, reference, index)?;
        }
        for reference in std::mem::take(&mut self.scopes[index].settled_early) {
            if let Resolution::Error(message) = self.resolve(schema, &reference, index) {
                return Err(message);
            }
        }
        Ok(())
    }

    fn reference(&mut self, schema: &SchemaIndex, reference: Ref) -> Result<(), String> {
        let Some(index) = self.scopes.iter().rposition(|s| s.kind == ScopeKind::Core) else {
            return Ok(());
        };
        self.settle(schema, reference, index)
    }

    /// Why `qualifier.` can never resolve here: every FROM in scope has
    /// been read and none of its sources is named `qualifier` (a column's
    /// name written as one, `WHERE Title.trackid`, which a held search
    /// wrote and then found no way to finish). Before a FROM is read, a
    /// source it names may still come.
    fn unknown_qualifier(
        &self,
        schema: &SchemaIndex,
        qualifier: &str,
        offset: usize,
    ) -> Option<String> {
        if names_database(qualifier) || self.untracked_columns() {
            return None;
        }
        let index = self
            .scopes
            .iter()
            .rposition(|s| s.kind == ScopeKind::Core)?;
        let probe = Ref {
            qualifier: Some(qualifier.to_string()),
            column: None,
            offset,
        };
        match self.resolve(schema, &probe, index) {
            Resolution::Error(_) => Some(format!(
                "no such table or alias in scope: `{qualifier}` (at byte {offset})"
            )),
            _ => None,
        }
    }

    /// The columns of what a qualifier no FROM source has taken yet must
    /// stand for: the CTE or else the table of that name (see
    /// `impossible_qualified_column`), unless a source whose columns are not
    /// tracked is about.
    fn columns_named(&self, schema: &SchemaIndex, qualifier: &str) -> Option<Columns> {
        if self.untracked_columns() {
            return None;
        }
        match self.cte(qualifier) {
            Some(cte) => cte.columns.clone(),
            None => schema.table_index(qualifier).map(Columns::Table),
        }
    }

    /// Whether some table of the schema, or some CTE in scope, may have a
    /// column named `column`, or one whose name begins with it when
    /// `prefix` (a CTE whose columns are not all known may).
    fn some_column(&self, schema: &SchemaIndex, column: &str, prefix: bool) -> bool {
        let fits = |columns: &Columns| {
            if prefix {
                columns.has_prefix(schema, column)
            } else {
                columns.has(schema, column)
            }
        };
        (0..schema.tables.len()).any(|index| fits(&Columns::Table(index)))
            || self
                .scopes
                .iter()
                .flat_map(|s| &s.ctes)
                .any(|cte| cte.columns.as_ref().is_none_or(fits))
    }

    /// The innermost CTE of that name.
    fn cte(&self, name: &str) -> Option<&Cte> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.ctes.iter().rev().find(|c| c.name == name))
    }

    /// Why a qualified column waiting for FROM (`SELECT singer.x FROM ...`)
    /// can never resolve, when that is certain now: a qualifier that is a
    /// table's name stands for that table. Stricter than SQLite, which lets
    /// `FROM concert AS singer` give another table that name (no gold query
    /// does; a model looping on `SELECT album.invoice FROM album JOIN ...`
    /// waits forever for one). Any other qualifier may still be a derived
    /// table's alias, with columns of its own.
    fn impossible_qualified_column(&self, schema: &SchemaIndex, reference: &Ref) -> Option<String> {
        let (Some(qualifier), Some(column)) = (&reference.qualifier, &reference.column) else {
            return None;
        };
        let Some(columns) = self.columns_named(schema, qualifier) else {
            // Gold SQL reads a derived table's columns through its alias
            // only after FROM has defined it, or so rarely that a second
            // attempt may refuse it.
            if self.conventional && !self.some_column(schema, column, false) {
                return Some(format!(
                    "no such column: {qualifier}.{column} (no table or CTE has a column \
                     `{column}`; at byte {})",
                    reference.offset
                ));
            }
            return None;
        };
        if columns.has(schema, column) {
            return None;
        }
        let what = match columns {
            Columns::Table(_) => "table",
            _ => "CTE",
        };
        Some(format!(
            "no such column: {qualifier}.{column} (the {what} `{qualifier}` has no such column; \
             at byte {})",
            reference.offset
        ))
    }

    fn settle(&mut self, schema: &SchemaIndex, reference: Ref, from: usize) -> Result<(), String> {
        let resolution = self.resolve(schema, &reference, from);
        if let Resolution::Defer(_) = resolution {
            if let Some(message) = self.impossible_qualified_column(schema, &reference) {
                return Err(message);
            }
        }
        match resolution {
            // Stricter than SQLite, which takes `x > (SELECT AVG(x))` as an
            // aggregate of the outer query and then refuses it there
            // ("misuse of aggregate"): a subquery without FROM reading the
            // outer query's columns is a query cut short, never meant.
            Resolution::Found(index)
                if self.scopes[index + 1..=from]
                    .iter()
                    .any(|s| s.kind == ScopeKind::Core && s.from_less) =>
            {
                Err(format!(
                    "`{}` is the outer query's: a subquery without FROM reads no table \
                     (at byte {})",
                    reference.describe(),
                    reference.offset
                ))
            }
            Resolution::Found(index) => {
                let scope = &mut self.scopes[index];
                if reference.qualifier.is_none() && !scope.done {
                    scope.settled_early.push(reference);
                }
                Ok(())
            }
            // A bare name waiting for FROM must be able to resolve there:
            // a column of some table (a table's name is not one), an alias,
            // or any name where a CTE or derived table (untracked columns)
            // is about.
            Resolution::Defer(_)
                if reference.qualifier.is_none()
                    && reference.column.as_deref().is_some_and(|column| {
                        !self.column_name_exists(schema, column) && !self.untracked_columns()
                    }) =>
            {
                Err(format!(
                    "no such column: {} (no table of the database has it; at byte {})",
                    reference.describe(),
                    reference.offset
                ))
            }
            Resolution::Defer(index) => {
                self.scopes[index].pending.push(reference);
                Ok(())
            }
            Resolution::Error(message) => Err(message),
        }
    }

    /// Looks `reference` up from scope `from` outwards, as SQLite does.
    fn resolve(&self, schema: &SchemaIndex, reference: &Ref, from: usize) -> Resolution {
        for index in (0..=from).rev() {
            let scope = &self.scopes[index];
            if scope.kind != ScopeKind::Core {
                continue;
            }
            match lookup(schema, scope, reference) {
                Lookup::Hit => return Resolution::Found(index),
                Lookup::Error(message) => {
                    return Resolution::Error(format!("{message} (at byte {})", reference.offset))
                }
                Lookup::Miss if !scope.done => return Resolution::Defer(index),
                Lookup::Miss => {}
            }
        }
        Resolution::Error(format!(
            "no such column: {} (at byte {})",
            reference.describe(),
            reference.offset
        ))
    }
}

fn lookup(schema: &SchemaIndex, scope: &Scope, reference: &Ref) -> Lookup {
    match (&reference.qualifier, &reference.column) {
        (Some(qualifier), column) => {
            let Some(source) = scope.sources.iter().find(|s| &s.key == qualifier) else {
                return Lookup::Miss;
            };
            match column {
                Some(column) if !source.columns.has(schema, column) => {
                    Lookup::Error(format!("no such column: {qualifier}.{column}"))
                }
                _ => Lookup::Hit,
            }
        }
        (None, Some(column)) => {
            let holders: Vec<&Source> = scope
                .sources
                .iter()
                .filter(|s| s.columns.has(schema, column))
                .collect();
            // Only schema tables' names are exact: a CTE's or derived
            // table's may stand for expressions or stars.
            let untracked = holders
                .iter()
                .any(|s| !matches!(s.columns, Columns::Table(_)));
            // Before FROM ends too: a later source cannot undo it.
            if holders.len() > 1 && !untracked && !scope.merged_columns {
                return Lookup::Error(format!("ambiguous column name: {column}"));
            }
            if !holders.is_empty() || scope.aliases.iter().any(|a| a == column) {
                Lookup::Hit
            } else {
                Lookup::Miss
            }
        }
        (None, None) => Lookup::Hit,
    }
}
