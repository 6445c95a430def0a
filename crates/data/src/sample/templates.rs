//! Question/SQL template families, four tiers with SynSQL's meaning. Every
//! family is generic over the schema (it picks tables, columns and edges by
//! role) and draws its literals from the generated rows; the concept
//! families add domain knowledge explained in `external_knowledge`.
//!
//! SQL is written in one canonical style: upper-case keywords, single
//! spaces, `T1`/`T2` aliases in joins (child first), CTE bodies on their own
//! lines, and `--` comments before the CTEs of Highly Complex queries.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::context::{nice, q_lit, sql_lit, DbContext, Edge, TableRoles};
use super::Tier;

/// One instantiated template: the gold SQL and the parts questions of every
/// style are rendered from.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub sql: String,
    /// Noun phrases naming what is asked ("the names of products whose
    /// category is 'Books'"); one is chosen per record.
    pub asks: Vec<String>,
    pub plural: bool,
    /// The table the question is mainly about, in words (dialogue opener).
    pub subject: String,
    /// What the user says, turn by turn, in a multi-turn dialogue.
    pub turns: Vec<String>,
    pub knowledge: String,
    /// The tables and columns the SQL uses, with their descriptions, for
    /// the `cot` text; filled once the item is verified.
    pub schema_notes: String,
    /// The reasoning steps of the `cot` text.
    pub steps: Vec<String>,
}

pub(crate) type Family = fn(&DbContext, &mut ChaCha8Rng) -> Option<Item>;

/// The families of a tier; the concept (external knowledge) families are
/// listed twice so that more records need `external_knowledge`.
pub(crate) fn families(tier: Tier) -> &'static [Family] {
    match tier {
        Tier::Simple => &[
            s_filter_list,
            s_count_where,
            s_aggregate,
            s_aggregate_where,
            s_top_n,
            s_threshold,
            s_distinct,
            s_date_after,
            s_two_conditions,
            s_count_distinct,
            s_lookup,
            s_concept_list,
            s_concept_list,
            s_sorted_filter,
            s_concept_aggregate,
        ],
        Tier::Moderate => &[
            m_join_filter_parent,
            m_join_parent_label,
            m_group_count,
            m_group_having,
            m_join_group_count,
            m_in_list,
            m_between,
            m_like,
            m_join_sum_having,
            m_date_between,
            m_join_child_threshold,
            m_group_by_year,
            m_concept_group,
            m_concept_group,
            m_join_group_parent_category,
            m_concept_join,
        ],
        Tier::Complex => &[
            c_above_average,
            c_in_subquery,
            c_not_in_subquery,
            c_rank_window,
            c_top_per_group,
            c_cte_totals,
            c_correlated,
            c_exists,
            c_running_total,
            c_max_in_group,
            c_concept_parents,
            c_concept_parents,
        ],
        Tier::HighlyComplex => &[
            h_parent_stats_above_average,
            h_union_extremes,
            h_share_of_total,
            h_monthly_change,
            h_top_children_per_parent,
            h_union_parents,
            h_quartiles,
            h_dense_rank_groups,
            h_chain_totals,
            h_concept_ranking,
            h_concept_ranking,
        ],
    }
}

const AGGREGATES: &[(&str, &str)] = &[
    ("AVG", "average"),
    ("MAX", "highest"),
    ("MIN", "lowest"),
    ("SUM", "total"),
];

fn has_label(r: &TableRoles) -> bool {
    r.label.is_some()
}
fn has_category(r: &TableRoles) -> bool {
    !r.categories.is_empty()
}
fn has_measure(r: &TableRoles) -> bool {
    !r.measures.is_empty()
}
fn has_date(r: &TableRoles) -> bool {
    !r.dates.is_empty()
}
fn has_key_and_label(r: &TableRoles) -> bool {
    r.key.is_some() && r.label.is_some()
}

fn any<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> Option<T> {
    items.choose(rng).copied()
}

/// A column other than `not` to show next to the label: a measure, a
/// category or a date of the table.
fn extra_column(ctx: &DbContext, rng: &mut ChaCha8Rng, t: usize, not: usize) -> Option<usize> {
    let r = &ctx.roles[t];
    let pool: Vec<usize> = r
        .measures
        .iter()
        .chain(&r.categories)
        .chain(&r.dates)
        .copied()
        .filter(|&c| c != not)
        .collect();
    any(rng, &pool)
}

fn the_words(ctx: &DbContext, t: usize, cols: &[usize]) -> String {
    let words: Vec<String> = cols.iter().map(|&c| ctx.words(t, c)).collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn select_list(ctx: &DbContext, t: usize, cols: &[usize], alias: &str) -> String {
    cols.iter()
        .map(|&c| format!("{alias}{}", ctx.col(t, c)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn comparison(rng: &mut ChaCha8Rng) -> (&'static str, &'static str) {
    *[
        (">", "greater than"),
        (">", "above"),
        ("<", "less than"),
        ("<", "below"),
        (">=", "at least"),
    ]
    .choose(rng)
    .unwrap_or(&(">", "above"))
}

/// A multi-line query made of CTEs and a final SELECT; `comments` puts a
/// `--` line before each CTE (Highly Complex style).
fn with_ctes(ctes: &[(&str, &str, String)], final_select: &str, comments: bool) -> String {
    let mut out = String::new();
    for (i, (name, comment, body)) in ctes.iter().enumerate() {
        if comments {
            out.push_str(&format!("-- {comment}\n"));
        }
        out.push_str(if i == 0 { "WITH " } else { "" });
        out.push_str(&format!("{name} AS (\n  {body}\n)"));
        out.push_str(if i + 1 < ctes.len() { ",\n" } else { "\n" });
    }
    if comments {
        out.push_str("-- Final result\n");
    }
    out.push_str(final_select);
    out.push(';');
    out
}

#[derive(Clone, Copy)]
struct Concept<'a> {
    term: &'a str,
    table: usize,
    explanation: &'a str,
    condition: &'a str,
}

impl Concept<'_> {
    fn condition(&self, alias: &str) -> String {
        self.condition.replace("{a}", alias)
    }
}

fn pick_concept<'a>(
    ctx: &DbContext<'a>,
    rng: &mut ChaCha8Rng,
    pred: impl Fn(usize) -> bool,
) -> Option<Concept<'a>> {
    let concepts: Vec<Concept> = ctx
        .domain
        .concepts
        .iter()
        .filter_map(|c| {
            let table = ctx.domain.table_index(&c.table)?;
            pred(table).then_some(Concept {
                term: &c.term,
                table,
                explanation: &c.explanation,
                condition: &c.condition,
            })
        })
        .collect();
    any(rng, &concepts)
}

// ---------------------------------------------------------------- Simple

fn s_filter_list(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r))?;
    let r = &ctx.roles[t];
    let (label, c) = (r.label?, any(rng, &r.categories)?);
    let x = extra_column(ctx, rng, t, c)?;
    let v = ctx.value(rng, t, c);
    let (pl, cw, v_q) = (ctx.plural(t), ctx.words(t, c), q_lit(&v));
    let shown = the_words(ctx, t, &[label, x]);
    Some(Item {
        sql: format!(
            "SELECT {} FROM {} WHERE {} = {};",
            select_list(ctx, t, &[label, x], ""),
            ctx.table(t),
            ctx.col(t, c),
            sql_lit(&v)
        ),
        asks: vec![
            format!("the {shown} of {pl} whose {cw} is {v_q}"),
            format!("the {shown} of all {pl} with {cw} {v_q}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Only the {pl} whose {cw} is {v_q}."),
            format!("Their {shown}, please."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("The {pl} are stored in the `{}` table.", ctx.table(t)),
            format!(
                "Keep only the rows where `{}` equals {}.",
                ctx.col(t, c),
                sql_lit(&v)
            ),
            format!(
                "Return the `{}` and `{}` columns.",
                ctx.col(t, label),
                ctx.col(t, x)
            ),
        ],
    })
}

fn s_count_where(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_category)?;
    let c = any(rng, &ctx.roles[t].categories)?;
    let v = ctx.value(rng, t, c);
    let (pl, cw, v_q) = (ctx.plural(t), ctx.words(t, c), q_lit(&v));
    Some(Item {
        sql: format!(
            "SELECT COUNT(*) FROM {} WHERE {} = {};",
            ctx.table(t),
            ctx.col(t, c),
            sql_lit(&v)
        ),
        asks: vec![
            format!("the number of {pl} whose {cw} is {v_q}"),
            format!("the count of {pl} with {cw} {v_q}"),
        ],
        plural: false,
        subject: pl.to_string(),
        turns: vec![
            format!("I want to know how many there are with {cw} {v_q}."),
            "Just the count.".to_string(),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Count rows in the `{}` table.", ctx.table(t)),
            format!(
                "Only rows where `{}` = {} are counted.",
                ctx.col(t, c),
                sql_lit(&v)
            ),
        ],
    })
}

fn s_aggregate(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_measure)?;
    let m = any(rng, &ctx.roles[t].measures)?;
    let (f, fw) = any(rng, AGGREGATES)?;
    let (pl, mw) = (ctx.plural(t), ctx.words(t, m));
    Some(Item {
        sql: format!("SELECT {f}({}) FROM {};", ctx.col(t, m), ctx.table(t)),
        asks: vec![
            format!("the {fw} {mw} of all {pl}"),
            format!("the {fw} {mw} across {pl}"),
        ],
        plural: false,
        subject: pl.to_string(),
        turns: vec![format!(
            "What interests me is the {fw} {mw} over all of them."
        )],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "The {mw} is the `{}` column of `{}`.",
                ctx.col(t, m),
                ctx.table(t)
            ),
            format!("Apply {f} over every row; no filter is needed."),
        ],
    })
}

