//! Filling a query shape: the columns, join keys and literals a question
//! names, preferred where a query held to a shape (see
//! [`text2sql_sql::SkeletonBank`]) names a column or writes a literal.
//!
//! Held to the right shape, the 5,000-step Spider model still wrote the
//! wrong names nine times in ten: `SELECT Region_code , Region_code FROM
//! region` for "Show all region code and region name", `ORDER BY
//! Official_Name` for "ordered by population", `WHERE Theme != ' Theme
//! Theme ...` for `"Aliens"`. The shape fixes where names and literals go,
//! so a lexical match can choose among names without bending the query's
//! structure (without a shape the same column bonus cost right answers:
//! see the README's "Table links"). [`FillLinks::prefer`] adds, for a
//! query held to a shape:
//! - to each column the question names, [`COLUMN_LINK_BONUS`] per point
//!   of its lexical score (name words, description words, matched example
//!   values: [`relevance`]) wherever a column may come, every time (a
//!   `GROUP BY` repeats the column the `SELECT` list named); in a query
//!   whose shape joins, only after an alias's `.` (a bonus on the bare name
//!   beat the alias and wrote `ON song_name = song_name`);
//! - in an `ON` condition, [`KEY_LINK_BONUS`] to both columns of each
//!   foreign key between two tables the query names, instead;
//! - in a `WHERE` condition, [`VALUE_COLUMN_BONUS`] more to each column
//!   that stores a value the question mentions (`clubname` for `the club
//!   named "Tennis Club"`), joined shape or not;
//! - in the `SELECT` list, [`SELECT_REPEAT_PENALTY`] off each name it
//!   already has (outside a function's parentheses: `max(Cows) , min(Cows)`
//!   is fine), without that name's link bonus;
//! - in `ORDER BY`, none to the `SELECT` list's columns where the question
//!   names another column whole (`ORDER BY Official_Name` was written for
//!   "in descending order of population");
//! - by where the question names a column: one it names only next to a
//!   literal (`courses with 1 credit`) takes no link bonus in the `SELECT`
//!   list and [`CONDITION_COLUMN_BONUS`] more in `WHERE`; one it names only
//!   after saying how to order (`sorted by year`) none in the list and
//!   [`ORDER_COLUMN_BONUS`] more in `ORDER BY`; in `WHERE`,
//!   [`LISTED_IN_CONDITION_PENALTY`] off the `SELECT` list's columns that
//!   are neither (held to the right shape, the model listed the
//!   condition's column, `SELECT Credits … WHERE Credits = 1`, or
//!   repeated the listed one in the condition);
//! - where the shape compares a column with another query's (`WHERE _ NOT
//!   IN ( SELECT _ FROM _ )`, `… EXCEPT SELECT _ FROM _`),
//!   [`IN_KEY_BONUS`] to the keys and the compared column
//!   ([`FillLinks::prefer_keys`]), and [`SAME_SOURCE_PENALTY`] off the
//!   query's tables where that query reads its source without a `WHERE`
//!   ([`FillLinks::prefer_new_source`]); after `JOIN`,
//!   [`JOINED_AGAIN_PENALTY`] off the tables its `FROM` has; in `ON`,
//!   [`SAME_ALIAS_PENALTY`] off a source compared with itself;
//! - in `avg(` and `sum(`, [`WORDY_AVERAGE_PENALTY`] off each column
//!   that holds words (text typed, no example value a number); at a
//!   `WHERE` whose shape matches its column with a pattern (`_ LIKE v`),
//!   [`NUMBER_LIKE_PENALTY`] off each column declared to hold numbers;
//! - inside a literal, [`LITERAL_LINK_BONUS`] to each token that goes on
//!   spelling a literal the question names (its quoted text, the database
//!   values it mentions, its numbers, `LIKE` patterns wrapped in `%`), and
//!   the same off a digit that would lengthen a number already complete
//!   (or a decimal point, after a number without one).
//!
//! Names no query of the shape could go on from lose
//! [`TABLE_FIT_PENALTY`]: in a shape without a join, a column of the
//! `SELECT` list that no table has with the columns it already named, and
//! ([`FillLinks::prefer_table`]) a table after `FROM` lacking one of them
//! (`SELECT weight FROM Has_Pet` when only `Pets` has a weight); after
//! `FROM`, in any shape, a column no table of the query has (`WHERE
//! ClubName` after `FROM Member_of_club`). A greedy search met a dead end
//! at each and was searched again without its shape, where the model
//! mostly wrote `SELECT count(*) FROM …`.

use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::{
    name_words, relevance, stem, value_in_question, words, Relevance, SchemaSymbols,
    WHOLE_NAME_SCORE,
};
use text2sql_data::values::ValueMatches;

use text2sql_sql::{alias_prefix, Skeleton, SkeletonItem};

use crate::generate::TokenTexts;
use crate::table_links::SymbolLink;
use crate::tokenizer::Tokenizer;

/// Per point of a column's lexical score ([`relevance`]: 3 a name word, 2
/// more for the whole name, 1 a description word, 3 a matched value).
/// Chosen on Spider train's 17 tuning databases (1,067 questions, never
/// trained on), 5,000-step Spider model, greedy, held to shapes, a bonus
/// on every use: right answers 131 / 140 / 140 / 140 at 1 / 2 / 3 / 4 a
/// point (74 without).
pub const COLUMN_LINK_BONUS: f32 = 3.0;

/// On each column of a foreign key between two named tables, in `ON`.
/// Tuning databases, greedy, with the other links: 150 right at 3, 145 at
/// 6 and at 0.
pub const KEY_LINK_BONUS: f32 = 3.0;

/// In `WHERE`, on a column storing a value the question mentions.
/// Tuning databases, greedy, with the other links: 155 / 159 / 159 / 159
/// right at 3 / 6 / 10 / 15, 155 without; only after an alias's dot in
/// a joined shape, like the column links: 158.
pub const VALUE_COLUMN_BONUS: f32 = 10.0;

/// Off a name the `SELECT` list already has. Tuning databases, greedy:
/// 154 right at 3, 155 at 10, 150 without.
pub const SELECT_REPEAT_PENALTY: f32 = 10.0;

/// On a token that goes on spelling a literal the question names (and off
/// a digit past a complete number). Tuning databases, greedy: 140 right
/// at 4 and at 8 (the same without: the model's literals were wrong in
/// ways the names around them already lost); kept because it writes
/// `"Elaine Lee"` where the model wrote `" Book_ID WHERE Issues = "`.
pub const LITERAL_LINK_BONUS: f32 = 8.0;

/// In `WHERE`, on a column the question names only next to a literal
/// (`courses with 1 credit`: [`FillLinks::condition_columns`]), and in
/// `ORDER BY` on one it names only after saying how to order (`sorted by
/// year`: [`FillLinks::order_columns`]); neither takes its link bonus in
/// the `SELECT` list, nor does a column the list already has. Chosen on
/// Spider train's 17 tuning databases (1,067 questions, never trained on;
/// 5,000-step Spider model, greedy, held to shapes, right answers): 219
/// before; 231 without the bonuses in the `SELECT` list, 234 with the
/// repeat too; then in `ORDER BY` 237 / 239 / 238 at 3 / 6 / 12; then in
/// `WHERE` 241 / 241 / 238 at 3 / 6 / 12.
pub const CONDITION_COLUMN_BONUS: f32 = 6.0;
pub const ORDER_COLUMN_BONUS: f32 = 6.0;

/// In `WHERE`, off a column of the query's `SELECT` list that neither
/// stores a value the question mentions nor is a condition's column
/// (`SELECT Document_Type_Code … WHERE Document_Type_Code = "Paper"`).
/// Tuning databases, greedy: 243 right at 5, 242 at 15, 241 without.
pub const LISTED_IN_CONDITION_PENALTY: f32 = 5.0;

/// Off a name no query of the shape could go on from: in a shape without
/// a join, a column no table has with the `SELECT` list's, a table after
/// `FROM` lacking one of them; after `FROM`, a column no table of the
/// query has (see the module documentation). Chosen on the tuning
/// databases (greedy, held to shapes, all three rules): 20 and 50 both
/// gave 209 right answers (196 without the rules); 50 is meant to be
/// all but a mask.
pub const TABLE_FIT_PENALTY: f32 = 50.0;

/// Where a shape compares a column with another query's (`WHERE _ NOT IN
/// ( SELECT _ …`, `… EXCEPT SELECT _ …`): to each foreign key's columns in
/// that `WHERE`, and to the compared column and its foreign-key partners
/// in the other query's `SELECT` list (see [`FillLinks::prefer_keys`]).
/// Chosen on the tuning databases (greedy, right answers, with
/// [`SAME_SOURCE_PENALTY`]): 249 / 251 / 255 / 255 / 255 at 3 / 6 / 12 /
/// 20 / 30, against 248 before either rule.
pub const IN_KEY_BONUS: f32 = 12.0;

/// Off each table the query already reads, where an `IN` subquery or a
/// compound's later part without a `WHERE` of its own names its source
/// (`WHERE u_id NOT IN (SELECT u_id FROM useracct)` is empty on any data).
/// Tuning databases, with [`IN_KEY_BONUS`]: 250 right at 0, 255 at 10
/// and at 50.
pub const SAME_SOURCE_PENALTY: f32 = 10.0;

/// Off each table the `FROM` being written already has, after `JOIN`: of
/// the tuning questions' gold queries 4 join a table to itself, of the
/// predictions 20 did. Tuning databases: 256 right at 5 and at 20, 255 at
/// 0.
pub const JOINED_AGAIN_PENALTY: f32 = 5.0;

