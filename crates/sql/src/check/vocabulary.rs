//! SQLite's vocabulary as the checker's grammar ([`super::parser`]) reads
//! it: reserved words, operators, built-in functions with their argument
//! limits, collations, database names and other keywords.

/// Words that cannot be a bare identifier anywhere this grammar looks for
/// one (table or column name, alias). SQLite lets many keywords double as
/// names; these are the ones that delimit clauses here.
pub(super) const RESERVED: &[&str] = &[
    "all",
    "and",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "cast",
    "collate",
    "cross",
    "desc",
    "distinct",
    "else",
    "end",
    "escape",
    "except",
    "exists",
    "from",
    "full",
    "glob",
    "group",
    "having",
    "in",
    "inner",
    "intersect",
    "is",
    "isnull",
    "join",
    "left",
    "like",
    "limit",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "regexp",
    "right",
    "select",
    "then",
    "union",
    "using",
    "values",
    "when",
    "where",
    "with",
];

pub(super) fn reserved(word: &str) -> bool {
    RESERVED.binary_search(&word).is_ok()
}

/// Binary operators that take any operand on both sides.
pub(super) const BINARY: &[&str] = &[
    "=", "==", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "||", "&", "|", "<<",
    ">>", "->", "->>",
];

/// The comparison operators among [`BINARY`].
pub(super) const COMPARISONS: &[&str] = &["=", "==", "!=", "<>", "<", "<=", ">", ">="];

/// Column names every rowid table has without declaring them.
pub(super) const ROWID: &[&str] = &["rowid", "oid", "_rowid_"];

/// SQLite's built-in collating sequences, the only `COLLATE` names a query
/// against a plain database file can use.
pub(super) const COLLATIONS: &[&str] = &["binary", "nocase", "rtrim"];

/// The database names a `schema.table.column` reference can start with:
/// `main` only. `temp` exists too, but a single read-only SELECT cannot
/// create a table in it, so `temp.x` never names one (a looping model
/// wrote `JOIN Temp. Compet`).
pub(super) const DATABASES: &[&str] = &["main"];

/// Whether `qualifier` (lower-case) may be a database's name, so that
/// `qualifier.table.column` may follow.
pub(super) fn names_database(qualifier: &str) -> bool {
    DATABASES.contains(&qualifier)
}

/// Characters that open or close a quoted name or string: none may stand
/// inside an alias (see `Parser::quoted_alias_rejection`).
pub(super) const QUOTE_CHARS: [char; 4] = ['"', '\'', '`', ']'];

/// SQLite's table-valued functions (`FROM json_each(x)`).
pub(super) const TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree"];

/// Keywords that can start an operand.
pub(super) const OPERAND_KEYWORDS: &[&str] = &[
    "case",
    "cast",
    "current_date",
    "current_time",
    "current_timestamp",
    "exists",
    "false",
    "not",
    "null",
    "true",
];

/// SQLite's built-in functions (core, aggregate, date and time, math, JSON,
/// window): with the schema's names and the query's own aliases, the words
/// an operand can start with.
pub(super) const FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "ceil",
    "ceiling",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "glob",
    "group_concat",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_object",
    "json_type",
    "json_valid",
    "julianday",
    "lag",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "ln",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "power",
    "printf",
    "quote",
    "radians",
    "random",
    "randomblob",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "soundex",
    "sqrt",
    "string_agg",
    "strftime",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "total",
    "trim",
    "trunc",
    "typeof",
    "unhex",
    "unicode",
    "unixepoch",
    "unlikely",
    "upper",
    "zeroblob",
];

/// The most arguments each built-in of [`FUNCTIONS`] with a bound takes
/// (SQLite's own limits: more is `wrong number of arguments`); the others
/// (`coalesce`, `printf`, scalar `max`, `date`, …) take any number. A model
/// unsure how to close a call keeps adding arguments (`ROUND(AVG(x),
/// MIN(x), MIN(x), …`) until the token limit.
pub(super) const MAX_ARGUMENTS: &[(&str, usize)] = &[
    ("abs", 1),
    ("acos", 1),
    ("acosh", 1),
    ("asin", 1),
    ("asinh", 1),
    ("atan", 1),
    ("atan2", 2),
    ("atanh", 1),
    ("avg", 1),
    ("ceil", 1),
    ("ceiling", 1),
    ("cos", 1),
    ("cosh", 1),
    ("count", 1),
    ("cume_dist", 0),
    ("degrees", 1),
    ("dense_rank", 0),
    ("exp", 1),
    ("first_value", 1),
    ("floor", 1),
    ("glob", 2),
    ("group_concat", 2),
    ("hex", 1),
    ("ifnull", 2),
    ("instr", 2),
    ("json_array_length", 2),
    ("json_group_array", 1),
    ("json_group_object", 2),
    ("json_type", 2),
    ("json_valid", 2),
    ("lag", 3),
    ("last_value", 1),
    ("lead", 3),
    ("length", 1),
    ("like", 3),
    ("likelihood", 2),
    ("likely", 1),
    ("ln", 1),
    ("log", 2),
    ("log10", 1),
    ("log2", 1),
    ("lower", 1),
    ("ltrim", 2),
    ("mod", 2),
    ("nth_value", 2),
    ("ntile", 1),
    ("nullif", 2),
    ("octet_length", 1),
    ("percent_rank", 0),
    ("pi", 0),
    ("pow", 2),
    ("power", 2),
    ("quote", 1),
    ("radians", 1),
    ("random", 0),
    ("randomblob", 1),
    ("rank", 0),
    ("replace", 3),
    ("round", 2),
    ("row_number", 0),
    ("rtrim", 2),
    ("sign", 1),
    ("sin", 1),
    ("sinh", 1),
    ("soundex", 1),
    ("sqrt", 1),
    ("string_agg", 2),
    ("substr", 3),
    ("substring", 3),
    ("sum", 1),
    ("tan", 1),
    ("tanh", 1),
    ("timediff", 2),
    ("total", 1),
    ("trim", 2),
    ("trunc", 1),
    ("typeof", 1),
    ("unhex", 2),
    ("unicode", 1),
    ("unlikely", 1),
    ("upper", 1),
    ("zeroblob", 1),
];

/// Keywords besides [`RESERVED`] and [`OPERAND_KEYWORDS`] that some clause
/// of the grammar takes (window frames, CTE options, NULLS FIRST, CAST
/// types are free words already).
pub(super) const OTHER_KEYWORDS: &[&str] = &[
    "current",
    "exclude",
    "filter",
    "first",
    "following",
    "groups",
    "last",
    "materialized",
    "no",
    "nulls",
    "others",
    "over",
    "partition",
    "preceding",
    "range",
    "recursive",
    "row",
    "rows",
    "ties",
    "unbounded",
    "window",
];