fn s_aggregate_where(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_measure(r) && has_category(r))?;
    let (m, c) = (
        any(rng, &ctx.roles[t].measures)?,
        any(rng, &ctx.roles[t].categories)?,
    );
    let (f, fw) = any(rng, AGGREGATES)?;
    let v = ctx.value(rng, t, c);
    let (pl, mw, cw, v_q) = (ctx.plural(t), ctx.words(t, m), ctx.words(t, c), q_lit(&v));
    Some(Item {
        sql: format!(
            "SELECT {f}({}) FROM {} WHERE {} = {};",
            ctx.col(t, m),
            ctx.table(t),
            ctx.col(t, c),
            sql_lit(&v)
        ),
        asks: vec![
            format!("the {fw} {mw} of {pl} whose {cw} is {v_q}"),
            format!("the {fw} {mw} among {pl} with {cw} {v_q}"),
        ],
        plural: false,
        subject: pl.to_string(),
        turns: vec![
            format!("Only those whose {cw} is {v_q}."),
            format!("I need their {fw} {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "Filter `{}` on `{}` = {}.",
                ctx.table(t),
                ctx.col(t, c),
                sql_lit(&v)
            ),
            format!("Compute {f}(`{}`) over the remaining rows.", ctx.col(t, m)),
        ],
    })
}

fn s_top_n(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_measure(r))?;
    let (label, m) = (ctx.roles[t].label?, any(rng, &ctx.roles[t].measures)?);
    let n = rng.random_range(1..=10);
    let (order, most) = if rng.random_bool(0.75) {
        ("DESC", "highest")
    } else {
        ("ASC", "lowest")
    };
    let (pl, sg, mw, lw) = (
        ctx.plural(t),
        ctx.singular(t),
        ctx.words(t, m),
        ctx.words(t, label),
    );
    let who = if n == 1 {
        format!("the {sg} with the {most} {mw}")
    } else {
        format!("the {n} {pl} with the {most} {mw}")
    };
    Some(Item {
        sql: format!(
            "SELECT {}, {} FROM {} ORDER BY {} {order} LIMIT {n};",
            ctx.col(t, label),
            ctx.col(t, m),
            ctx.table(t),
            ctx.col(t, m)
        ),
        asks: vec![
            format!("the {lw} and {mw} of {who}"),
            format!("{who}, showing the {lw} and {mw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("I want {who}."),
            format!("Show their {lw} and {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Sort `{}` by `{}` {order}.", ctx.table(t), ctx.col(t, m)),
            format!(
                "Keep the first {n} row(s) and return `{}` and `{}`.",
                ctx.col(t, label),
                ctx.col(t, m)
            ),
        ],
    })
}

fn s_threshold(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_measure(r))?;
    let (label, m) = (ctx.roles[t].label?, any(rng, &ctx.roles[t].measures)?);
    let x = ctx.threshold(rng, t, m);
    let (op, opw) = comparison(rng);
    let (pl, mw, lw, x_q) = (
        ctx.plural(t),
        ctx.words(t, m),
        ctx.words(t, label),
        q_lit(&x),
    );
    Some(Item {
        sql: format!(
            "SELECT {}, {} FROM {} WHERE {} {op} {};",
            ctx.col(t, label),
            ctx.col(t, m),
            ctx.table(t),
            ctx.col(t, m),
            sql_lit(&x)
        ),
        asks: vec![
            format!("the {lw} and {mw} of {pl} with a {mw} {opw} {x_q}"),
            format!("the {pl} whose {mw} is {opw} {x_q}, with their {lw} and {mw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("The ones with a {mw} {opw} {x_q}."),
            format!("Their {lw} and {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Use the `{}` table.", ctx.table(t)),
            format!("Filter with `{}` {op} {}.", ctx.col(t, m), sql_lit(&x)),
            format!("Select `{}` and `{}`.", ctx.col(t, label), ctx.col(t, m)),
        ],
    })
}

fn s_distinct(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_category)?;
    let c = any(rng, &ctx.roles[t].categories)?;
    let (pl, cw) = (ctx.plural(t), ctx.words(t, c));
    Some(Item {
        sql: format!(
            "SELECT DISTINCT {} FROM {} ORDER BY {};",
            ctx.col(t, c),
            ctx.table(t),
            ctx.col(t, c)
        ),
        asks: vec![
            format!("the distinct {cw} values of {pl}, in alphabetical order"),
            format!("every different {cw} that {pl} have, sorted alphabetically"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Which different {cw} values exist?"),
            "Sorted alphabetically, without repeats.".to_string(),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Read `{}` from `{}`.", ctx.col(t, c), ctx.table(t)),
            "Remove duplicates with DISTINCT and sort the values.".to_string(),
        ],
    })
}

fn s_date_after(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_date(r))?;
    let (label, d) = (ctx.roles[t].label?, any(rng, &ctx.roles[t].dates)?);
    let day = ctx.value(rng, t, d);
    let (after, op, order) = if rng.random_bool(0.5) {
        ("on or after", ">=", "ASC")
    } else {
        ("before", "<", "DESC")
    };
    let (pl, dw, lw, day_q) = (
        ctx.plural(t),
        ctx.words(t, d),
        ctx.words(t, label),
        q_lit(&day),
    );
    Some(Item {
        sql: format!(
            "SELECT {}, {} FROM {} WHERE {} {op} {} ORDER BY {} {order};",
            ctx.col(t, label),
            ctx.col(t, d),
            ctx.table(t),
            ctx.col(t, d),
            sql_lit(&day),
            ctx.col(t, d)
        ),
        asks: vec![
            format!("the {lw} and {dw} of {pl} with a {dw} {after} {day_q}, ordered by {dw}"),
            format!(
                "the {pl} whose {dw} falls {after} {day_q}, with {lw} and {dw}, sorted by {dw}"
            ),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Those with a {dw} {after} {day_q}."),
            format!("Give me the {lw} and {dw}, ordered by {dw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "Dates are stored as 'YYYY-MM-DD' text in `{}`, so they compare as strings.",
                ctx.col(t, d)
            ),
            format!(
                "Filter `{}` {op} {} and sort {order}.",
                ctx.col(t, d),
                sql_lit(&day)
            ),
        ],
    })
}

fn s_two_conditions(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r) && has_measure(r))?;
    let r = &ctx.roles[t];
    let (label, c, m) = (r.label?, any(rng, &r.categories)?, any(rng, &r.measures)?);
    let v = ctx.value(rng, t, c);
    let x = ctx.threshold(rng, t, m);
    let (op, opw) = comparison(rng);
    let (pl, cw, mw, lw) = (
        ctx.plural(t),
        ctx.words(t, c),
        ctx.words(t, m),
        ctx.words(t, label),
    );
    let (v_q, x_q) = (q_lit(&v), q_lit(&x));
    Some(Item {
        sql: format!(
            "SELECT {} FROM {} WHERE {} = {} AND {} {op} {};",
            ctx.col(t, label),
            ctx.table(t),
            ctx.col(t, c),
            sql_lit(&v),
            ctx.col(t, m),
            sql_lit(&x)
        ),
        asks: vec![
            format!("the {lw} of {pl} whose {cw} is {v_q} and whose {mw} is {opw} {x_q}"),
            format!(
                "the {lw} of every {} with {cw} {v_q} and a {mw} {opw} {x_q}",
                ctx.singular(t)
            ),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Their {cw} should be {v_q}."),
            format!("And the {mw} {opw} {x_q}. Just the {lw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "Both conditions apply to `{}`: `{}` = {} AND `{}` {op} {}.",
                ctx.table(t),
                ctx.col(t, c),
                sql_lit(&v),
                ctx.col(t, m),
                sql_lit(&x)
            ),
            format!("Return `{}`.", ctx.col(t, label)),
        ],
    })
}

fn s_count_distinct(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_category)?;
    let c = any(rng, &ctx.roles[t].categories)?;
    let (pl, cw) = (ctx.plural(t), ctx.words(t, c));
    Some(Item {
        sql: format!(
            "SELECT COUNT(DISTINCT {}) FROM {};",
            ctx.col(t, c),
            ctx.table(t)
        ),
        asks: vec![
            format!("the number of different {cw} values among {pl}"),
            format!("how many distinct {cw} values the {pl} have"),
        ],
        plural: false,
        subject: pl.to_string(),
        turns: vec![format!("How many different {cw} values are there?")],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![format!(
            "Count the distinct values of `{}` in `{}`.",
            ctx.col(t, c),
            ctx.table(t)
        )],
    })
}

fn s_lookup(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && (has_measure(r) || has_category(r)))?;
    let label = ctx.roles[t].label?;
    let x = extra_column(ctx, rng, t, label)?;
    let y = extra_column(ctx, rng, t, label).filter(|&y| y != x);
    let who = ctx.value(rng, t, label);
    let cols: Vec<usize> = std::iter::once(x).chain(y).collect();
    let (sg, lw, who_q) = (ctx.singular(t), ctx.words(t, label), q_lit(&who));
    let shown = the_words(ctx, t, &cols);
    Some(Item {
        sql: format!(
            "SELECT {} FROM {} WHERE {} = {};",
            select_list(ctx, t, &cols, ""),
            ctx.table(t),
            ctx.col(t, label),
            sql_lit(&who)
        ),
        asks: vec![
            format!("the {shown} of the {sg} whose {lw} is {who_q}"),
            format!("the {shown} recorded for the {sg} {who_q}"),
        ],
        plural: false,
        subject: ctx.plural(t).to_string(),
        turns: vec![
            format!("The {sg} whose {lw} is {who_q}."),
            format!("I need the {shown}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "Find the row of `{}` whose `{}` is {}.",
                ctx.table(t),
                ctx.col(t, label),
                sql_lit(&who)
            ),
            format!(
                "Return {}.",
                cols.iter()
                    .map(|&c| format!("`{}`", ctx.col(t, c)))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        ],
    })
}