/// In an `ON` condition, off each token that would compare a source with
/// itself (`ON T3.mID = T3.mID`, in 46 of the tuning predictions, one of
/// them right). Tuning databases: 257 right at 5 and at 20, 256 at 0.
pub const SAME_ALIAS_PENALTY: f32 = 20.0;

/// In `avg(` and `sum(`, off each column that holds words, not numbers
/// (`AVG(gender) , age … GROUP BY gender` for "the average age for each
/// gender"; 21 tuning predictions averaged or summed such a column, none
/// right). Spider's declared types alone would not do: 62 of its gold
/// queries average or sum a `text` column that holds numbers
/// (`room_count`). Tuning databases, greedy: 281 right before, 283 at 5,
/// 10 and 20.
pub const WORDY_AVERAGE_PENALTY: f32 = 10.0;

/// Where the shape matches a `WHERE` condition's first column with a
/// pattern (`WHERE _ LIKE v`), off each column declared to hold numbers
/// (`WHERE ArtistId LIKE "%a%"` for "artists that have "a" in their
/// names"; 6 tuning predictions, none right). Tuning databases, greedy:
/// 283 right before, 284 / 287 / 287 at 5 / 10 / 20.
pub const NUMBER_LIKE_PENALTY: f32 = 10.0;

/// A foreign key as symbol tokens: `tables[0].columns[0]` references
/// `tables[1].columns[1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLink {
    pub tables: [u32; 2],
    pub columns: [u32; 2],
}

/// What a question names that fills a query shape: its columns, the
/// columns storing values it mentions, the schema's foreign keys, and its
/// literals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FillLinks {
    pub columns: Vec<SymbolLink>,
    /// Symbol tokens.
    pub value_columns: Vec<u32>,
    pub keys: Vec<KeyLink>,
    pub literals: Vec<String>,
    /// Each table's symbol token and its columns' symbol tokens.
    pub table_columns: Vec<(u32, Vec<u32>)>,
    /// Symbol tokens of the columns the question names only next to a
    /// literal (`courses with 1 credit`, `in Building "Mergenthaler"`):
    /// a condition's column, not one to list.
    pub condition_columns: Vec<u32>,
    /// Symbol tokens of the columns the question names only where it says
    /// how to order (`sorted by year`): the order's column, not one to list.
    pub order_columns: Vec<u32>,
    /// Symbol tokens of the columns that hold words, not numbers (text
    /// typed, no example value a number), every column of the name.
    pub wordy_columns: Vec<u32>,
    /// Symbol tokens of the columns declared to hold numbers, every
    /// column of the name.
    pub number_columns: Vec<u32>,
}

impl FillLinks {
    /// The links of `question` about `schema`, whose names the model
    /// writes as `symbols` (tokens of `tokenizer`).
    pub fn new(
        question: &str,
        schema: &DatabaseSchema,
        symbols: &SchemaSymbols,
        tokenizer: &Tokenizer,
    ) -> Self {
        let relevance = relevance(schema, question);
        let retrieved = schema
            .values
            .as_ref()
            .map(|index| index.retrieve(question))
            .unwrap_or_default();
        let token = |name: &str| {
            symbols
                .symbol_of(name)
                .and_then(|index| tokenizer.symbol_id(index))
        };
        let literals = literal_links(question, schema, &retrieved);
        let roles = column_roles(question, schema, &literals, &token);
        FillLinks {
            columns: column_links(schema, &relevance, &token),
            value_columns: value_columns(schema, &relevance, &retrieved, &token),
            keys: key_links(schema, &token),
            literals,
            table_columns: table_columns(schema, &token),
            condition_columns: roles.condition,
            order_columns: roles.order,
            wordy_columns: wordy_columns(schema, &token),
            number_columns: number_columns(schema, &token),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
            && self.value_columns.is_empty()
            && self.keys.is_empty()
            && self.literals.is_empty()
            && self.table_columns.is_empty()
            && self.condition_columns.is_empty()
            && self.order_columns.is_empty()
            && self.wordy_columns.is_empty()
            && self.number_columns.is_empty()
    }

    /// In the `SELECT` list (`list`, so far) of a shape without a join:
    /// [`TABLE_FIT_PENALTY`] off each column that no table has together
    /// with the columns the list already named.
    fn prefer_one_table(&self, texts: &TokenTexts, list: &[u32], row: &mut [f32]) {
        let named = symbols_in(texts, list);
        if named.is_empty() {
            return;
        }
        let fitting: Vec<&Vec<u32>> = self
            .table_columns
            .iter()
            .map(|(_, columns)| columns)
            .filter(|columns| named.iter().all(|column| columns.contains(column)))
            .collect();
        self.penalize_columns_outside(&fitting, row);
    }

    /// After a `FROM` (in `WHERE`, `GROUP BY`, `ORDER BY`, `HAVING`):
    /// [`TABLE_FIT_PENALTY`] off each column no table the query names has
    /// (`WHERE ClubName` after `FROM Member_of_club`: the checker lets a
    /// name some table has through while it is written, and no query
    /// could go on after it).
    fn prefer_query_tables(&self, history: &[u32], row: &mut [f32]) {
        let named: Vec<&Vec<u32>> = self
            .table_columns
            .iter()
            .filter(|(table, _)| history.contains(table))
            .map(|(_, columns)| columns)
            .collect();
        if !named.is_empty() {
            self.penalize_columns_outside(&named, row);
        }
    }

    /// [`TABLE_FIT_PENALTY`] off each column none of `tables` (their
    /// columns' symbols) has.
    fn penalize_columns_outside(&self, tables: &[&Vec<u32>], row: &mut [f32]) {
        let mut unfit: Vec<u32> = self
            .table_columns
            .iter()
            .flat_map(|(_, columns)| columns.iter().copied())
            .filter(|column| !tables.iter().any(|columns| columns.contains(column)))
            .collect();
        // Columns of one name share a symbol.
        unfit.sort_unstable();
        unfit.dedup();
        for column in unfit {
            add(row, column, -TABLE_FIT_PENALTY);
        }
    }

    /// Where the one table of a `FROM` comes in a query held to a shape
    /// without a join (`history` ends with `FROM`): [`TABLE_FIT_PENALTY`]
    /// off each table lacking a column the `SELECT` list before it named.
    pub fn prefer_table(&self, texts: &TokenTexts, history: &[u32], row: &mut [f32]) {
        let Some(select) = last_select(texts, history) else {
            return;
        };
        let named = symbols_in(texts, &history[select + 1..]);
        for (table, columns) in &self.table_columns {
            if named.iter().any(|column| !columns.contains(column)) {
                add(row, *table, -TABLE_FIT_PENALTY);
            }
        }
    }

    /// After `FROM` (`history` ends with it) where each shape puts an
    /// `IN ( SELECT … )` subquery or a compound's later part without a
    /// `WHERE` of its own: [`SAME_SOURCE_PENALTY`] off each table the
    /// query already reads (`WHERE u_id NOT IN (SELECT u_id FROM
    /// useracct)` is empty whatever the data).
    pub fn prefer_new_source(
        &self,
        texts: &TokenTexts,
        history: &[u32],
        row: &mut [f32],
        shapes: &[Skeleton],
    ) {
        let text: String = history.iter().filter_map(|&t| texts.text(t)).collect();
        let Some(k) = count_words(&text, "from").checked_sub(1) else {
            return;
        };
        if !shapes
            .iter()
            .all(|shape| unfiltered_second_source(shape, k))
        {
            return;
        }
        self.penalize_tables_in(history, SAME_SOURCE_PENALTY, row);
    }

    /// After `JOIN` (`history` ends with it) in a query held to a shape:
    /// [`JOINED_AGAIN_PENALTY`] off each table its `FROM` already has.
    pub fn prefer_new_join_table(&self, texts: &TokenTexts, history: &[u32], row: &mut [f32]) {
        let from = history
            .iter()
            .rposition(|&token| {
                texts
                    .text(token)
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("from"))
            })
            .unwrap_or(0);
        self.penalize_tables_in(&history[from..], JOINED_AGAIN_PENALTY, row);
    }

    /// `penalty` off each table whose symbol `tokens` has.
    fn penalize_tables_in(&self, tokens: &[u32], penalty: f32, row: &mut [f32]) {
        for (table, _) in &self.table_columns {
            if tokens.contains(table) {
                add(row, *table, -penalty);
            }
        }
    }