fn s_concept_list(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let k = pick_concept(ctx, rng, |_| true)?;
    let t = k.table;
    let (sql, asks, steps_last) = match ctx.roles[t].label {
        Some(label) => {
            let lw = ctx.words(t, label);
            (
                format!(
                    "SELECT {} FROM {} WHERE {};",
                    ctx.col(t, label),
                    ctx.table(t),
                    k.condition("")
                ),
                vec![
                    format!("the {lw} of all {}", k.term),
                    format!("the {lw} of the {}", k.term),
                ],
                format!("Return `{}`.", ctx.col(t, label)),
            )
        }
        None => (
            format!(
                "SELECT COUNT(*) FROM {} WHERE {};",
                ctx.table(t),
                k.condition("")
            ),
            vec![
                format!("the number of {}", k.term),
                format!("how many {} there are", k.term),
            ],
            "Count the matching rows.".to_string(),
        ),
    };
    let plural = ctx.roles[t].label.is_some();
    Some(Item {
        sql,
        asks,
        plural,
        subject: ctx.plural(t).to_string(),
        turns: vec![format!("I'm looking for the {}.", k.term)],
        knowledge: k.explanation.to_string(),
        schema_notes: String::new(),
        steps: vec![
            format!("By the external knowledge, {}.", k.explanation),
            format!("So filter `{}` with {}.", ctx.table(t), k.condition("")),
            steps_last,
        ],
    })
}

fn s_sorted_filter(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r) && has_measure(r))?;
    let r = &ctx.roles[t];
    let (label, c, m) = (r.label?, any(rng, &r.categories)?, any(rng, &r.measures)?);
    let v = ctx.value(rng, t, c);
    let (order, how) = if rng.random_bool(0.5) {
        ("DESC", "from highest to lowest")
    } else {
        ("ASC", "from lowest to highest")
    };
    let (pl, cw, mw, lw, v_q) = (
        ctx.plural(t),
        ctx.words(t, c),
        ctx.words(t, m),
        ctx.words(t, label),
        q_lit(&v),
    );
    Some(Item {
        sql: format!(
            "SELECT {}, {} FROM {} WHERE {} = {} ORDER BY {} {order};",
            ctx.col(t, label),
            ctx.col(t, m),
            ctx.table(t),
            ctx.col(t, c),
            sql_lit(&v),
            ctx.col(t, m)
        ),
        asks: vec![
            format!("the {lw} and {mw} of {pl} whose {cw} is {v_q}, sorted by {mw} {how}"),
            format!("{pl} with {cw} {v_q} and their {mw}, ordered by {mw} {how}, with the {lw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Those with {cw} {v_q}."),
            format!("Show the {lw} and {mw}, ordered by {mw} {how}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "Filter `{}` on `{}` = {}.",
                ctx.table(t),
                ctx.col(t, c),
                sql_lit(&v)
            ),
            format!("Order by `{}` {order}.", ctx.col(t, m)),
        ],
    })
}

fn s_concept_aggregate(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let k = pick_concept(ctx, rng, |t| has_measure(&ctx.roles[t]))?;
    let t = k.table;
    let m = any(rng, &ctx.roles[t].measures)?;
    let (f, fw) = any(rng, AGGREGATES)?;
    let mw = ctx.words(t, m);
    Some(Item {
        sql: format!(
            "SELECT {f}({}) FROM {} WHERE {};",
            ctx.col(t, m),
            ctx.table(t),
            k.condition("")
        ),
        asks: vec![
            format!("the {fw} {mw} of the {}", k.term),
            format!("the {fw} {mw} among all {}", k.term),
        ],
        plural: false,
        subject: ctx.plural(t).to_string(),
        turns: vec![
            format!("Only the {}.", k.term),
            format!("What is their {fw} {mw}?"),
        ],
        knowledge: k.explanation.to_string(),
        schema_notes: String::new(),
        steps: vec![
            format!("By the external knowledge, {}.", k.explanation),
            format!(
                "Filter `{}` with {} and compute {f}(`{}`).",
                ctx.table(t),
                k.condition(""),
                ctx.col(t, m)
            ),
        ],
    })
}

// ---------------------------------------------------------------- Moderate

/// `FROM child AS T1 INNER JOIN parent AS T2 ON T1.fk = T2.pk`
fn join(ctx: &DbContext, e: Edge) -> String {
    format!(
        "FROM {} AS T1 INNER JOIN {} AS T2 ON T1.{} = T2.{}",
        ctx.table(e.child),
        ctx.table(e.parent),
        ctx.col(e.child, e.child_col),
        ctx.col(e.parent, e.parent_col)
    )
}

fn join_step(ctx: &DbContext, e: Edge) -> String {
    format!(
        "Join `{}` (T1) with `{}` (T2) on T1.`{}` = T2.`{}`.",
        ctx.table(e.child),
        ctx.table(e.parent),
        ctx.col(e.child, e.child_col),
        ctx.col(e.parent, e.parent_col)
    )
}

/// A column of the child to show: its label, else a measure.
fn child_shown(ctx: &DbContext, rng: &mut ChaCha8Rng, t: usize) -> Option<usize> {
    ctx.roles[t]
        .label
        .or_else(|| any(rng, &ctx.roles[t].measures))
}

fn m_join_filter_parent(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(
        rng,
        |r| has_label(r) || has_measure(r),
        |r| has_label(r) && has_category(r),
    )?;
    let shown = child_shown(ctx, rng, e.child)?;
    let (pl_label, c) = (
        ctx.roles[e.parent].label?,
        any(rng, &ctx.roles[e.parent].categories)?,
    );
    let v = ctx.value(rng, e.parent, c);
    let (cpl, psg) = (ctx.plural(e.child), ctx.parent_singular(e));
    let (sw, plw, cw, v_q) = (
        ctx.words(e.child, shown),
        ctx.words(e.parent, pl_label),
        ctx.words(e.parent, c),
        q_lit(&v),
    );
    Some(Item {
        sql: format!(
            "SELECT T1.{}, T2.{} {} WHERE T2.{} = {};",
            ctx.col(e.child, shown),
            ctx.col(e.parent, pl_label),
            join(ctx, e),
            ctx.col(e.parent, c),
            sql_lit(&v)
        ),
        asks: vec![
            format!(
                "the {sw} of {cpl} together with the {psg} {plw}, for {} whose {cw} is {v_q}",
                ctx.parent_plural(e)
            ),
            format!("each of the {cpl}' {sw} and its {psg}'s {plw}, where the {psg} {cw} is {v_q}"),
        ],
        plural: true,
        subject: cpl.to_string(),
        turns: vec![
            format!("Only those linked to a {psg} whose {cw} is {v_q}."),
            format!("Show the {sw} and the {psg} {plw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!("Filter on T2.`{}` = {}.", ctx.col(e.parent, c), sql_lit(&v)),
            format!(
                "Select T1.`{}` and T2.`{}`.",
                ctx.col(e.child, shown),
                ctx.col(e.parent, pl_label)
            ),
        ],
    })
}

fn m_join_parent_label(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(
        rng,
        |r| has_measure(r) || has_category(r) || has_date(r),
        has_label,
    )?;
    let plabel = ctx.roles[e.parent].label?;
    let cr = &ctx.roles[e.child];
    let x = any(
        rng,
        &cr.measures
            .iter()
            .chain(&cr.categories)
            .chain(&cr.dates)
            .copied()
            .collect::<Vec<_>>(),
    )?;
    let shown: Vec<usize> = cr.label.into_iter().chain(std::iter::once(x)).collect();
    let who = ctx.value(rng, e.parent, plabel);
    let (cpl, psg, plw, who_q) = (
        ctx.plural(e.child),
        ctx.parent_singular(e),
        ctx.words(e.parent, plabel),
        q_lit(&who),
    );
    let shown_w = the_words(ctx, e.child, &shown);
    Some(Item {
        sql: format!(
            "SELECT {} {} WHERE T2.{} = {};",
            select_list(ctx, e.child, &shown, "T1."),
            join(ctx, e),
            ctx.col(e.parent, plabel),
            sql_lit(&who)
        ),
        asks: vec![
            format!("the {shown_w} of the {cpl} of the {psg} whose {plw} is {who_q}"),
            format!("the {shown_w} of every one of the {cpl} belonging to the {psg} {who_q}"),
        ],
        plural: true,
        subject: cpl.to_string(),
        turns: vec![
            format!("The ones for the {psg} whose {plw} is {who_q}."),
            format!("I'd like the {shown_w}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!(
                "Keep rows where T2.`{}` = {}.",
                ctx.col(e.parent, plabel),
                sql_lit(&who)
            ),
        ],
    })
}

fn m_group_count(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_category)?;
    let c = any(rng, &ctx.roles[t].categories)?;
    let (pl, cw) = (ctx.plural(t), ctx.words(t, c));
    Some(Item {
        sql: format!(
            "SELECT {c_}, COUNT(*) AS {t_}_count FROM {t_} GROUP BY {c_} ORDER BY {t_}_count DESC;",
            c_ = ctx.col(t, c),
            t_ = ctx.table(t)
        ),
        asks: vec![
            format!("the number of {pl} for each {cw}, from the most common to the least"),
            format!("each {cw} with how many {pl} it has, most frequent first"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Break them down by {cw}."),
            "Count each group, largest first.".to_string(),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Group `{}` by `{}`.", ctx.table(t), ctx.col(t, c)),
            "Count the rows of each group and order by the count, descending.".to_string(),
        ],
    })
}

fn m_group_having(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_category(r) && has_measure(r))?;
    let (c, m) = (
        any(rng, &ctx.roles[t].categories)?,
        any(rng, &ctx.roles[t].measures)?,
    );
    let x = nice(ctx.mean(t, m));
    let (pl, cw, mw, x_q) = (ctx.plural(t), ctx.words(t, c), ctx.words(t, m), q_lit(&x));
    Some(Item {
        sql: format!(
            "SELECT {c_}, AVG({m_}) AS avg_{m_} FROM {} GROUP BY {c_} HAVING AVG({m_}) > {};",
            ctx.table(t),
            sql_lit(&x),
            c_ = ctx.col(t, c),
            m_ = ctx.col(t, m)
        ),
        asks: vec![
            format!("each {cw} of {pl} whose average {mw} is above {x_q}, with that average"),
            format!("the {cw} groups of {pl} with an average {mw} greater than {x_q}, and their average {mw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Group them by {cw} and average the {mw}."),
            format!("Only the groups whose average is above {x_q}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Group `{}` by `{}` and compute AVG(`{}`).", ctx.table(t), ctx.col(t, c), ctx.col(t, m)),
            format!("HAVING keeps the groups whose average exceeds {}.", sql_lit(&x)),
        ],
    })
}

fn m_join_group_count(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, |_| true, has_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let n = rng.random_range(3..=10);
    let (cpl, ppl, plw) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
    );
    Some(Item {
        sql: format!(
            "SELECT T2.{}, COUNT(*) AS {}_count {} GROUP BY T1.{} ORDER BY {}_count DESC LIMIT {n};",
            ctx.col(e.parent, plabel),
            ctx.table(e.child),
            join(ctx, e),
            ctx.col(e.child, e.child_col),
            ctx.table(e.child)
        ),
        asks: vec![
            format!("the {n} {ppl} with the most {cpl}, giving the {plw} and the number of {cpl}"),
            format!("the {plw} of the top {n} {ppl} by number of {cpl}, with that number"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("I want to know which have the most {cpl}."),
            format!("The top {n}, with their {plw} and the count."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!("Group by T1.`{}` and count the {cpl}.", ctx.col(e.child, e.child_col)),
            format!("Order by the count descending and keep {n}."),
        ],
    })
}

fn m_in_list(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r))?;
    let (label, c) = (ctx.roles[t].label?, any(rng, &ctx.roles[t].categories)?);
    let n = rng.random_range(2..=3);
    let values = ctx.distinct_values(rng, t, c, n);
    if values.len() < 2 {
        return None;
    }
    let sql_values: Vec<String> = values.iter().map(sql_lit).collect();
    let q_values: Vec<String> = values.iter().map(q_lit).collect();
    let q_list = match q_values.as_slice() {
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
        [] => String::new(),
    };
    let (pl, cw, lw) = (ctx.plural(t), ctx.words(t, c), ctx.words(t, label));
    Some(Item {
        sql: format!(
            "SELECT {}, {} FROM {} WHERE {} IN ({});",
            ctx.col(t, label),
            ctx.col(t, c),
            ctx.table(t),
            ctx.col(t, c),
            sql_values.join(", ")
        ),
        asks: vec![
            format!("the {lw} and {cw} of {pl} whose {cw} is {q_list}"),
            format!("the {pl} with a {cw} of {q_list}, listing {lw} and {cw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Those whose {cw} is {q_list}."),
            format!("Show the {lw} and the {cw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "Filter `{}` with `{}` IN ({}).",
                ctx.table(t),
                ctx.col(t, c),
                sql_values.join(", ")
            ),
            format!("Return `{}` and `{}`.", ctx.col(t, label), ctx.col(t, c)),
        ],
    })
}

fn m_between(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_measure(r))?;
    let (label, m) = (ctx.roles[t].label?, any(rng, &ctx.roles[t].measures)?);
    let (a, b) = (ctx.threshold(rng, t, m), ctx.threshold(rng, t, m));
    let (a, b) = if sql_lit(&a).parse::<f64>().ok() > sql_lit(&b).parse::<f64>().ok() {
        (b, a)
    } else {
        (a, b)
    };
    let (pl, mw, lw) = (ctx.plural(t), ctx.words(t, m), ctx.words(t, label));
    let (a_q, b_q) = (q_lit(&a), q_lit(&b));
    Some(Item {
        sql: format!(
            "SELECT {}, {} FROM {} WHERE {} BETWEEN {} AND {};",
            ctx.col(t, label),
            ctx.col(t, m),
            ctx.table(t),
            ctx.col(t, m),
            sql_lit(&a),
            sql_lit(&b)
        ),
        asks: vec![
            format!("the {lw} and {mw} of {pl} with a {mw} between {a_q} and {b_q}"),
            format!("{pl} whose {mw} lies between {a_q} and {b_q}, with their {lw} and {mw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Those with a {mw} between {a_q} and {b_q}."),
            format!("Their {lw} and {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![format!(
            "Filter `{}` with `{}` BETWEEN {} AND {} (inclusive).",
            ctx.table(t),
            ctx.col(t, m),
            sql_lit(&a),
            sql_lit(&b)
        )],
    })
}

fn m_like(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_label)?;
    let label = ctx.roles[t].label?;
    let name = match ctx.value(rng, t, label) {
        rusqlite::types::Value::Text(s) => s,
        _ => return None,
    };
    let words: Vec<&str> = name
        .split(' ')
        .filter(|w| w.len() >= 3 && !w.contains('\''))
        .collect();
    let word = any(rng, &words)?;
    let extra = extra_column(ctx, rng, t, label);
    let cols: Vec<usize> = std::iter::once(label).chain(extra).collect();
    let (pl, lw) = (ctx.plural(t), ctx.words(t, label));
    let (pattern, how) = if name.starts_with(word) && rng.random_bool(0.5) {
        (format!("{word}%"), format!("starts with '{word}'"))
    } else {
        (format!("%{word}%"), format!("contains '{word}'"))
    };
    let shown = the_words(ctx, t, &cols);
    Some(Item {
        sql: format!(
            "SELECT {} FROM {} WHERE {} LIKE '{pattern}';",
            select_list(ctx, t, &cols, ""),
            ctx.table(t),
            ctx.col(t, label)
        ),
        asks: vec![
            format!("the {shown} of {pl} whose {lw} {how}"),
            format!(
                "every {} whose {lw} {how}, with its {shown}",
                ctx.singular(t)
            ),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("The ones whose {lw} {how}."),
            format!("Show the {shown}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![format!(
            "Match `{}` against the pattern '{pattern}' with LIKE.",
            ctx.col(t, label)
        )],
    })
}

fn m_join_sum_having(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_measure, has_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let per_parent =
        ctx.data[e.child].rows.len() as f64 / ctx.data[e.parent].rows.len().max(1) as f64;
    let x = nice(ctx.mean(e.child, m) * per_parent);
    let (cpl, ppl, plw, mw, x_q) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, m),
        q_lit(&x),
    );
    Some(Item {
        sql: format!(
            "SELECT T2.{}, SUM(T1.{m_}) AS total_{m_} {} GROUP BY T1.{} HAVING SUM(T1.{m_}) > {};",
            ctx.col(e.parent, plabel),
            join(ctx, e),
            ctx.col(e.child, e.child_col),
            sql_lit(&x),
            m_ = ctx.col(e.child, m)
        ),
        asks: vec![
            format!("the {plw} of {ppl} whose {cpl} have a total {mw} above {x_q}, with that total"),
            format!("{ppl} with a summed {mw} of their {cpl} greater than {x_q}, showing {plw} and the sum"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Add up the {mw} of their {cpl}."),
            format!("Keep those with a total above {x_q} and show the {plw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!("Group by T1.`{}` and sum T1.`{}`.", ctx.col(e.child, e.child_col), ctx.col(e.child, m)),
            format!("HAVING keeps sums above {}.", sql_lit(&x)),
        ],
    })
}

fn m_date_between(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_date)?;
    let d = any(rng, &ctx.roles[t].dates)?;
    let shown = child_shown(ctx, rng, t)?;
    let (a, b) = ctx.date_range(rng, t, d);
    let (pl, dw, sw) = (ctx.plural(t), ctx.words(t, d), ctx.words(t, shown));
    let (a_q, b_q) = (q_lit(&a), q_lit(&b));
    Some(Item {
        sql: format!(
            "SELECT {}, {} FROM {} WHERE {} BETWEEN {} AND {};",
            ctx.col(t, shown),
            ctx.col(t, d),
            ctx.table(t),
            ctx.col(t, d),
            sql_lit(&a),
            sql_lit(&b)
        ),
        asks: vec![
            format!("the {sw} and {dw} of {pl} with a {dw} between {a_q} and {b_q}"),
            format!("{pl} dated (by {dw}) from {a_q} to {b_q}, with {sw} and {dw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Those with a {dw} from {a_q} to {b_q}."),
            format!("Show the {sw} and {dw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![format!(
            "Filter `{}` with `{}` BETWEEN {} AND {}; ISO dates compare correctly as text.",
            ctx.table(t),
            ctx.col(t, d),
            sql_lit(&a),
            sql_lit(&b)
        )],
    })
}

fn m_join_child_threshold(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_measure, has_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let x = ctx.threshold(rng, e.child, m);
    let (op, opw) = comparison(rng);
    let (cpl, ppl, plw, mw, x_q) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, m),
        q_lit(&x),
    );
    Some(Item {
        sql: format!(
            "SELECT DISTINCT T2.{} {} WHERE T1.{} {op} {};",
            ctx.col(e.parent, plabel),
            join(ctx, e),
            ctx.col(e.child, m),
            sql_lit(&x)
        ),
        asks: vec![
            format!("the distinct {plw} of {ppl} that have {cpl} with a {mw} {opw} {x_q}"),
            format!(
                "which {ppl} (by {plw}) have at least one of their {cpl} with {mw} {opw} {x_q}"
            ),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Those having {cpl} with a {mw} {opw} {x_q}."),
            format!("Just their {plw}, without duplicates."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!(
                "Filter T1.`{}` {op} {} and keep distinct T2.`{}`.",
                ctx.col(e.child, m),
                sql_lit(&x),
                ctx.col(e.parent, plabel)
            ),
        ],
    })
}

fn m_group_by_year(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_date)?;
    let d = any(rng, &ctx.roles[t].dates)?;
    let (pl, dw) = (ctx.plural(t), ctx.words(t, d));
    Some(Item {
        sql: format!(
            "SELECT strftime('%Y', {}) AS year, COUNT(*) AS {t_}_count FROM {t_} GROUP BY year ORDER BY year;",
            ctx.col(t, d),
            t_ = ctx.table(t)
        ),
        asks: vec![
            format!("the number of {pl} per year of their {dw}, in chronological order"),
            format!("how many {pl} there are for each year of {dw}, oldest year first"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Count them per year, using the {dw}."),
            "In chronological order.".to_string(),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Extract the year of `{}` with strftime('%Y', ...).", ctx.col(t, d)),
            "Group by that year, count, and order by year.".to_string(),
        ],
    })
}