    /// Where each shape compares a column with a second query's (`WHERE _
    /// NOT IN ( SELECT _ FROM _ )`, `… EXCEPT SELECT _ FROM _`): at that
    /// `WHERE`, [`IN_KEY_BONUS`] to each column of a foreign key; at the
    /// second query's `SELECT`, [`IN_KEY_BONUS`] to the compared column
    /// (the one before `IN`, or the first query's listed ones) and its
    /// foreign-key partners.
    pub fn prefer_keys(
        &self,
        texts: &TokenTexts,
        history: &[u32],
        row: &mut [f32],
        shapes: &[Skeleton],
    ) {
        let text: String = history.iter().filter_map(|&t| texts.text(t)).collect();
        let Some(last) = text
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .rfind(|word| !word.is_empty())
        else {
            return;
        };
        let k = count_words(&text, last).saturating_sub(1);
        if let Some(k) = where_column_next(&text) {
            if shapes.iter().all(|shape| where_like(shape, k)) {
                for &token in &self.number_columns {
                    add(row, token, -NUMBER_LIKE_PENALTY);
                }
            }
        }
        if last.eq_ignore_ascii_case("where") {
            if shapes.iter().all(|shape| where_before_in(shape, k)) {
                for key in &self.keys {
                    for column in key.columns {
                        add(row, column, IN_KEY_BONUS);
                    }
                }
            }
            return;
        }
        if !last.eq_ignore_ascii_case("select") {
            return;
        }
        let context = shapes
            .iter()
            .map(|shape| second_query(shape, k))
            .reduce(|a, b| if a == b { a } else { None })
            .flatten();
        let compared: Vec<u32> = match context {
            Some(SecondQuery::In) => history
                .iter()
                .rev()
                .find(|&&t| texts.is_symbol(t))
                .copied()
                .into_iter()
                .collect(),
            Some(SecondQuery::Compound) => {
                let selects: Vec<usize> = history
                    .iter()
                    .enumerate()
                    .filter(|(_, &t)| {
                        texts
                            .text(t)
                            .is_some_and(|t| t.to_ascii_lowercase().contains("select"))
                    })
                    .map(|(at, _)| at)
                    .collect();
                match selects.last() {
                    Some(&current) if selects.len() >= 2 => {
                        listed_columns(texts, &history[..current])
                    }
                    _ => Vec::new(),
                }
            }
            None => return,
        };
        for &column in &compared {
            add(row, column, IN_KEY_BONUS);
            for key in &self.keys {
                for side in 0..2 {
                    if key.columns[side] == column && key.columns[1 - side] != column {
                        add(row, key.columns[1 - side], IN_KEY_BONUS);
                    }
                }
            }
        }
    }

    /// Adds the links' bonuses to `row` (log-probabilities of the token
    /// after `history`, whose texts `texts` gives) for a query held to a
    /// shape; `joins` when the shape has a JOIN. Not where a table is
    /// named (see [`crate::table_links`]).
    pub fn prefer(&self, texts: &TokenTexts, history: &[u32], row: &mut [f32], joins: bool) {
        let text: String = history.iter().filter_map(|&t| texts.text(t)).collect();
        let quote = open_quote(&text);
        match quote {
            Some((quote, start)) => self.prefer_string(texts, &text, quote, start, row),
            None => self.prefer_number(texts, &text, row),
        }
        if quote.is_some() {
            return;
        }
        // An alias is the model's own word.
        let alias_next = text
            .split_whitespace()
            .next_back()
            .is_some_and(|word| word.eq_ignore_ascii_case("as"));
        if alias_next {
            return;
        }
        let clause = last_clause(&text);
        if averages_next(&text) {
            for &token in &self.wordy_columns {
                add(row, token, -WORDY_AVERAGE_PENALTY);
            }
        }
        if clause == Some("on") {
            if let Some((alias, typed)) = compared_alias(&text) {
                penalize_alias(texts, &alias, &typed, row);
            }
            for key in &self.keys {
                if key.tables.iter().all(|table| history.contains(table)) {
                    for column in key.columns {
                        add(row, column, KEY_LINK_BONUS);
                    }
                }
            }
            return;
        }
        if clause == Some("where") {
            for &token in &self.value_columns {
                add(row, token, VALUE_COLUMN_BONUS);
            }
            for &token in &self.condition_columns {
                add(row, token, CONDITION_COLUMN_BONUS);
            }
            for token in listed_columns(texts, history) {
                if !self.condition_columns.contains(&token) && !self.value_columns.contains(&token)
                {
                    add(row, token, -LISTED_IN_CONDITION_PENALTY);
                }
            }
        }
        if clause == Some("order") {
            for &token in &self.order_columns {
                add(row, token, ORDER_COLUMN_BONUS);
            }
        }
        if matches!(clause, Some("where" | "group" | "order" | "having")) {
            self.prefer_query_tables(history, row);
        }
        if joins && !text.trim_end().ends_with('.') {
            return;
        }
        let mut listed: Vec<u32> = Vec::new();
        let select_list = select_list_start(texts, history, clause);
        if let Some(start) = select_list {
            if !text.trim_end().ends_with('(') {
                for &token in &history[start..] {
                    if texts.is_symbol(token) {
                        add(row, token, -SELECT_REPEAT_PENALTY);
                        listed.push(token);
                    }
                }
            }
            if !joins {
                self.prefer_one_table(texts, &history[start..], row);
            }
        }
        let spent_in_order = if clause == Some("order") {
            self.listed_spent_in_order(texts, history)
        } else {
            Vec::new()
        };
        for link in &self.columns {
            // In the `SELECT` list a link is spent once, and a condition's
            // or an order's column is not one to list.
            let not_to_list = listed.contains(&link.token)
                || self.condition_columns.contains(&link.token)
                || self.order_columns.contains(&link.token);
            if (select_list.is_none() || !not_to_list) && !spent_in_order.contains(&link.token) {
                add(row, link.token, link.bonus);
            }
        }
    }

    /// In `ORDER BY`: the `SELECT` list's columns, whose links are spent
    /// there where the question names another column whole ("official
    /// names of cities in descending order of population", "the product
    /// with the highest price"), not one storing a value it mentions (that
    /// one is the condition's: "members of membership type 'Adult' ordered
    /// by score"); none where it names no other ("titles in alphabetical
    /// order" orders by the listed column).
    fn listed_spent_in_order(&self, texts: &TokenTexts, history: &[u32]) -> Vec<u32> {
        let listed = listed_columns(texts, history);
        let whole = COLUMN_LINK_BONUS * WHOLE_NAME_SCORE as f32;
        let names_another = self.columns.iter().any(|link| {
            !listed.contains(&link.token)
                && link.bonus >= whole
                && !self.value_columns.contains(&link.token)
        });
        if names_another {
            listed
        } else {
            Vec::new()
        }
    }

    /// Inside a string literal opened by `quote` at byte `start` of
    /// `text`: the tokens that go on spelling a literal the question names.
    fn prefer_string(
        &self,
        texts: &TokenTexts,
        text: &str,
        quote: char,
        start: usize,
        row: &mut [f32],
    ) {
        let written = &text[start..];
        let before = text[..start - quote.len_utf8()].trim_end();
        let like = before.len() >= 4 && before[before.len() - 4..].eq_ignore_ascii_case("like");
        let (opening, percent, written) = match written.strip_prefix('%') {
            Some(rest) => ("", "%", rest),
            None if like && written.is_empty() => ("%", "%", written),
            None => ("", "", written),
        };
        let rests: Vec<String> = self
            .literals
            .iter()
            .filter(|literal| {
                literal.is_char_boundary(written.len())
                    && literal.len() >= written.len()
                    && literal[..written.len()].eq_ignore_ascii_case(written)
            })
            .map(|literal| format!("{opening}{}{percent}{quote}", &literal[written.len()..]))
            .collect();
        prefer_prefixes(texts, row, &rests, false);
    }

    /// Where a number may come (after a comparison, `LIMIT` or `BETWEEN`)
    /// or goes on: the tokens that go on spelling a number of the
    /// question, and none that lengthens one already complete.
    fn prefer_number(&self, texts: &TokenTexts, text: &str, row: &mut [f32]) {
        let trimmed = text.trim_end();
        let number_start = trimmed
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
            .len();
        let (before, written) = if number_start < trimmed.len() && trimmed.len() == text.len() {
            (trimmed[..number_start].trim_end(), &trimmed[number_start..])
        } else {
            (trimmed, "")
        };
        let upper = before.to_ascii_uppercase();
        let number_slot = before.ends_with(['=', '<', '>'])
            || upper.ends_with(" LIMIT")
            || upper.ends_with(" BETWEEN")
            || (upper.ends_with(" AND") && upper.contains(" BETWEEN "));
        if !number_slot {
            return;
        }
        let numbers = self
            .literals
            .iter()
            .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit() || c == '.'));
        let rests: Vec<String> = numbers
            .clone()
            .filter_map(|n| n.strip_prefix(written))
            .filter(|rest| !rest.is_empty())
            .map(str::to_string)
            .collect();
        prefer_prefixes(texts, row, &rests, written.is_empty());
        // A complete number of the question goes on neither with a digit
        // nor, if it has no decimal point, with one (`>= 2.5` for "at
        // least two").
        let complete = numbers.clone().any(|n| n == written.trim_end_matches('.'));
        if rests.is_empty() && !written.is_empty() && complete {
            let decimal = written.contains('.');
            for id in 0..row.len() as u32 {
                if texts.text(id).is_some_and(|t| {
                    t.starts_with(|c: char| c.is_ascii_digit()) || (!decimal && t.starts_with('.'))
                }) {
                    add(row, id, -LITERAL_LINK_BONUS);
                }
            }
        }
    }
}

fn add(row: &mut [f32], token: u32, bonus: f32) {
    if let Some(value) = row.get_mut(token as usize) {
        *value += bonus;
    }
}

/// Adds [`LITERAL_LINK_BONUS`] to each token whose text begins one of
/// `rests` (after its leading blanks when `blanks_first`).
fn prefer_prefixes(texts: &TokenTexts, row: &mut [f32], rests: &[String], blanks_first: bool) {
    if rests.is_empty() {
        return;
    }
    for id in 0..row.len() as u32 {
        let Some(token) = texts.text(id) else {
            continue;
        };
        let token = if blanks_first {
            token.trim_start()
        } else {
            token
        };
        if !token.is_empty() && rests.iter().any(|rest| rest.starts_with(token)) {
            add(row, id, LITERAL_LINK_BONUS);
        }
    }
}

/// The quote of the string literal `text` ends inside, and the byte where
/// its content starts.
fn open_quote(text: &str) -> Option<(char, usize)> {
    let mut open = None;
    for (at, c) in text.char_indices() {
        match open {
            Some((quote, _)) if c == quote => open = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => open = Some((c, at + c.len_utf8())),
            None => {}
        }
    }
    open
}

/// The clauses whose keyword [`last_clause`] looks for.
const CLAUSES: [&str; 9] = [
    "select", "from", "join", "on", "where", "group", "order", "having", "limit",
];

/// The last clause keyword of `text`, lower-cased.
fn last_clause(text: &str) -> Option<&'static str> {
    text.split(|c: char| !c.is_alphanumeric() && c != '_')
        .rev()
        .find_map(|word| {
            CLAUSES
                .iter()
                .find(|clause| word.eq_ignore_ascii_case(clause))
        })
        .copied()
}

/// Where the `SELECT` list that `history` ends in starts (the token after
/// the last one with `select`), or None outside one (`clause`: the last
/// clause keyword, [`last_clause`]).
fn select_list_start(
    texts: &TokenTexts,
    history: &[u32],
    clause: Option<&'static str>,
) -> Option<usize> {
    if clause != Some("select") {
        return None;
    }
    last_select(texts, history).map(|at| at + 1)
}

/// The schema symbols among `tokens`.
fn symbols_in(texts: &TokenTexts, tokens: &[u32]) -> Vec<u32> {
    tokens
        .iter()
        .copied()
        .filter(|&token| texts.is_symbol(token))
        .collect()
}

/// The last token of `history` with `select` in it.
fn last_select(texts: &TokenTexts, history: &[u32]) -> Option<usize> {
    history.iter().rposition(|&token| {
        texts
            .text(token)
            .is_some_and(|t| t.to_ascii_lowercase().contains("select"))
    })
}

/// The symbols of the `SELECT` list of the query `history` is in (the
/// last `SELECT` up to its `FROM`).
fn listed_columns(texts: &TokenTexts, history: &[u32]) -> Vec<u32> {
    let Some(select) = last_select(texts, history) else {
        return Vec::new();
    };
    let list = &history[select + 1..];
    let end = list
        .iter()
        .position(|&token| {
            texts
                .text(token)
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("from"))
        })
        .unwrap_or(list.len());
    symbols_in(texts, &list[..end])
}

/// The columns of `schema` the question names (`relevance` is its
/// lexical match), as the symbols `token` gives, each with
/// [`COLUMN_LINK_BONUS`] per point of its score; columns of one name share
/// a symbol and take the best.
fn column_links(
    schema: &DatabaseSchema,
    relevance: &Relevance,
    token: &dyn Fn(&str) -> Option<u32>,
) -> Vec<SymbolLink> {
    let mut links: Vec<SymbolLink> = Vec::new();
    for (table, scores) in schema.tables.iter().zip(&relevance.columns) {
        for (column, &score) in table.columns.iter().zip(scores) {
            let (Some(token), true) = (token(&column.name), score > 0) else {
                continue;
            };
            let bonus = COLUMN_LINK_BONUS * score as f32;
            match links.iter_mut().find(|link| link.token == token) {
                Some(link) => link.bonus = link.bonus.max(bonus),
                None => links.push(SymbolLink { token, bonus }),
            }
        }
    }
    links
}

/// The columns of `schema` storing a value the question mentions: every
/// word of a value the value index retrieved (`retrieved`), or an example
/// value (`relevance`), as the symbols `token` gives.
fn value_columns(
    schema: &DatabaseSchema,
    relevance: &Relevance,
    retrieved: &ValueMatches,
    token: &dyn Fn(&str) -> Option<u32>,
) -> Vec<u32> {
    let exact = retrieved
        .matches
        .iter()
        .filter(|found| found.exact)
        .map(|found| (found.table, found.column));
    let examples = relevance
        .value_matches
        .iter()
        .enumerate()
        .flat_map(|(t, matches)| {
            matches
                .iter()
                .enumerate()
                .filter(|(_, &matched)| matched)
                .map(move |(c, _)| (t, c))
        });
    let mut tokens = Vec::new();
    for (t, c) in exact.chain(examples) {
        let name = schema.tables.get(t).and_then(|table| table.columns.get(c));
        if let Some(token) = name.and_then(|column| token(&column.name)) {
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
    }
    tokens
}

/// The foreign keys of `schema`, as the symbols `token` gives.
fn key_links(schema: &DatabaseSchema, token: &dyn Fn(&str) -> Option<u32>) -> Vec<KeyLink> {
    schema
        .foreign_keys
        .iter()
        .filter_map(|fk| {
            let table = schema.tables.get(fk.table)?;
            let referenced = schema.tables.get(fk.ref_table)?;
            Some(KeyLink {
                tables: [token(&table.name)?, token(&referenced.name)?],
                columns: [
                    token(&table.columns.get(fk.column)?.name)?,
                    token(&referenced.columns.get(fk.ref_column)?.name)?,
                ],
            })
        })
        .collect()
}

/// Whether the `k`-th `FROM` (from 0) of `shape` reads the source of an
/// `IN ( SELECT … )` subquery or of a compound's later part (after
/// `EXCEPT`, `INTERSECT` or `UNION`) that has no `WHERE` of its own.
fn unfiltered_second_source(shape: &Skeleton, k: usize) -> bool {
    let items = shape.items();
    let Some(at) = nth_keyword(items, "from", k) else {
        return false;
    };
    let mut depth = 0usize;
    let mut second = false;
    for i in (0..at).rev() {
        match &items[i] {
            SkeletonItem::Punct(")") => depth += 1,
            SkeletonItem::Punct("(") if depth == 0 => {
                second |= i > 0 && is_keyword(&items[i - 1], "in");
                break;
            }
            SkeletonItem::Punct("(") => depth -= 1,
            item if depth == 0 && is_compound(item) => {
                second = true;
                break;
            }
            _ => {}
        }
    }
    if !second {
        return false;
    }
    let mut depth = 0usize;
    for item in &items[at + 1..] {
        match item {
            SkeletonItem::Punct("(") => depth += 1,
            SkeletonItem::Punct(")") if depth == 0 => break,
            SkeletonItem::Punct(")") => depth -= 1,
            item if depth == 0 && is_compound(item) => break,
            item if depth == 0 && is_keyword(item, "where") => return false,
            _ => {}
        }
    }
    true
}

/// In an `ON` condition whose text ends `T3.x = `, the alias compared
/// (`T3`): the other side should read another source.
fn compared_alias(text: &str) -> Option<(String, String)> {
    let lower = text.to_ascii_lowercase();
    let on = lower.rfind(" on ")?;
    let condition = &lower[on + 4..];
    let (left, right) = condition.split_once('=')?;
    let typed = right.trim_start();
    let (alias, _) = left.trim().split_once('.')?;
    let alias = alias.trim();
    let fits = !alias.is_empty()
        && alias.chars().all(|c| c.is_alphanumeric() || c == '_')
        && alias.starts_with(typed)
        && typed.len() < alias.len();
    fits.then(|| (alias.to_string(), typed.to_string()))
}

/// [`SAME_ALIAS_PENALTY`] off each token that, after `typed` (a prefix of
/// `alias`, lower-cased), would write `alias` whole or `alias.`: the
/// tokenizer spells `T3` as `T` and `3`, so the penalty must fall on
/// whichever token completes it.
fn penalize_alias(texts: &TokenTexts, alias: &str, typed: &str, row: &mut [f32]) {
    let rest = &alias[typed.len()..];
    for id in 0..texts.vocab_len() as u32 {
        let Some(text) = texts.text(id) else {
            continue;
        };
        let text = if typed.is_empty() {
            text.trim_start()
        } else {
            text
        };
        let completes = text
            .get(..rest.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(rest))
            && matches!(text.get(rest.len()..), Some(tail) if tail.is_empty() || tail.starts_with('.'));
        if completes {
            add(row, id, -SAME_ALIAS_PENALTY);
        }
    }
}

/// How many words of `text` are `word` (ignoring case).
fn count_words(text: &str, word: &str) -> usize {
    text.split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| w.eq_ignore_ascii_case(word))
        .count()
}

/// Whether `item` is the keyword `word` (lower-case).
fn is_keyword(item: &SkeletonItem, word: &str) -> bool {
    matches!(item, SkeletonItem::Keyword(w) if w == word)
}

/// `EXCEPT`, `INTERSECT` or `UNION`.
fn is_compound(item: &SkeletonItem) -> bool {
    ["except", "intersect", "union"]
        .iter()
        .any(|word| is_keyword(item, word))
}

/// Where the `k`-th (from 0) `keyword` of `items` stands.
fn nth_keyword(items: &[SkeletonItem], keyword: &str, k: usize) -> Option<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| is_keyword(item, keyword))
        .map(|(at, _)| at)
        .nth(k)
}

/// The items of `shape` after the `k`-th `WHERE`'s (from 0) first name
/// and a `NOT` after it (`IN ( SELECT …` of `WHERE _ NOT IN ( SELECT …`);
/// empty where that `WHERE` is not followed by a name.
fn after_where_column(shape: &Skeleton, k: usize) -> &[SkeletonItem] {
    let items = shape.items();
    let Some(at) = nth_keyword(items, "where", k) else {
        return &[];
    };
    match &items[at + 1..] {
        [SkeletonItem::Name, not, rest @ ..] if is_keyword(not, "not") => rest,
        [SkeletonItem::Name, rest @ ..] => rest,
        _ => &[],
    }
}

/// Whether the `k`-th `WHERE` (from 0) of `shape` compares its first name
/// with a subquery's: `WHERE _ [NOT] IN ( SELECT`.
fn where_before_in(shape: &Skeleton, k: usize) -> bool {
    matches!(after_where_column(shape, k),
        [is_in, SkeletonItem::Punct("("), select, ..]
            if is_keyword(is_in, "in") && is_keyword(select, "select"))
}