fn m_concept_group(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let k = pick_concept(ctx, rng, |t| has_category(&ctx.roles[t]))?;
    let t = k.table;
    let c = any(rng, &ctx.roles[t].categories)?;
    let cw = ctx.words(t, c);
    Some(Item {
        sql: format!(
            "SELECT {c_}, COUNT(*) AS {t_}_count FROM {t_} WHERE {} GROUP BY {c_} ORDER BY {t_}_count DESC;",
            k.condition(""),
            c_ = ctx.col(t, c),
            t_ = ctx.table(t)
        ),
        asks: vec![
            format!("the number of {} for each {cw}, most first", k.term),
            format!("how the {} are spread over {cw}, counted per {cw}, largest group first", k.term),
        ],
        plural: true,
        subject: ctx.plural(t).to_string(),
        turns: vec![
            format!("Only the {}.", k.term),
            format!("Count them per {cw}, biggest group first."),
        ],
        knowledge: k.explanation.to_string(),
        schema_notes: String::new(),
        steps: vec![
            format!("By the external knowledge, {}.", k.explanation),
            format!("Filter `{}` with {}, group by `{}`, count and sort descending.", ctx.table(t), k.condition(""), ctx.col(t, c)),
        ],
    })
}

fn m_join_group_parent_category(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_measure, has_category)?;
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let c = any(rng, &ctx.roles[e.parent].categories)?;
    let (f, fw) = any(rng, &AGGREGATES[..2])?;
    let (cpl, psg, mw, cw) = (
        ctx.plural(e.child),
        ctx.parent_singular(e),
        ctx.words(e.child, m),
        ctx.words(e.parent, c),
    );
    Some(Item {
        sql: format!(
            "SELECT T2.{c_}, {f}(T1.{m_}) {} GROUP BY T2.{c_} ORDER BY T2.{c_};",
            join(ctx, e),
            c_ = ctx.col(e.parent, c),
            m_ = ctx.col(e.child, m)
        ),
        asks: vec![
            format!("the {fw} {mw} of {cpl} for each {psg} {cw}, ordered by {cw}"),
            format!(
                "for every {cw} of the {psg}, the {fw} {mw} of the related {cpl}, sorted by {cw}"
            ),
        ],
        plural: true,
        subject: cpl.to_string(),
        turns: vec![
            format!("Group them by the {cw} of their {psg}."),
            format!("I want the {fw} {mw} per group, ordered by {cw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!(
                "Group by T2.`{}` and compute {f}(T1.`{}`).",
                ctx.col(e.parent, c),
                ctx.col(e.child, m)
            ),
        ],
    })
}

fn m_concept_join(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let k = pick_concept(ctx, rng, |t| {
        ctx.edges
            .iter()
            .any(|e| e.child == t && has_label(&ctx.roles[e.parent]))
    })?;
    let edges: Vec<Edge> = ctx
        .edges
        .iter()
        .filter(|e| e.child == k.table && has_label(&ctx.roles[e.parent]))
        .copied()
        .collect();
    let e = any(rng, &edges)?;
    let plabel = ctx.roles[e.parent].label?;
    let (ppl, plw) = (ctx.parent_plural(e), ctx.words(e.parent, plabel));
    Some(Item {
        sql: format!(
            "SELECT DISTINCT T2.{} {} WHERE {} ORDER BY T2.{};",
            ctx.col(e.parent, plabel),
            join(ctx, e),
            k.condition("T1."),
            ctx.col(e.parent, plabel)
        ),
        asks: vec![
            format!(
                "the {plw} of the {ppl} linked to {}, alphabetically and without repeats",
                k.term
            ),
            format!(
                "the distinct {plw} of {ppl} that have {}, in alphabetical order",
                k.term
            ),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Those connected to {}.", k.term),
            format!("Just the {plw}, sorted, no duplicates."),
        ],
        knowledge: k.explanation.to_string(),
        schema_notes: String::new(),
        steps: vec![
            format!("By the external knowledge, {}.", k.explanation),
            join_step(ctx, e),
            format!(
                "Filter with {} and keep distinct T2.`{}`.",
                k.condition("T1."),
                ctx.col(e.parent, plabel)
            ),
        ],
    })
}

// ---------------------------------------------------------------- Complex

fn c_above_average(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_measure(r))?;
    let (label, m) = (ctx.roles[t].label?, any(rng, &ctx.roles[t].measures)?);
    let (above, op, order) = if rng.random_bool(0.7) {
        ("above", ">", "DESC")
    } else {
        ("below", "<", "ASC")
    };
    let (pl, mw, lw) = (ctx.plural(t), ctx.words(t, m), ctx.words(t, label));
    Some(Item {
        sql: format!(
            "SELECT {l_}, {m_} FROM {t_} WHERE {m_} {op} (SELECT AVG({m_}) FROM {t_}) ORDER BY {m_} {order};",
            l_ = ctx.col(t, label),
            m_ = ctx.col(t, m),
            t_ = ctx.table(t)
        ),
        asks: vec![
            format!("the {lw} and {mw} of {pl} whose {mw} is {above} the average {mw} of all {pl}"),
            format!("{pl} with a {mw} {above} average, showing {lw} and {mw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Those whose {mw} is {above} the overall average."),
            format!("Show {lw} and {mw}, sorted by {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("A subquery computes AVG(`{}`) over `{}`.", ctx.col(t, m), ctx.table(t)),
            format!("Keep rows whose `{}` is {op} that average and sort {order}.", ctx.col(t, m)),
        ],
    })
}

fn c_in_subquery(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_category, has_key_and_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let c = any(rng, &ctx.roles[e.child].categories)?;
    let v = ctx.value(rng, e.child, c);
    let (cpl, ppl, plw, cw, v_q) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, c),
        q_lit(&v),
    );
    Some(Item {
        sql: format!(
            "SELECT {} FROM {} WHERE {} IN (SELECT {} FROM {} WHERE {} = {});",
            ctx.col(e.parent, plabel),
            ctx.table(e.parent),
            ctx.col(e.parent, e.parent_col),
            ctx.col(e.child, e.child_col),
            ctx.table(e.child),
            ctx.col(e.child, c),
            sql_lit(&v)
        ),
        asks: vec![
            format!("the {plw} of {ppl} that have at least one of the {cpl} with {cw} {v_q}"),
            format!("the {plw} of every one of the {ppl} linked to {cpl} whose {cw} is {v_q}"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Those that have {cpl} whose {cw} is {v_q}."),
            format!("Only their {plw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "A subquery collects `{}` from `{}` where `{}` = {}.",
                ctx.col(e.child, e.child_col),
                ctx.table(e.child),
                ctx.col(e.child, c),
                sql_lit(&v)
            ),
            format!(
                "Keep the {ppl} whose `{}` is IN that set.",
                ctx.col(e.parent, e.parent_col)
            ),
        ],
    })
}

fn c_not_in_subquery(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_category, has_key_and_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let c = any(rng, &ctx.roles[e.child].categories)?;
    let v = ctx.value(rng, e.child, c);
    let (cpl, ppl, plw, cw, v_q) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, c),
        q_lit(&v),
    );
    Some(Item {
        sql: format!(
            "SELECT {} FROM {} WHERE {} NOT IN (SELECT {} FROM {} WHERE {} = {});",
            ctx.col(e.parent, plabel),
            ctx.table(e.parent),
            ctx.col(e.parent, e.parent_col),
            ctx.col(e.child, e.child_col),
            ctx.table(e.child),
            ctx.col(e.child, c),
            sql_lit(&v)
        ),
        asks: vec![
            format!("the {plw} of {ppl} that have no {cpl} with {cw} {v_q}"),
            format!("the {plw} of the {ppl} without any of the {cpl} whose {cw} is {v_q}"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Those that have no {cpl} whose {cw} is {v_q}."),
            format!("Just the {plw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!(
                "A subquery collects `{}` of `{}` rows where `{}` = {}.",
                ctx.col(e.child, e.child_col),
                ctx.table(e.child),
                ctx.col(e.child, c),
                sql_lit(&v)
            ),
            format!("Keep the {ppl} whose key is NOT IN that set."),
        ],
    })
}

fn c_rank_window(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r) && has_measure(r))?;
    let r = &ctx.roles[t];
    let (label, c, m) = (r.label?, any(rng, &r.categories)?, any(rng, &r.measures)?);
    let (pl, cw, mw, lw) = (
        ctx.plural(t),
        ctx.words(t, c),
        ctx.words(t, m),
        ctx.words(t, label),
    );
    Some(Item {
        sql: format!(
            "SELECT {l_}, {c_}, {m_}, RANK() OVER (PARTITION BY {c_} ORDER BY {m_} DESC) AS {m_}_rank FROM {};",
            ctx.table(t),
            l_ = ctx.col(t, label),
            c_ = ctx.col(t, c),
            m_ = ctx.col(t, m)
        ),
        asks: vec![
            format!("the {lw}, {cw} and {mw} of every one of the {pl}, with its rank by {mw} within its {cw}"),
            format!("each {} ranked by {mw} (highest first) inside its own {cw}, with {lw}, {cw} and {mw}", ctx.singular(t)),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Rank them by {mw}, highest first, separately within each {cw}."),
            format!("Show the {lw}, the {cw}, the {mw} and the rank."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Use the window function RANK() partitioned by `{}`.", ctx.col(t, c)),
            format!("Order each partition by `{}` DESC.", ctx.col(t, m)),
        ],
    })
}