/// A query whose `SELECT` list is compared with another query's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecondQuery {
    /// `_ [NOT] IN ( SELECT`.
    In,
    /// `EXCEPT SELECT`, `INTERSECT SELECT`, `UNION SELECT`.
    Compound,
}

/// [`SecondQuery`] of the `k`-th `SELECT` (from 0) of `shape`, if any.
fn second_query(shape: &Skeleton, k: usize) -> Option<SecondQuery> {
    let items = shape.items();
    let at = nth_keyword(items, "select", k)?;
    let before = items.get(at.checked_sub(1)?)?;
    if is_compound(before) {
        return Some(SecondQuery::Compound);
    }
    let in_before = at >= 2 && is_keyword(&items[at - 2], "in");
    (before == &SkeletonItem::Punct("(") && in_before).then_some(SecondQuery::In)
}

/// Each table of `schema` and its columns, as the symbols `token` gives.
fn table_columns(
    schema: &DatabaseSchema,
    token: &dyn Fn(&str) -> Option<u32>,
) -> Vec<(u32, Vec<u32>)> {
    schema
        .tables
        .iter()
        .filter_map(|table| {
            let columns = table.columns.iter().filter_map(|c| token(&c.name));
            Some((token(&table.name)?, columns.collect()))
        })
        .collect()
}

/// The columns of `schema` that hold words, as the symbols `token` gives:
/// text typed (a declared type with `CHAR`, `CLOB` or `TEXT`, as SQLite
/// reads affinity) and no example value a number; a name some column
/// holds numbers under is not one.
fn wordy_columns(schema: &DatabaseSchema, token: &dyn Fn(&str) -> Option<u32>) -> Vec<u32> {
    let mut wordy = Vec::new();
    let mut numeric = Vec::new();
    for column in schema.tables.iter().flat_map(|table| &table.columns) {
        let Some(symbol) = token(&column.name) else {
            continue;
        };
        let declared = column.data_type.to_ascii_uppercase();
        let text_typed = ["CHAR", "CLOB", "TEXT"]
            .iter()
            .any(|affinity| declared.contains(affinity));
        let number_values = column.sample_values.iter().any(|value| {
            !matches!(value, text2sql_data::schema::SampleValue::Text(_))
                || value.text().trim().parse::<f64>().is_ok()
        });
        if text_typed && !number_values {
            wordy.push(symbol);
        } else {
            numeric.push(symbol);
        }
    }
    wordy.retain(|symbol| !numeric.contains(symbol));
    wordy.dedup();
    wordy
}

/// The columns of `schema` declared to hold numbers (Spider's `number`,
/// a declared type SQLite reads as integer or real), as the symbols
/// `token` gives; a name some column holds anything else under is not one.
fn number_columns(schema: &DatabaseSchema, token: &dyn Fn(&str) -> Option<u32>) -> Vec<u32> {
    let mut numbers = Vec::new();
    let mut others = Vec::new();
    for column in schema.tables.iter().flat_map(|table| &table.columns) {
        let Some(symbol) = token(&column.name) else {
            continue;
        };
        let declared = column.data_type.to_ascii_uppercase();
        let number = declared == "NUMBER"
            || ["INT", "REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL"]
                .iter()
                .any(|affinity| declared.contains(affinity));
        if number {
            numbers.push(symbol);
        } else {
            others.push(symbol);
        }
    }
    numbers.retain(|symbol| !others.contains(symbol));
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// Where `text` ends at the first column of a `WHERE` condition (after
/// `WHERE`, or after `WHERE` and an alias's `.`): which `WHERE` of the
/// query that is (from 0).
fn where_column_next(text: &str) -> Option<usize> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|word| !word.is_empty())
        .collect();
    let at_where = match words.as_slice() {
        [.., last] if last.eq_ignore_ascii_case("where") => words.len() - 1,
        [.., before, alias]
            if text.trim_end().ends_with('.')
                && before.eq_ignore_ascii_case("where")
                && alias_prefix(&alias.to_ascii_lowercase()) =>
        {
            words.len() - 2
        }
        _ => return None,
    };
    Some(
        words[..at_where]
            .iter()
            .filter(|word| word.eq_ignore_ascii_case("where"))
            .count(),
    )
}

/// Whether the `k`-th `WHERE` (from 0) of `shape` matches its first name
/// with a pattern: `WHERE _ [NOT] LIKE`.
fn where_like(shape: &Skeleton, k: usize) -> bool {
    after_where_column(shape, k)
        .first()
        .is_some_and(|item| is_keyword(item, "like"))
}

/// Whether `text` ends inside `avg(` or `sum(` before its column (after
/// `DISTINCT` or an alias's `.`).
fn averages_next(text: &str) -> bool {
    let Some(open) = text.rfind('(') else {
        return false;
    };
    let function = text[..open].trim_end();
    let function = &function[function
        .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .map_or(0, |at| at + 1)..];
    if !(function.eq_ignore_ascii_case("avg") || function.eq_ignore_ascii_case("sum")) {
        return false;
    }
    let inside: Vec<&str> = text[open + 1..].split_whitespace().collect();
    match inside.as_slice() {
        [] => true,
        [word] => word.eq_ignore_ascii_case("distinct") || word.ends_with('.'),
        [first, second] => first.eq_ignore_ascii_case("distinct") && second.ends_with('.'),
        _ => false,
    }
}

/// Question words after which the question says how to order.
const ORDER_WORDS: [&str; 10] = [
    "order",
    "ordered",
    "ordering",
    "sort",
    "sorted",
    "sorting",
    "ascending",
    "descending",
    "alphabetical",
    "alphabetically",
];

/// How far before / after a column's word a literal makes it a
/// condition's column (`role with code "HR"`, `with 1 credit`). Tuning
/// databases, greedy, with the bonuses above: 243 right at (1, 2) and at
/// (2, 3), 244 at (2, 2), 237 at (3, 4); then 246 with a literal after an
/// `of` not counted, 248 with the words of a column's description too
/// (leaving out the words of its table's name: 235).
const CONDITION_WINDOW: (usize, usize) = (2, 3);

/// The columns a question names only as a condition's or an order's.
#[derive(Debug, Default)]
struct ColumnRoles {
    condition: Vec<u32>,
    order: Vec<u32>,
}

/// Which columns `question` names only next to one of its `literals` and
/// which only after it says how to order (see [`FillLinks`]'s
/// `condition_columns` and `order_columns`): by where the words of each
/// column's name stand in the question, words inside a literal left out.
fn column_roles(
    question: &str,
    schema: &DatabaseSchema,
    literals: &[String],
    token: &dyn Fn(&str) -> Option<u32>,
) -> ColumnRoles {
    let question_words = name_words(question);
    let n = question_words.len();
    let mut literal = vec![false; n];
    for (at, word) in question_words.iter().enumerate() {
        literal[at] =
            word.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&word.as_str());
    }
    for text in literals {
        let literal_words = name_words(text);
        if literal_words.is_empty() || literal_words.len() > n {
            continue;
        }
        for start in 0..=n - literal_words.len() {
            if question_words[start..start + literal_words.len()] == literal_words[..] {
                literal[start..start + literal_words.len()].fill(true);
            }
        }
    }
    let order_start = question_words
        .iter()
        .position(|word| ORDER_WORDS.contains(&word.as_str()))
        .unwrap_or(n);
    let (before, after) = CONDITION_WINDOW;
    let next_to_literal = |at: usize| {
        let before_hit = (at.saturating_sub(before)..at).any(|near| literal[near]);
        let mut after_hit = false;
        for near in at + 1..(at + after + 1).min(n) {
            // `the id of Daniel Lewis`: the literal names whose id.
            if question_words[near] == "of" {
                break;
            }
            if literal[near] {
                after_hit = true;
                break;
            }
        }
        before_hit || after_hit
    };
    let mut roles = ColumnRoles::default();
    for table in &schema.tables {
        for column in &table.columns {
            let Some(symbol) = token(&column.name) else {
                continue;
            };
            // `Fname` is "first name" in its description.
            let mut name = words(&column.name);
            name.extend(words(&column.description));
            let named_at: Vec<usize> = (0..n)
                .filter(|&at| !literal[at] && name.contains(stem(&question_words[at])))
                .collect();
            if named_at.is_empty() {
                continue;
            }
            if named_at.iter().all(|&at| next_to_literal(at)) && !roles.condition.contains(&symbol)
            {
                roles.condition.push(symbol);
            }
            if named_at.iter().all(|&at| at > order_start) && !roles.order.contains(&symbol) {
                roles.order.push(symbol);
            }
        }
    }
    roles
}

/// Number words a question may use for a literal (`at least two`).
const NUMBER_WORDS: [&str; 10] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];

/// The literals `question` names: the text it quotes, the database values
/// it mentions (every word of a value the value index retrieved,
/// `retrieved`, or an example value), its numbers and number words.
fn literal_links(question: &str, schema: &DatabaseSchema, retrieved: &ValueMatches) -> Vec<String> {
    let mut literals: Vec<String> = Vec::new();
    let mut push = |text: &str| {
        let text = text.trim();
        if !text.is_empty() && !literals.iter().any(|l| l == text) {
            literals.push(text.to_string());
        }
    };
    for quoted in quoted_spans(question) {
        push(quoted);
    }
    for found in retrieved.matches.iter().filter(|found| found.exact) {
        push(&found.value);
    }
    let question_lower = question.to_lowercase();
    for column in schema.tables.iter().flat_map(|table| &table.columns) {
        for value in &column.sample_values {
            if value_in_question(value, &question_lower) {
                push(&value.text());
            }
        }
    }
    for word in question_lower.split(|c: char| !c.is_alphanumeric()) {
        if let Some(n) = NUMBER_WORDS.iter().position(|w| *w == word) {
            push(&(n + 1).to_string());
        }
    }
    for word in question.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let word = word.trim_matches('.');
        if word.chars().any(|c| c.is_ascii_digit()) {
            push(word);
        }
    }
    literals
}