fn c_top_per_group(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r) && has_measure(r))?;
    let r = &ctx.roles[t];
    let (label, c, m) = (r.label?, any(rng, &r.categories)?, any(rng, &r.measures)?);
    let n = rng.random_range(1..=3);
    let (l_, c_, m_) = (ctx.col(t, label), ctx.col(t, c), ctx.col(t, m));
    let (pl, cw, mw, lw) = (
        ctx.plural(t),
        ctx.words(t, c),
        ctx.words(t, m),
        ctx.words(t, label),
    );
    let body = format!(
        "SELECT {l_}, {c_}, {m_}, ROW_NUMBER() OVER (PARTITION BY {c_} ORDER BY {m_} DESC) AS rn FROM {}",
        ctx.table(t)
    );
    Some(Item {
        sql: with_ctes(
            &[("ranked", "Number the rows of each group", body)],
            &format!("SELECT {l_}, {c_}, {m_} FROM ranked WHERE rn <= {n} ORDER BY {c_}, rn"),
            false,
        ),
        asks: vec![
            format!("for each {cw}, the top {n} {pl} by {mw}, with their {lw} and {mw}"),
            format!("the {n} highest-{mw} {pl} in every {cw}, giving {lw}, {cw} and {mw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("For every {cw}, I want the top {n} by {mw}."),
            format!("Show {lw}, {cw} and {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("In a CTE, number rows with ROW_NUMBER() partitioned by `{c_}` ordered by `{m_}` DESC."),
            format!("Keep rows with rn <= {n}."),
        ],
    })
}

fn c_cte_totals(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_measure, has_key_and_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let n = rng.random_range(3..=10);
    let (fk, pk, m_) = (
        ctx.col(e.child, e.child_col),
        ctx.col(e.parent, e.parent_col),
        ctx.col(e.child, m),
    );
    let (cpl, ppl, plw, mw) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, m),
    );
    let body = format!(
        "SELECT {fk}, SUM({m_}) AS total_{m_} FROM {} GROUP BY {fk}",
        ctx.table(e.child)
    );
    Some(Item {
        sql: with_ctes(
            &[("totals", "Total per parent", body)],
            &format!(
                "SELECT T1.{}, T2.total_{m_} FROM {} AS T1 INNER JOIN totals AS T2 ON T1.{pk} = T2.{fk} ORDER BY T2.total_{m_} DESC LIMIT {n}",
                ctx.col(e.parent, plabel),
                ctx.table(e.parent)
            ),
            false,
        ),
        asks: vec![
            format!("the {n} {ppl} with the largest total {mw} over their {cpl}, with their {plw} and that total"),
            format!("the {plw} and summed {mw} of {cpl} for the top {n} {ppl} by that sum"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Sum up the {mw} of the {cpl} of each one."),
            format!("The top {n}, with the {plw} and the total."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("A CTE sums `{m_}` per `{fk}` in `{}`.", ctx.table(e.child)),
            format!("Join it to `{}` and keep the {n} largest totals.", ctx.table(e.parent)),
        ],
    })
}

fn c_correlated(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r) && has_measure(r))?;
    let r = &ctx.roles[t];
    let (label, c, m) = (r.label?, any(rng, &r.categories)?, any(rng, &r.measures)?);
    let (l_, c_, m_, t_) = (
        ctx.col(t, label),
        ctx.col(t, c),
        ctx.col(t, m),
        ctx.table(t),
    );
    let (pl, cw, mw, lw) = (
        ctx.plural(t),
        ctx.words(t, c),
        ctx.words(t, m),
        ctx.words(t, label),
    );
    Some(Item {
        sql: format!(
            "SELECT T1.{l_}, T1.{c_}, T1.{m_} FROM {t_} AS T1 WHERE T1.{m_} > (SELECT AVG(T2.{m_}) FROM {t_} AS T2 WHERE T2.{c_} = T1.{c_});"
        ),
        asks: vec![
            format!("the {lw}, {cw} and {mw} of {pl} whose {mw} is above the average of their own {cw}"),
            format!("{pl} that beat the average {mw} of their {cw}, with {lw}, {cw} and {mw}"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Compare each one's {mw} with the average of its {cw}."),
            format!("Keep those above it and show {lw}, {cw} and {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("A correlated subquery computes AVG(`{m_}`) for the row's own `{c_}`."),
            "Keep rows above their group's average.".to_string(),
        ],
    })
}

fn c_exists(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_measure, has_key_and_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let x = ctx.threshold(rng, e.child, m);
    let (cpl, ppl, plw, mw, x_q) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, m),
        q_lit(&x),
    );
    Some(Item {
        sql: format!(
            "SELECT T1.{} FROM {} AS T1 WHERE EXISTS (SELECT 1 FROM {} AS T2 WHERE T2.{} = T1.{} AND T2.{} > {});",
            ctx.col(e.parent, plabel),
            ctx.table(e.parent),
            ctx.table(e.child),
            ctx.col(e.child, e.child_col),
            ctx.col(e.parent, e.parent_col),
            ctx.col(e.child, m),
            sql_lit(&x)
        ),
        asks: vec![
            format!("the {plw} of {ppl} for which some of their {cpl} have a {mw} above {x_q}"),
            format!("the {plw} of every one of the {ppl} having at least one of the {cpl} with {mw} over {x_q}"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Those with at least one of their {cpl} having a {mw} above {x_q}."),
            format!("Just the {plw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("For each row of `{}`, EXISTS checks `{}` for a linked row with `{}` > {}.", ctx.table(e.parent), ctx.table(e.child), ctx.col(e.child, m), sql_lit(&x)),
        ],
    })
}

fn c_running_total(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_date(r) && has_measure(r) && has_category(r))?;
    let r = &ctx.roles[t];
    let (d, m, c) = (
        any(rng, &r.dates)?,
        any(rng, &r.measures)?,
        any(rng, &r.categories)?,
    );
    let v = ctx.value(rng, t, c);
    let (d_, m_) = (ctx.col(t, d), ctx.col(t, m));
    let (pl, dw, mw, cw, v_q) = (
        ctx.plural(t),
        ctx.words(t, d),
        ctx.words(t, m),
        ctx.words(t, c),
        q_lit(&v),
    );
    Some(Item {
        sql: format!(
            "SELECT {d_}, {m_}, SUM({m_}) OVER (ORDER BY {d_}) AS running_total FROM {} WHERE {} = {} ORDER BY {d_};",
            ctx.table(t),
            ctx.col(t, c),
            sql_lit(&v)
        ),
        asks: vec![
            format!("the running total of {mw} over time (by {dw}) for {pl} whose {cw} is {v_q}"),
            format!("each {dw} and {mw} of {pl} with {cw} {v_q}, plus the cumulative {mw} in {dw} order"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Only those with {cw} {v_q}."),
            format!("I want the {mw} accumulated over the {dw}, as a running total."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("Filter on `{}` = {}.", ctx.col(t, c), sql_lit(&v)),
            format!("SUM(`{m_}`) OVER (ORDER BY `{d_}`) gives the running total."),
        ],
    })
}

fn c_max_in_group(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_category(r) && has_measure(r))?;
    let r = &ctx.roles[t];
    let (label, c, m) = (r.label?, any(rng, &r.categories)?, any(rng, &r.measures)?);
    let v = ctx.value(rng, t, c);
    let (f, most) = if rng.random_bool(0.6) {
        ("MAX", "highest")
    } else {
        ("MIN", "lowest")
    };
    let (l_, c_, m_, t_, v_) = (
        ctx.col(t, label),
        ctx.col(t, c),
        ctx.col(t, m),
        ctx.table(t),
        sql_lit(&v),
    );
    let (sg, pl, cw, mw, lw, v_q) = (
        ctx.singular(t),
        ctx.plural(t),
        ctx.words(t, c),
        ctx.words(t, m),
        ctx.words(t, label),
        q_lit(&v),
    );
    Some(Item {
        sql: format!(
            "SELECT {l_}, {m_} FROM {t_} WHERE {c_} = {v_} AND {m_} = (SELECT {f}({m_}) FROM {t_} WHERE {c_} = {v_});"
        ),
        asks: vec![
            format!("the {lw} and {mw} of the {sg} with the {most} {mw} among {pl} whose {cw} is {v_q}"),
            format!("which {sg} with {cw} {v_q} has the {most} {mw}, with its {lw} and {mw}"),
        ],
        plural: false,
        subject: pl.to_string(),
        turns: vec![
            format!("Among those with {cw} {v_q}, the one with the {most} {mw}."),
            format!("Give me its {lw} and {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("A subquery finds {f}(`{m_}`) among rows with `{c_}` = {v_}."),
            "The outer query returns the rows that reach it.".to_string(),
        ],
    })
}

fn c_concept_parents(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let k = pick_concept(ctx, rng, |t| {
        ctx.edges
            .iter()
            .any(|e| e.child == t && has_key_and_label(&ctx.roles[e.parent]))
    })?;
    let edges: Vec<Edge> = ctx
        .edges
        .iter()
        .filter(|e| e.child == k.table && has_key_and_label(&ctx.roles[e.parent]))
        .copied()
        .collect();
    let e = any(rng, &edges)?;
    let plabel = ctx.roles[e.parent].label?;
    let (ppl, plw) = (ctx.parent_plural(e), ctx.words(e.parent, plabel));
    let fk = ctx.col(e.child, e.child_col);
    let body = format!(
        "SELECT {fk}, COUNT(*) AS n FROM {} WHERE {} GROUP BY {fk}",
        ctx.table(e.child),
        k.condition("")
    );
    Some(Item {
        sql: with_ctes(
            &[("flagged", "Concept rows per parent", body)],
            &format!(
                "SELECT T1.{}, T2.n FROM {} AS T1 INNER JOIN flagged AS T2 ON T1.{} = T2.{fk} ORDER BY T2.n DESC",
                ctx.col(e.parent, plabel),
                ctx.table(e.parent),
                ctx.col(e.parent, e.parent_col)
            ),
            false,
        ),
        asks: vec![
            format!("the {plw} of {ppl} with how many {} each has, most first", k.term),
            format!("for each of the {ppl} with any {}, its {plw} and the number of them, in decreasing order", k.term),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("I'm interested in their {}.", k.term),
            format!("Count them per {} and show the {plw}, most first.", ctx.parent_singular(e)),
        ],
        knowledge: k.explanation.to_string(),
        schema_notes: String::new(),
        steps: vec![
            format!("By the external knowledge, {}.", k.explanation),
            format!("A CTE counts matching `{}` rows per `{fk}`.", ctx.table(e.child)),
            format!("Join to `{}` for the {plw} and sort by the count.", ctx.table(e.parent)),
        ],
    })
}

// ---------------------------------------------------------------- Highly Complex

fn h_parent_stats_above_average(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_measure, has_key_and_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let (fk, pk, m_) = (
        ctx.col(e.child, e.child_col),
        ctx.col(e.parent, e.parent_col),
        ctx.col(e.child, m),
    );
    let (cpl, ppl, plw, mw) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, m),
    );
    Some(Item {
        sql: with_ctes(
            &[
                ("stats", "Per-parent count and average", format!("SELECT {fk}, COUNT(*) AS n, AVG({m_}) AS avg_{m_} FROM {} GROUP BY {fk}", ctx.table(e.child))),
                ("overall", "Average of the per-parent averages", format!("SELECT AVG(avg_{m_}) AS overall_avg FROM stats")),
            ],
            &format!(
                "SELECT T1.{}, T2.n, T2.avg_{m_} FROM {} AS T1 INNER JOIN stats AS T2 ON T1.{pk} = T2.{fk} WHERE T2.avg_{m_} > (SELECT overall_avg FROM overall) ORDER BY T2.avg_{m_} DESC",
                ctx.col(e.parent, plabel),
                ctx.table(e.parent)
            ),
            true,
        ),
        asks: vec![
            format!("the {plw} of {ppl} whose {cpl} have an average {mw} above the typical {} average, with the number of {cpl} and that average", ctx.parent_singular(e)),
            format!("{ppl} whose average {mw} of {cpl} beats the mean of all such averages, listing {plw}, count and average, best first"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("For each one, count its {cpl} and average their {mw}."),
            format!("Keep those whose average beats the average over all {ppl}."),
            format!("Show the {plw}, the count and the average, highest first."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("CTE `stats`: per `{fk}`, COUNT(*) and AVG(`{m_}`)."),
            "CTE `overall`: the average of those averages.".to_string(),
            format!("Join `stats` to `{}`, keep averages above `overall`, sort descending.", ctx.table(e.parent)),
        ],
    })
}

fn h_union_extremes(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_label(r) && has_measure(r))?;
    let (label, m) = (ctx.roles[t].label?, any(rng, &ctx.roles[t].measures)?);
    let (l_, m_, t_) = (ctx.col(t, label), ctx.col(t, m), ctx.table(t));
    let (sg, mw, lw) = (ctx.singular(t), ctx.words(t, m), ctx.words(t, label));
    Some(Item {
        sql: format!(
            "SELECT 'highest' AS position, {l_}, {m_} FROM (SELECT {l_}, {m_} FROM {t_} ORDER BY {m_} DESC LIMIT 1)\nUNION ALL\nSELECT 'lowest' AS position, {l_}, {m_} FROM (SELECT {l_}, {m_} FROM {t_} ORDER BY {m_} ASC LIMIT 1);"
        ),
        asks: vec![
            format!("the {sg} with the highest {mw} and the one with the lowest, each with its {lw} and {mw}"),
            format!("both extremes of {mw} among {}: the top and the bottom {sg}, labelled, with {lw} and {mw}", ctx.plural(t)),
        ],
        plural: true,
        subject: ctx.plural(t).to_string(),
        turns: vec![
            format!("I want to compare the extremes of {mw}."),
            format!("The one with the highest and the one with the lowest {mw}, with their {lw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("One subquery takes the row with the largest `{m_}`, another the smallest."),
            "Tag each with its position and combine them with UNION ALL.".to_string(),
        ],
    })
}

fn h_share_of_total(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_category(r) && has_measure(r))?;
    let (c, m) = (
        any(rng, &ctx.roles[t].categories)?,
        any(rng, &ctx.roles[t].measures)?,
    );
    let (c_, m_) = (ctx.col(t, c), ctx.col(t, m));
    let (pl, cw, mw) = (ctx.plural(t), ctx.words(t, c), ctx.words(t, m));
    Some(Item {
        sql: with_ctes(
            &[
                ("per_group", "Total per group", format!("SELECT {c_}, SUM({m_}) AS group_total FROM {} GROUP BY {c_}", ctx.table(t))),
                ("grand", "Grand total", "SELECT SUM(group_total) AS grand_total FROM per_group".to_string()),
            ],
            &format!("SELECT T1.{c_}, T1.group_total, ROUND(100.0 * T1.group_total / T2.grand_total, 2) AS share_pct FROM per_group AS T1 CROSS JOIN grand AS T2 ORDER BY share_pct DESC"),
            true,
        ),
        asks: vec![
            format!("for each {cw} of {pl}, the total {mw} and its percentage share of the overall {mw}, largest share first"),
            format!("how the total {mw} of {pl} splits across {cw}, as sums and percentages, biggest first"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Total the {mw} per {cw}."),
            "And show each group's share of the grand total in percent, largest first.".to_string(),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("CTE `per_group` sums `{m_}` per `{c_}`."),
            "CTE `grand` sums the group totals.".to_string(),
            "Divide each total by the grand total, times 100, rounded to 2 decimals.".to_string(),
        ],
    })
}

fn h_monthly_change(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, |r| has_date(r) && has_measure(r))?;
    let (d, m) = (
        any(rng, &ctx.roles[t].dates)?,
        any(rng, &ctx.roles[t].measures)?,
    );
    let (d_, m_) = (ctx.col(t, d), ctx.col(t, m));
    let (pl, dw, mw) = (ctx.plural(t), ctx.words(t, d), ctx.words(t, m));
    Some(Item {
        sql: with_ctes(
            &[("monthly", "Total per month", format!("SELECT strftime('%Y-%m', {d_}) AS month, SUM({m_}) AS monthly_total FROM {} GROUP BY month", ctx.table(t)))],
            "SELECT month, monthly_total, monthly_total - LAG(monthly_total) OVER (ORDER BY month) AS change_from_previous FROM monthly ORDER BY month",
            true,
        ),
        asks: vec![
            format!("the total {mw} of {pl} per month of {dw}, with the change from the previous month"),
            format!("a month-by-month trend of summed {mw} over {pl} (by {dw}), including the difference to the month before"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Sum the {mw} for each month, using the {dw}."),
            "Also show how much it changed from the previous month.".to_string(),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("CTE `monthly` groups by strftime('%Y-%m', `{d_}`) and sums `{m_}`."),
            "LAG() over the months gives the previous total; subtract it.".to_string(),
        ],
    })
}

fn h_top_children_per_parent(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, |r| has_label(r) && has_measure(r), has_label)?;
    let (clabel, plabel) = (ctx.roles[e.child].label?, ctx.roles[e.parent].label?);
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let n = rng.random_range(1..=3);
    let (cl_, pl_, m_) = (
        ctx.col(e.child, clabel),
        ctx.col(e.parent, plabel),
        ctx.col(e.child, m),
    );
    let (cpl, ppl, psg, mw) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.parent_singular(e),
        ctx.words(e.child, m),
    );
    let (clw, plw) = (ctx.words(e.child, clabel), ctx.words(e.parent, plabel));
    // The parent label and child label may share a column name (e.g. city).
    let (parent_as, child_as) = if cl_ == pl_ {
        (format!(" AS parent_{pl_}"), format!(" AS child_{cl_}"))
    } else {
        (String::new(), String::new())
    };
    let (parent_out, child_out) = if cl_ == pl_ {
        (format!("parent_{pl_}"), format!("child_{cl_}"))
    } else {
        (pl_.to_string(), cl_.to_string())
    };
    Some(Item {
        sql: with_ctes(
            &[(
                "ranked",
                "Rank children within each parent",
                format!(
                    "SELECT T2.{pl_}{parent_as}, T1.{cl_}{child_as}, T1.{m_}, ROW_NUMBER() OVER (PARTITION BY T1.{} ORDER BY T1.{m_} DESC) AS rn {}",
                    ctx.col(e.child, e.child_col),
                    join(ctx, e)
                ),
            )],
            &format!("SELECT {parent_out}, {child_out}, {m_} FROM ranked WHERE rn <= {n} ORDER BY {parent_out}, rn"),
            true,
        ),
        asks: vec![
            format!("for every {psg}, its top {n} {cpl} by {mw}, with the {psg} {plw}, the {clw} and the {mw}"),
            format!("the {n} highest-{mw} {cpl} of each of the {ppl}, showing {plw}, {clw} and {mw}"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("For each one I want its {cpl} with the highest {mw}."),
            format!("The top {n} per {psg}."),
            format!("Show the {psg} {plw}, the {clw} and the {mw}."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!("ROW_NUMBER() partitioned by the parent key ranks rows by `{m_}` DESC."),
            format!("Keep rn <= {n}."),
        ],
    })
}

fn h_union_parents(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, |_| true, |r| has_key_and_label(r) && has_category(r))?;
    let plabel = ctx.roles[e.parent].label?;
    let c = any(rng, &ctx.roles[e.parent].categories)?;
    let v = ctx.value(rng, e.parent, c);
    let per_parent = ctx.data[e.child].rows.len() / ctx.data[e.parent].rows.len().max(1);
    let n = (per_parent + rng.random_range(1..=3)).max(2);
    let (fk, pk, pl_) = (
        ctx.col(e.child, e.child_col),
        ctx.col(e.parent, e.parent_col),
        ctx.col(e.parent, plabel),
    );
    let (cpl, ppl, plw, cw, v_q) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.parent, c),
        q_lit(&v),
    );
    Some(Item {
        sql: with_ctes(
            &[("busy", "Parents with many children", format!("SELECT {fk} FROM {} GROUP BY {fk} HAVING COUNT(*) > {n}", ctx.table(e.child)))],
            &format!(
                "SELECT T1.{pl_} FROM {p_} AS T1 WHERE T1.{} = {}\nUNION\nSELECT T1.{pl_} FROM {p_} AS T1 INNER JOIN busy AS T2 ON T1.{pk} = T2.{fk}\nORDER BY {pl_}",
                ctx.col(e.parent, c),
                sql_lit(&v),
                p_ = ctx.table(e.parent)
            ),
            true,
        ),
        asks: vec![
            format!("the {plw} of {ppl} that either have {cw} {v_q} or have more than {n} {cpl}, without duplicates, alphabetically"),
            format!("the combined, de-duplicated list of {plw} of {ppl} whose {cw} is {v_q} together with those having over {n} {cpl}"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Those whose {cw} is {v_q}."),
            format!("Plus any that have more than {n} {cpl}."),
            format!("Just the {plw}, no repeats, sorted."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("CTE `busy` keeps `{fk}` values with more than {n} rows in `{}`.", ctx.table(e.child)),
            format!("UNION the {ppl} with `{}` = {} and those in `busy`; UNION removes duplicates.", ctx.col(e.parent, c), sql_lit(&v)),
        ],
    })
}

fn h_quartiles(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let t = ctx.pick_table(rng, has_measure)?;
    let m = any(rng, &ctx.roles[t].measures)?;
    let m_ = ctx.col(t, m);
    let (pl, mw) = (ctx.plural(t), ctx.words(t, m));
    let buckets = *[4, 5, 10].choose(rng)?;
    let name = match buckets {
        4 => "quartile",
        5 => "quintile",
        _ => "decile",
    };
    Some(Item {
        sql: with_ctes(
            &[("scored", "Split the rows into buckets", format!("SELECT {m_}, NTILE({buckets}) OVER (ORDER BY {m_} DESC) AS {name} FROM {}", ctx.table(t)))],
            &format!("SELECT {name}, COUNT(*) AS n, ROUND(AVG({m_}), 2) AS avg_{m_}, MIN({m_}) AS min_{m_}, MAX({m_}) AS max_{m_} FROM scored GROUP BY {name} ORDER BY {name}"),
            true,
        ),
        asks: vec![
            format!("a {name} breakdown of {pl} by {mw} (highest first): for each {name} the count, average, minimum and maximum {mw}"),
            format!("the {pl} split into {buckets} {name}s of {mw}, with size, average, min and max of each"),
        ],
        plural: true,
        subject: pl.to_string(),
        turns: vec![
            format!("Split them into {buckets} groups by {mw}, highest first."),
            "For each group, the count, the average, the minimum and the maximum.".to_string(),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("NTILE({buckets}) OVER (ORDER BY `{m_}` DESC) assigns each row to a {name}."),
            "Group by the bucket and aggregate.".to_string(),
        ],
    })
}

fn h_dense_rank_groups(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let e = ctx.pick_edge(rng, has_measure, has_label)?;
    let plabel = ctx.roles[e.parent].label?;
    let m = any(rng, &ctx.roles[e.child].measures)?;
    let n = rng.random_range(3..=5);
    let (pl_, m_, fk) = (
        ctx.col(e.parent, plabel),
        ctx.col(e.child, m),
        ctx.col(e.child, e.child_col),
    );
    let (cpl, ppl, plw, mw) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
        ctx.words(e.child, m),
    );
    Some(Item {
        sql: with_ctes(
            &[
                ("group_avg", "Average per parent", format!("SELECT T2.{pl_}, AVG(T1.{m_}) AS avg_{m_} {} GROUP BY T1.{fk}", join(ctx, e))),
                ("ranked", "Dense rank of the averages", format!("SELECT {pl_}, avg_{m_}, DENSE_RANK() OVER (ORDER BY avg_{m_} DESC) AS rnk FROM group_avg")),
            ],
            &format!("SELECT {pl_}, avg_{m_}, rnk FROM ranked WHERE rnk <= {n} ORDER BY rnk"),
            true,
        ),
        asks: vec![
            format!("the {ppl} ranked in the top {n} by average {mw} of their {cpl}, with {plw}, the average and the rank"),
            format!("the top {n} ranks (dense ranking) of {ppl} by mean {mw} of {cpl}, showing the {plw}, average and rank"),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("Average the {mw} of their {cpl}."),
            format!("Rank them by that average and keep the top {n} ranks."),
            format!("Show the {plw}, the average and the rank."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            join_step(ctx, e),
            format!("CTE `group_avg` averages T1.`{m_}` per parent."),
            format!("DENSE_RANK() orders the averages; keep rank <= {n}."),
        ],
    })
}

fn h_chain_totals(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    // grandchild -> child -> parent
    let chains: Vec<(Edge, Edge)> = ctx
        .edges
        .iter()
        .filter(|g| has_measure(&ctx.roles[g.child]))
        .flat_map(|g| {
            ctx.edges
                .iter()
                .filter(move |c| {
                    c.child == g.parent
                        && ctx.roles[c.child].key == Some(g.parent_col)
                        && has_label(&ctx.roles[c.parent])
                })
                .map(move |c| (*g, *c))
        })
        .collect();
    let (g, c) = any(rng, &chains)?;
    let plabel = ctx.roles[c.parent].label?;
    let m = any(rng, &ctx.roles[g.child].measures)?;
    let n = rng.random_range(3..=10);
    let (gfk, m_) = (ctx.col(g.child, g.child_col), ctx.col(g.child, m));
    let (gpl, ppl, plw, mw) = (
        ctx.plural(g.child),
        ctx.parent_plural(c),
        ctx.words(c.parent, plabel),
        ctx.words(g.child, m),
    );
    Some(Item {
        sql: with_ctes(
            &[
                ("per_child", "Total per middle-level row", format!("SELECT {gfk}, SUM({m_}) AS total_{m_} FROM {} GROUP BY {gfk}", ctx.table(g.child))),
                ("per_parent", "Roll the totals up one level", format!(
                    "SELECT T1.{cfk}, SUM(T2.total_{m_}) AS total_{m_} FROM {} AS T1 INNER JOIN per_child AS T2 ON T1.{} = T2.{gfk} GROUP BY T1.{cfk}",
                    ctx.table(c.child),
                    ctx.col(c.child, g.parent_col),
                    cfk = ctx.col(c.child, c.child_col)
                )),
            ],
            &format!(
                "SELECT T1.{}, T2.total_{m_} FROM {} AS T1 INNER JOIN per_parent AS T2 ON T1.{} = T2.{} ORDER BY T2.total_{m_} DESC LIMIT {n}",
                ctx.col(c.parent, plabel),
                ctx.table(c.parent),
                ctx.col(c.parent, c.parent_col),
                ctx.col(c.child, c.child_col)
            ),
            true,
        ),
        asks: vec![
            format!("the {n} {ppl} with the largest total {mw} of {gpl} (through their {}), with the {plw} and the total", ctx.plural(c.child)),
            format!("the top {n} {ppl} by summed {mw} of all their {gpl}, via {}, showing {plw} and total", ctx.plural(c.child)),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("I want the total {mw} of {gpl}, rolled up through {} to each of the {ppl}.", ctx.plural(c.child)),
            format!("Show the top {n} with their {plw} and the total."),
        ],
        knowledge: String::new(),
        schema_notes: String::new(),
        steps: vec![
            format!("CTE `per_child` sums `{m_}` of `{}` per `{gfk}`.", ctx.table(g.child)),
            format!("CTE `per_parent` joins those totals to `{}` and sums per `{}`.", ctx.table(c.child), ctx.col(c.child, c.child_col)),
            format!("Join to `{}` for the {plw}, sort and keep {n}.", ctx.table(c.parent)),
        ],
    })
}

fn h_concept_ranking(ctx: &DbContext, rng: &mut ChaCha8Rng) -> Option<Item> {
    let k = pick_concept(ctx, rng, |t| {
        ctx.edges
            .iter()
            .any(|e| e.child == t && has_key_and_label(&ctx.roles[e.parent]))
    })?;
    let mut edges: Vec<Edge> = ctx
        .edges
        .iter()
        .filter(|e| e.child == k.table && has_key_and_label(&ctx.roles[e.parent]))
        .copied()
        .collect();
    edges.shuffle(rng);
    let e = *edges.first()?;
    let plabel = ctx.roles[e.parent].label?;
    let n = rng.random_range(3..=5);
    let (fk, pk, pl_) = (
        ctx.col(e.child, e.child_col),
        ctx.col(e.parent, e.parent_col),
        ctx.col(e.parent, plabel),
    );
    let (cpl, ppl, plw) = (
        ctx.plural(e.child),
        ctx.parent_plural(e),
        ctx.words(e.parent, plabel),
    );
    Some(Item {
        sql: with_ctes(
            &[
                ("flagged", "Matching rows per parent", format!("SELECT {fk}, COUNT(*) AS flagged_count FROM {} WHERE {} GROUP BY {fk}", ctx.table(e.child), k.condition(""))),
                ("totals", "All rows per parent", format!("SELECT {fk}, COUNT(*) AS total_count FROM {} GROUP BY {fk}", ctx.table(e.child))),
                ("ratios", "Share of matching rows", format!("SELECT T1.{fk}, T1.flagged_count, ROUND(100.0 * T1.flagged_count / T2.total_count, 2) AS flagged_pct FROM flagged AS T1 INNER JOIN totals AS T2 ON T1.{fk} = T2.{fk}")),
            ],
            &format!(
                "SELECT T1.{pl_}, T2.flagged_count, T2.flagged_pct FROM {} AS T1 INNER JOIN ratios AS T2 ON T1.{pk} = T2.{fk} ORDER BY T2.flagged_pct DESC, T2.flagged_count DESC LIMIT {n}",
                ctx.table(e.parent)
            ),
            true,
        ),
        asks: vec![
            format!("the {n} {ppl} with the highest share of {} among their {cpl}, with the {plw}, the count and the percentage", k.term),
            format!("which {n} {ppl} have proportionally the most {}, giving {plw}, how many and what percent of their {cpl}", k.term),
        ],
        plural: true,
        subject: ppl.to_string(),
        turns: vec![
            format!("For each, count their {} and all their {cpl}.", k.term),
            "Compute the percentage.".to_string(),
            format!("Show the top {n} by percentage with the {plw}."),
        ],
        knowledge: k.explanation.to_string(),
        schema_notes: String::new(),
        steps: vec![
            format!("By the external knowledge, {}.", k.explanation),
            format!("CTEs count matching and all `{}` rows per `{fk}`, then their ratio.", ctx.table(e.child)),
            format!("Join to `{}` and keep the {n} highest percentages.", ctx.table(e.parent)),
        ],
    })
}