/// The spans `question` quotes (`"Tennis Club"`, `'Aliens'`, curly
/// quotes), not apostrophes inside words (`didn't`).
fn quoted_spans(question: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest_from = 0;
    let chars: Vec<(usize, char)> = question.char_indices().collect();
    for (k, &(at, c)) in chars.iter().enumerate() {
        let close = match c {
            '"' | '\'' => c,
            '\u{201c}' => '\u{201d}',
            '\u{2018}' => '\u{2019}',
            _ => continue,
        };
        if at < rest_from || (k > 0 && chars[k - 1].1.is_alphanumeric()) {
            continue;
        }
        let start = at + c.len_utf8();
        let Some(length) = question[start..].find(close) else {
            continue;
        };
        let end = start + length;
        let after = question[end + close.len_utf8()..].chars().next();
        if !after.is_some_and(char::is_alphanumeric) {
            spans.push(&question[start..end]);
            rest_from = end + close.len_utf8();
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{farm_schema, symbol_tokenizer, symbol_tokenizer_trained_on};
    use text2sql_data::schema::SampleValue;

    /// [`farm_schema`] with a `Theme` column in `city` storing `Aliens`.
    fn themed_farm_schema() -> DatabaseSchema {
        let mut schema = farm_schema();
        let mut theme = schema.tables[0].columns[1].clone();
        theme.name = "Theme".into();
        theme.description = "Theme".into();
        theme.sample_values = vec![SampleValue::Text("Aliens".into())];
        schema.tables[0].columns.push(theme);
        schema
    }

    #[test]
    fn a_question_names_quoted_text_values_and_numbers() {
        let schema = themed_farm_schema();
        let literals = |question: &str| literal_links(question, &schema, &ValueMatches::default());
        assert_eq!(
            literals("Which cities didn't host \"Dogs\" or 'Cats' in 2003, more than two times?"),
            ["Dogs", "Cats", "2", "2003"]
        );
        // A stored value the question mentions, as stored.
        assert_eq!(literals("Which cities hosted aliens?"), ["Aliens"]);
        assert_eq!(
            quoted_spans("the club \u{201c}Tennis Club\u{201d}"),
            ["Tennis Club"]
        );
        assert!(literals("How many farms are there?").is_empty());
    }

    #[test]
    fn the_columns_a_question_names_and_the_keys_link_symbols() {
        let tokenizer = symbol_tokenizer();
        let schema = themed_farm_schema();
        let symbols = SchemaSymbols::new(&schema, 8);
        let id = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap()
        };
        let links = FillLinks::new(
            "List the total horses of farms hosting aliens.",
            &schema,
            &symbols,
            &tokenizer,
        );
        // `aliens`, a value of Theme (3); `farm` of Farm_ID (3); both words
        // of Total_Horses (3 each) and the whole name (2).
        let link = |name: &str, points: f32| SymbolLink {
            token: id(name),
            bonus: points * COLUMN_LINK_BONUS,
        };
        assert_eq!(
            links.columns,
            [
                link("Theme", 3.0),
                link("Farm_ID", 3.0),
                link("Total_Horses", 8.0)
            ]
        );
        assert_eq!(links.value_columns, [id("Theme")]);
        assert_eq!(links.literals, ["Aliens"]);
        assert_eq!(links.keys.len(), 2);
        assert_eq!(
            links.keys[0],
            KeyLink {
                tables: [id("competition_record"), id("farm")],
                columns: [id("Farm_ID"), id("Farm_ID")],
            }
        );
    }

    #[test]
    fn a_query_held_to_a_shape_prefers_what_the_question_names() {
        use std::sync::Arc;
        use text2sql_data::serialize::symbol_token;
        use text2sql_sql::{SchemaIndex, Skeleton, SqlChecker};

        let tokenizer = symbol_tokenizer_trained_on(
            "SELECT T1.x FROM farm AS T1 JOIN city AS T2 ON a = b WHERE (age > 3) AND name = 'Aliens'",
        );
        let schema = themed_farm_schema();
        let symbols = SchemaSymbols::new(&schema, 8);
        let texts = crate::TokenTexts::new(&tokenizer);
        let question = "What is the population of cities that hosted 'Aliens', more than 3 times?";
        let links = FillLinks::new(question, &schema, &symbols, &tokenizer);
        let checker = |shape: &str| {
            let checker = SqlChecker::new(Arc::new(SchemaIndex::new(&schema)));
            if shape.is_empty() {
                checker
            } else {
                checker.with_skeletons(vec![Skeleton::of_sql(shape).unwrap()])
            }
        };
        let single = "SELECT Population FROM city WHERE Population > 3";
        let joined = "SELECT T1.Population FROM city AS T1 JOIN competition_record AS T2 ON T1.City_ID = T2.City_ID";
        let constraint = crate::Constraint::new(
            &texts,
            &tokenizer,
            vec![checker(single), checker(joined), checker("")],
            &[Some(&symbols), Some(&symbols), Some(&symbols)],
        )
        .with_fill_links(vec![links.clone(), links.clone(), links]);
        let symbol = |name: &str| symbol_token(symbols.symbol_of(name).unwrap());
        let id = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap()
        };
        // The bonuses on the row after `sql` (names written as symbols).
        let row_after = |input: usize, sql: &str| {
            let history = tokenizer.encode(sql, false).unwrap();
            let mut row = vec![0.0; tokenizer.vocab_size()];
            constraint.prefer_links(input, &mut row, &history);
            row
        };
        let population = COLUMN_LINK_BONUS * 5.0; // a whole one-word name
        let row = row_after(0, "SELECT");
        assert_eq!(row[id("Population") as usize], population);
        assert_eq!(row[id("City_ID") as usize], 0.0);
        // Not without a shape.
        assert!(row_after(2, "SELECT").iter().all(|&v| v == 0.0));
        // A name the SELECT list has is pushed back there (its link
        // spent), not later.
        let select_list = format!("SELECT {}", symbol("Population"));
        let row = row_after(0, &select_list);
        assert_eq!(row[id("Population") as usize], -SELECT_REPEAT_PENALTY);
        let order = format!("{select_list} FROM {} ORDER BY", symbol("city"));
        assert_eq!(row_after(0, &order)[id("Population") as usize], population);
        // In WHERE, the column storing a value the question mentions.
        let condition = format!("{select_list} FROM {} WHERE", symbol("city"));
        let row = row_after(0, &condition);
        let theme = COLUMN_LINK_BONUS * 3.0; // its value `Aliens`
        assert_eq!(row[id("Theme") as usize], theme + VALUE_COLUMN_BONUS);
        assert_eq!(row_after(0, &order)[id("Theme") as usize], theme);
        // A number of the question where a number goes, and not longer.
        let compare = format!("{order} {} >", symbol("Population"));
        // The tokens a row gives the literal bonus all go on spelling
        // `rest` (after their leading blanks when `blanks_first`).
        let spells = |row: &[f32], rest: &str, blanks_first: bool| {
            let boosted: Vec<&str> = (0..tokenizer.vocab_size() as u32)
                .filter(|&t| row[t as usize] == LITERAL_LINK_BONUS)
                .filter_map(|t| texts.text(t))
                .collect();
            assert!(!boosted.is_empty());
            assert!(
                boosted.iter().all(|text| {
                    rest.starts_with(if blanks_first {
                        text.trim_start()
                    } else {
                        text
                    })
                }),
                "{boosted:?} against {rest:?}"
            );
        };
        spells(&row_after(0, &compare), "3", true);
        let digit = (0..tokenizer.vocab_size() as u32)
            .find(|&t| texts.text(t) == Some("3"))
            .unwrap();
        let row = row_after(0, &format!("{compare} 3"));
        assert_eq!(row[digit as usize], -LITERAL_LINK_BONUS);
        // Nor a decimal point (`>= 3.5` for "more than 3 times").
        let point = (0..tokenizer.vocab_size() as u32)
            .find(|&t| texts.text(t) == Some("."))
            .unwrap();
        assert_eq!(row[point as usize], -LITERAL_LINK_BONUS);
        let row = row_after(0, &format!("{compare} 3."));
        assert_eq!(row[digit as usize], -LITERAL_LINK_BONUS);
        // Inside a string: what goes on spelling a quoted literal.
        let row = row_after(0, &format!("{compare} 'Al"));
        spells(&row, "iens'", false);
        assert_eq!(row[id("Population") as usize], 0.0);
        // A joined query: columns after an alias's dot, keys in ON.
        assert_eq!(row_after(1, "SELECT")[id("Population") as usize], 0.0);
        assert_eq!(
            row_after(1, "SELECT T1.")[id("Population") as usize],
            population
        );
        let on = format!(
            "SELECT T1.{} FROM {} AS T1 JOIN {} AS T2 ON",
            symbol("Population"),
            symbol("city"),
            symbol("competition_record")
        );
        let row = row_after(1, &on);
        // Both columns of the key are called City_ID: twice the bonus.
        assert_eq!(row[id("City_ID") as usize], 2.0 * KEY_LINK_BONUS);
        assert_eq!(row[id("Farm_ID") as usize], 0.0);
        assert_eq!(row[id("Population") as usize], 0.0);
        // A shape without a join reads one table: the SELECT list's
        // columns must share one, the FROM must have them, and after it
        // only its columns can come.
        let row = row_after(0, &format!("{select_list} ,"));
        assert_eq!(row[id("City_ID") as usize], 0.0);
        assert_eq!(row[id("Total_Horses") as usize], -TABLE_FIT_PENALTY);
        assert_eq!(row[id("Farm_ID") as usize], -TABLE_FIT_PENALTY);
        let from = format!("SELECT {} FROM", symbol("Total_Horses"));
        let row = row_after(0, &from);
        assert_eq!(row[id("farm") as usize], 0.0);
        assert_eq!(row[id("city") as usize], -TABLE_FIT_PENALTY);
        assert_eq!(row[id("competition_record") as usize], -TABLE_FIT_PENALTY);
        assert!(row_after(1, &from).iter().all(|&v| v == 0.0));
        let row = row_after(0, &condition);
        assert_eq!(row[id("Total_Horses") as usize], -TABLE_FIT_PENALTY);
        assert_eq!(row[id("Farm_ID") as usize], -TABLE_FIT_PENALTY);
        assert_eq!(row[id("City_ID") as usize], 0.0);
    }

    #[test]
    fn a_column_named_next_to_a_literal_or_after_an_order_is_not_one_to_list() {
        use std::sync::Arc;
        use text2sql_data::serialize::symbol_token;
        use text2sql_sql::{SchemaIndex, Skeleton, SqlChecker};

        let tokenizer = symbol_tokenizer_trained_on("SELECT x FROM t WHERE a = 3 ORDER BY b");
        let schema = farm_schema();
        let symbols = SchemaSymbols::new(&schema, 8);
        let texts = crate::TokenTexts::new(&tokenizer);
        let id = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap()
        };
        let links = |question: &str| FillLinks::new(question, &schema, &symbols, &tokenizer);
        // "population above 3000": the condition's column; "sorted by
        // population": the order's; "the population of": neither, nor
        // "the population of 3" (the literal names whose).
        assert!(links("What is the population of 3?")
            .condition_columns
            .is_empty());
        let condition = links("Which city ids have a population above 3000?");
        assert_eq!(condition.condition_columns, [id("Population")]);
        assert!(condition.order_columns.is_empty());
        let order = links("List the city ids sorted by population.");
        assert_eq!(order.order_columns, [id("Population")]);
        assert!(order.condition_columns.is_empty());
        // Both columns with an `id`, named only by it, next to the `3`.
        let listed = links("What is the population of the city with id 3?");
        assert_eq!(listed.condition_columns, [id("City_ID"), id("Farm_ID")]);
        assert!(listed.order_columns.is_empty());

        let shape = "SELECT City_ID FROM city WHERE Population > 3 ORDER BY Population";
        let checker = SqlChecker::new(Arc::new(SchemaIndex::new(&schema)))
            .with_skeletons(vec![Skeleton::of_sql(shape).unwrap()]);
        let constraint =
            crate::Constraint::new(&texts, &tokenizer, vec![checker], &[Some(&symbols)])
                .with_fill_links(vec![condition]);
        let row_after = |sql: &str| {
            let history = tokenizer.encode(sql, false).unwrap();
            let mut row = vec![0.0; tokenizer.vocab_size()];
            constraint.prefer_links(0, &mut row, &history);
            row
        };
        let population = id("Population") as usize;
        let city_id = id("City_ID") as usize;
        let bonus = COLUMN_LINK_BONUS * 5.0; // a whole one-word name
                                             // Not to list, but the condition's column in WHERE.
        let row = row_after("SELECT");
        assert_eq!(row[population], 0.0);
        assert!(row[city_id] > 0.0);
        let symbol = |name: &str| symbol_token(symbols.symbol_of(name).unwrap());
        let from = format!("SELECT {} FROM {}", symbol("City_ID"), symbol("city"));
        let row = row_after(&format!("{from} WHERE"));
        assert_eq!(row[population], bonus + CONDITION_COLUMN_BONUS);
        // The listed column is not the condition's: it keeps its link
        // bonus elsewhere, less the penalty here.
        let in_group = row_after(&format!("{from} GROUP BY"))[city_id];
        assert_eq!(row[city_id], in_group - LISTED_IN_CONDITION_PENALTY);
    }

    #[test]
    fn an_order_by_a_column_the_question_names_is_not_by_the_listed_one() {
        use std::sync::Arc;
        use text2sql_data::serialize::symbol_token;
        use text2sql_sql::{SchemaIndex, Skeleton, SqlChecker};

        let tokenizer = symbol_tokenizer_trained_on("SELECT x FROM t ORDER BY b DESC");
        let schema = themed_farm_schema();
        let symbols = SchemaSymbols::new(&schema, 8);
        let texts = crate::TokenTexts::new(&tokenizer);
        let id = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap() as usize
        };
        let symbol = |name: &str| symbol_token(symbols.symbol_of(name).unwrap());
        let shape = "SELECT City_ID FROM city ORDER BY Population DESC";
        let row_in_order = |question: &str| {
            let checker = SqlChecker::new(Arc::new(SchemaIndex::new(&schema)))
                .with_skeletons(vec![Skeleton::of_sql(shape).unwrap()]);
            let links = FillLinks::new(question, &schema, &symbols, &tokenizer);
            let constraint =
                crate::Constraint::new(&texts, &tokenizer, vec![checker], &[Some(&symbols)])
                    .with_fill_links(vec![links]);
            let sql = format!(
                "SELECT {} FROM {} ORDER BY",
                symbol("City_ID"),
                symbol("city")
            );
            let history = tokenizer.encode(&sql, false).unwrap();
            let mut row = vec![0.0; tokenizer.vocab_size()];
            constraint.prefer_links(0, &mut row, &history);
            row
        };
        // "the most populous": no column named whole besides the listed
        // one, which the order may repeat.
        let row = row_in_order("Which city id is the most populous?");
        assert!(row[id("City_ID")] > 0.0);
        // The theme is the condition's, by its value "Aliens".
        let row = row_in_order("Which city id hosted the theme Aliens, most populous first?");
        assert!(row[id("City_ID")] > 0.0);
        // "the highest population": the listed column's link is spent.
        let row = row_in_order("Which city id has the highest population?");
        assert_eq!(row[id("City_ID")], 0.0);
        assert_eq!(
            row[id("Population")],
            COLUMN_LINK_BONUS * WHOLE_NAME_SCORE as f32
        );
    }

    #[test]
    fn a_query_compared_with_another_reads_another_source_through_the_keys() {
        use std::sync::Arc;
        use text2sql_data::serialize::symbol_token;
        use text2sql_sql::{SchemaIndex, SqlChecker};

        let tokenizer = symbol_tokenizer_trained_on(
            "SELECT T1.x FROM t AS T1 JOIN u AS T2 ON T2.a = T1.b WHERE c NOT IN ( SELECT d FROM e ) EXCEPT SELECT f FROM g = 3",
        );
        let schema = farm_schema();
        let symbols = SchemaSymbols::new(&schema, 8);
        let texts = crate::TokenTexts::new(&tokenizer);
        let links = FillLinks::new(
            "Which cities hosted no competition?",
            &schema,
            &symbols,
            &tokenizer,
        );
        let shapes = [
            "SELECT Population FROM city WHERE City_ID NOT IN (SELECT City_ID FROM competition_record)",
            "SELECT Population FROM city WHERE City_ID = 3",
            "SELECT City_ID FROM city EXCEPT SELECT City_ID FROM competition_record",
            "SELECT T1.Population FROM city AS T1 JOIN competition_record AS T2 ON T1.City_ID = T2.City_ID",
        ];
        let checkers = shapes
            .iter()
            .map(|shape| {
                SqlChecker::new(Arc::new(SchemaIndex::new(&schema)))
                    .with_skeletons(vec![Skeleton::of_sql(shape).unwrap()])
            })
            .collect();
        let constraint = crate::Constraint::new(&texts, &tokenizer, checkers, &[Some(&symbols); 4])
            .with_fill_links(vec![links; 4]);
        let row_after = |input: usize, sql: &str| {
            let history = tokenizer.encode(sql, false).unwrap();
            let mut row = vec![0.0; tokenizer.vocab_size()];
            constraint.prefer_links(input, &mut row, &history);
            row
        };
        // What the shape with a subquery adds over the one without, after
        // the same text.
        let added = |sql: &str| {
            let (subquery, plain) = (row_after(0, sql), row_after(1, sql));
            move |token: u32| subquery[token as usize] - plain[token as usize]
        };
        let id = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap()
        };
        let symbol = |name: &str| symbol_token(symbols.symbol_of(name).unwrap());
        let outer = format!(
            "SELECT {} FROM {} WHERE",
            symbol("Population"),
            symbol("city")
        );
        // The compared column: a key's (both columns of each key have one
        // name here: twice the bonus).
        let at_where = added(&outer);
        assert_eq!(at_where(id("City_ID")), 2.0 * IN_KEY_BONUS);
        assert_eq!(at_where(id("Farm_ID")), 2.0 * IN_KEY_BONUS);
        assert_eq!(at_where(id("Population")), 0.0);
        // The subquery lists the compared column (its partner has its name).
        let subquery = format!("{outer} {} NOT IN ( SELECT", symbol("City_ID"));
        let at_select = added(&subquery);
        assert_eq!(at_select(id("City_ID")), IN_KEY_BONUS);
        assert_eq!(at_select(id("Population")), 0.0);
        // ... from another table than the outer query's.
        let at_from = added(&format!("{subquery} {} FROM", symbol("City_ID")));
        assert_eq!(at_from(id("city")), -SAME_SOURCE_PENALTY);
        assert_eq!(at_from(id("competition_record")), 0.0);
        // A compound's later part likewise.
        let first = format!(
            "SELECT {} FROM {} EXCEPT SELECT",
            symbol("City_ID"),
            symbol("city")
        );
        let row = row_after(2, &first);
        let plain = row_after(1, &first);
        assert_eq!(
            row[id("City_ID") as usize] - plain[id("City_ID") as usize],
            IN_KEY_BONUS
        );
        let second = format!("{first} {} FROM", symbol("City_ID"));
        let (row, plain) = (row_after(2, &second), row_after(1, &second));
        assert_eq!(
            row[id("city") as usize] - plain[id("city") as usize],
            -SAME_SOURCE_PENALTY
        );
        // A join: not the FROM's table again, and an ON condition compares
        // two sources, never one with itself.
        let row = row_after(
            3,
            &format!(
                "SELECT T1.{} FROM {} AS T1 JOIN",
                symbol("Population"),
                symbol("city")
            ),
        );
        assert_eq!(row[id("city") as usize], -JOINED_AGAIN_PENALTY);
        assert_eq!(row[id("competition_record") as usize], 0.0);
        let on = format!(
            "SELECT T1.{} FROM {} AS T1 JOIN {} AS T2 ON T2.{} = T",
            symbol("Population"),
            symbol("city"),
            symbol("competition_record"),
            symbol("City_ID")
        );
        let row = row_after(3, &on);
        let penalized: Vec<&str> = (0..tokenizer.vocab_size() as u32)
            .filter(|&t| row[t as usize] <= -SAME_ALIAS_PENALTY)
            .filter_map(|t| texts.text(t))
            .collect();
        assert!(!penalized.is_empty());
        assert!(
            penalized
                .iter()
                .all(|text| *text == "2" || text.starts_with("2.")),
            "{penalized:?}"
        );
    }

    #[test]
    fn where_a_shape_compares_a_query_with_another() {
        let shape = |sql: &str| Skeleton::of_sql(sql).unwrap();
        let subquery = shape("SELECT a FROM t WHERE b NOT IN (SELECT b FROM u)");
        assert!(!unfiltered_second_source(&subquery, 0));
        assert!(unfiltered_second_source(&subquery, 1));
        assert!(where_before_in(&subquery, 0));
        assert_eq!(second_query(&subquery, 1), Some(SecondQuery::In));
        assert_eq!(second_query(&subquery, 0), None);
        // A subquery with its own WHERE, or one compared by `>`, may read
        // the same table.
        let filtered = shape("SELECT a FROM t WHERE b IN (SELECT b FROM t WHERE c = 1)");
        assert!(!unfiltered_second_source(&filtered, 1));
        let scalar = shape("SELECT a FROM t WHERE b > (SELECT avg(b) FROM t)");
        assert!(!unfiltered_second_source(&scalar, 1));
        assert!(!where_before_in(&scalar, 0));
        assert_eq!(second_query(&scalar, 1), None);
        let compound = shape("SELECT a FROM t EXCEPT SELECT a FROM u");
        assert!(unfiltered_second_source(&compound, 1));
        assert_eq!(second_query(&compound, 1), Some(SecondQuery::Compound));
        let both_filtered =
            shape("SELECT a FROM t WHERE b = 1 INTERSECT SELECT a FROM t WHERE b = 2");
        assert!(!unfiltered_second_source(&both_filtered, 1));
        assert_eq!(
            compared_alias("SELECT T1.a FROM t AS T1 JOIN u AS T2 ON T2.b =  T"),
            Some(("t2".into(), "t".into()))
        );
        assert_eq!(
            compared_alias("SELECT a FROM t AS T1 JOIN u AS T2 ON T2.b = T1."),
            None
        );
        assert_eq!(
            compared_alias("SELECT a FROM t AS T1 JOIN u AS T2 ON"),
            None
        );
    }

    #[test]
    fn an_average_or_a_sum_is_of_a_column_holding_numbers() {
        use std::sync::Arc;
        use text2sql_sql::{SchemaIndex, Skeleton, SqlChecker};

        let mut schema = themed_farm_schema();
        let theme = &mut schema.tables[0].columns[2];
        assert_eq!(theme.name, "Theme");
        theme.data_type = "VARCHAR(20)".into();
        // Text typed, but numbers: not words.
        let mut rooms = schema.tables[1].columns[1].clone();
        rooms.data_type = "text".into();
        rooms.sample_values = vec![SampleValue::Text("3".into())];
        let names = ["Theme", "Population", "Total_Horses"];
        let token = |name: &str| names.iter().position(|n| *n == name).map(|at| at as u32);
        assert_eq!(wordy_columns(&schema, &token), [0]);
        schema.tables[1].columns[1] = rooms;
        assert_eq!(wordy_columns(&schema, &token), [0]);

        let tokenizer = symbol_tokenizer_trained_on("SELECT avg(T1.x) , max(y) FROM t AS T1");
        let symbols = SchemaSymbols::new(&schema, 8);
        let texts = crate::TokenTexts::new(&tokenizer);
        let id = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap() as usize
        };
        let shape = "SELECT avg(Population) , Theme FROM city GROUP BY Theme";
        let checker = SqlChecker::new(Arc::new(SchemaIndex::new(&schema)))
            .with_skeletons(vec![Skeleton::of_sql(shape).unwrap()]);
        let links = FillLinks::new(
            "What is the average population for each theme?",
            &schema,
            &symbols,
            &tokenizer,
        );
        let constraint =
            crate::Constraint::new(&texts, &tokenizer, vec![checker], &[Some(&symbols)])
                .with_fill_links(vec![links]);
        let row_after = |sql: &str| {
            let history = tokenizer.encode(sql, false).unwrap();
            let mut row = vec![0.0; tokenizer.vocab_size()];
            constraint.prefer_links(0, &mut row, &history);
            row
        };
        let theme = id("Theme");
        let averaged = row_after("SELECT avg(");
        let maximum = row_after("SELECT max(");
        assert_eq!(averaged[theme], maximum[theme] - WORDY_AVERAGE_PENALTY);
        assert_eq!(averaged[id("Population")], maximum[id("Population")]);
    }

    #[test]
    fn a_pattern_is_matched_against_a_column_not_declared_a_number() {
        let mut schema = farm_schema();
        schema.tables[0].columns[1].data_type = "TEXT".into(); // Population
        let names = ["City_ID", "Population", "Farm_ID", "Total_Horses"];
        let token = |name: &str| names.iter().position(|n| *n == name).map(|at| at as u32);
        assert_eq!(number_columns(&schema, &token), [0, 2, 3]);

        let tokenizer = symbol_tokenizer_trained_on("SELECT a FROM t AS T1 WHERE T1.b LIKE '%x%'");
        let symbols = SchemaSymbols::new(&schema, 8);
        let texts = crate::TokenTexts::new(&tokenizer);
        let id = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap() as usize
        };
        let links = FillLinks::new(
            "Which cities have 'a' in it?",
            &schema,
            &symbols,
            &tokenizer,
        );
        let like = Skeleton::of_sql("SELECT a FROM t WHERE b LIKE 'x'").unwrap();
        let equals = Skeleton::of_sql("SELECT a FROM t WHERE b = 'x'").unwrap();
        let row_after = |sql: &str, shape: &Skeleton| {
            let history = tokenizer.encode(sql, false).unwrap();
            let mut row = vec![0.0; tokenizer.vocab_size()];
            links.prefer_keys(&texts, &history, &mut row, std::slice::from_ref(shape));
            row
        };
        let row = row_after("SELECT a FROM t WHERE", &like);
        assert_eq!(row[id("City_ID")], -NUMBER_LIKE_PENALTY);
        assert_eq!(row[id("Population")], 0.0);
        assert_eq!(
            row_after("SELECT a FROM t AS T1 WHERE T1.", &like)[id("City_ID")],
            -NUMBER_LIKE_PENALTY
        );
        assert_eq!(
            row_after("SELECT a FROM t WHERE", &equals)[id("City_ID")],
            0.0
        );
    }

    #[test]
    fn where_a_text_stands() {
        assert_eq!(where_column_next("SELECT a FROM t WHERE"), Some(0));
        assert_eq!(
            where_column_next("SELECT a FROM t WHERE b IN (SELECT c FROM u AS T2 WHERE T2."),
            Some(1)
        );
        assert_eq!(where_column_next("SELECT a FROM t WHERE b = 1 AND"), None);
        let shape = |sql: &str| Skeleton::of_sql(sql).unwrap();
        assert!(where_like(
            &shape("SELECT a FROM t WHERE b NOT LIKE 'x'"),
            0
        ));
        assert!(!where_like(
            &shape("SELECT a FROM t WHERE b = 'x' AND c LIKE 'y'"),
            0
        ));
        assert!(averages_next("SELECT avg("));
        assert!(averages_next("SELECT T1.a , SUM ( DISTINCT T2."));
        assert!(!averages_next("SELECT avg(T1.a)"));
        assert!(!averages_next("SELECT max("));
        assert!(!averages_next("SELECT count("));
        assert_eq!(open_quote("WHERE a = 'Al"), Some(('\'', 11)));
        assert_eq!(open_quote("WHERE a = 'Al' AND b = \"x"), Some(('"', 24)));
        assert_eq!(open_quote("WHERE a = 'Al'"), None);
        assert_eq!(last_clause("SELECT a FROM t JOIN u ON"), Some("on"));
        assert_eq!(last_clause("SELECT count(*) ,"), Some("select"));
        assert_eq!(last_clause("SELECT a FROM t ORDER BY"), Some("order"));
        assert_eq!(last_clause("max("), None);
    }
}
