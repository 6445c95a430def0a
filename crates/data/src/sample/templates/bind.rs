//! The named parts templates are made of: binders, which pick a table, a
//! foreign-key edge, a concept or a chain of two edges whose tables have
//! columns of the roles asked for, and draws, which add values from the
//! rows, numbers and choices. Both fill placeholders; each also says,
//! without a database, which placeholders it provides, so that the template
//! file is checked when it is loaded.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::IndexedRandom;
use rand::Rng;
use rusqlite::types::Value;
use serde::Deserialize;

use super::{placeholders, Choice};
use crate::sample::context::{nice, q_lit, sql_lit, DbContext, Edge, TableRoles};

/// Why a template gave no item.
pub(crate) enum Miss {
    /// The database has nothing the binder or a draw needs: try another.
    NoFit,
    /// The template asks for something it never bound; the load-time check
    /// should have refused it.
    Bug(String),
}

fn fit<T>(found: Option<T>) -> Result<T, Miss> {
    found.ok_or(Miss::NoFit)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Label,
    Category,
    Measure,
    Date,
    Key,
    LabelOrMeasure,
    /// A measure, category or date column not bound before it.
    Extra,
}

/// A column a binder binds: its kind, the placeholder it fills (`extra2`)
/// and whether the table may lack it.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Role {
    kind: Kind,
    slot: String,
    optional: bool,
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let (slot, optional) = match text.strip_suffix('?') {
            Some(slot) => (slot, true),
            None => (text.as_str(), false),
        };
        let kind = match slot.trim_end_matches(|c: char| c.is_ascii_digit()) {
            "label" => Kind::Label,
            "category" => Kind::Category,
            "measure" => Kind::Measure,
            "date" => Kind::Date,
            "key" => Kind::Key,
            "label_or_measure" => Kind::LabelOrMeasure,
            "extra" => Kind::Extra,
            _ => {
                return Err(format!(
                    "unknown role `{text}` (expected label, category, measure, date, key, \
                     label_or_measure or extra, optionally with a digit and a final `?`)"
                ))
            }
        };
        Ok(Role {
            kind,
            slot: slot.to_string(),
            optional,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Bind {
    Table(Vec<Role>),
    Edge(EdgeRoles),
    Concept(Vec<Role>),
    /// A concept on the child table of an edge.
    ConceptEdge(EdgeRoles),
    /// grand -> mid -> parent, where mid's key is what grand refers to.
    Chain(ChainRoles),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EdgeRoles {
    #[serde(default)]
    child: Vec<Role>,
    #[serde(default)]
    parent: Vec<Role>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainRoles {
    #[serde(default)]
    grand: Vec<Role>,
    #[serde(default)]
    parent: Vec<Role>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Draw {
    Value(String),
    Values(String),
    Threshold(String),
    Mean(String),
    TotalPerParent(String),
    Range(String),
    Number([u32; 2]),
    MoreChildrenThanUsual,
    Choice(String),
    Show(Show),
    Like(String),
    ByCount(ByCount),
    LabelAliases,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Show {
    cols: Vec<String>,
    #[serde(default)]
    alias: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ByCount {
    one: String,
    many: String,
    #[serde(rename = "as")]
    slot: String,
}

/// What a template's binder and draws provide, known without a database.
#[derive(Default)]
pub(crate) struct Provided {
    pub slots: BTreeSet<String>,
    /// Column placeholders every instance binds.
    columns: BTreeSet<String>,
    /// Column placeholders bound only where the table has one (`show` only).
    optional: BTreeSet<String>,
    edge: bool,
}

impl Provided {
    fn add<S: AsRef<str>>(&mut self, names: &[S]) {
        self.slots
            .extend(names.iter().map(|n| n.as_ref().to_string()));
    }

    fn table(&mut self, prefix: &str) {
        self.add(&["table", "plural", "singular"].map(|s| format!("{prefix}{s}")));
    }

    fn roles(&mut self, prefix: &str, roles: &[Role]) {
        for role in roles {
            let name = format!("{prefix}{}", role.slot);
            if role.optional {
                self.optional.insert(name);
            } else {
                self.add(&[format!("{name}_w")]);
                self.slots.insert(name.clone());
                self.columns.insert(name);
            }
        }
    }

    fn edge(&mut self, roles: &EdgeRoles) {
        self.table("child.");
        self.table("parent.");
        self.add(&["fk", "pk", "join", "join_step"]);
        self.roles("child.", &roles.child);
        self.roles("parent.", &roles.parent);
        self.edge = true;
    }

    fn concept(&mut self) {
        self.add(&["term", "explanation", "cond", "cond_t1"]);
    }

    fn column(&self, draw: &str, name: &str) -> Result<(), String> {
        if self.columns.contains(name) {
            Ok(())
        } else {
            Err(format!(
                "draw `{draw}` names column `{name}`, which the binder does not always bind"
            ))
        }
    }
}

impl Bind {
    pub fn provides(&self) -> Provided {
        let mut p = Provided::default();
        match self {
            Bind::Table(roles) => {
                p.table("");
                p.roles("", roles);
            }
            Bind::Edge(roles) => p.edge(roles),
            Bind::Concept(roles) => {
                p.table("");
                p.roles("", roles);
                p.concept();
            }
            Bind::ConceptEdge(roles) => {
                p.edge(roles);
                p.concept();
            }
            Bind::Chain(roles) => {
                for prefix in ["grand.", "mid.", "parent."] {
                    p.table(prefix);
                }
                p.add(&["grand_fk", "mid_key", "mid_fk", "pk"]);
                p.roles("grand.", &roles.grand);
                p.roles("parent.", &roles.parent);
            }
        }
        p
    }

    pub fn bind(&self, ctx: &DbContext, rng: &mut impl Rng) -> Result<Binding, Miss> {
        let mut b = Binding::default();
        match self {
            Bind::Table(roles) => {
                let t = fit(ctx.pick_table(rng, |r| fits(r, roles)))?;
                b.table(ctx, "", t);
                b.roles(ctx, rng, "", t, roles)?;
            }
            Bind::Edge(roles) => {
                let e =
                    fit(ctx.pick_edge(rng, |r| fits(r, &roles.child), |r| fits(r, &roles.parent)))?;
                b.edge(ctx, rng, e, roles)?;
            }
            Bind::Concept(roles) => {
                let k = fit(pick_concept(ctx, rng, |t| fits(&ctx.roles[t], roles)))?;
                b.table(ctx, "", k.table);
                b.roles(ctx, rng, "", k.table, roles)?;
                b.concept(&k);
            }
            Bind::ConceptEdge(roles) => {
                let fits_edge = |e: &Edge| {
                    fits(&ctx.roles[e.child], &roles.child)
                        && fits(&ctx.roles[e.parent], &roles.parent)
                };
                let k = fit(pick_concept(ctx, rng, |t| {
                    ctx.edges.iter().any(|e| e.child == t && fits_edge(e))
                }))?;
                let edges: Vec<Edge> = ctx
                    .edges
                    .iter()
                    .filter(|e| e.child == k.table && fits_edge(e))
                    .copied()
                    .collect();
                let e = *fit(edges.choose(rng))?;
                b.edge(ctx, rng, e, roles)?;
                b.concept(&k);
            }
            Bind::Chain(roles) => {
                let (g, c) = fit(pick_chain(ctx, rng, roles))?;
                b.table(ctx, "grand.", g.child);
                b.table(ctx, "mid.", c.child);
                b.parent_table(ctx, c);
                b.set("grand_fk", ctx.col(g.child, g.child_col));
                b.set("mid_key", ctx.col(c.child, g.parent_col));
                b.set("mid_fk", ctx.col(c.child, c.child_col));
                b.set("pk", ctx.col(c.parent, c.parent_col));
                b.roles(ctx, rng, "grand.", g.child, &roles.grand)?;
                b.roles(ctx, rng, "parent.", c.parent, &roles.parent)?;
            }
        }
        Ok(b)
    }
}

/// Whether a table has a column for every role that is not optional, the
/// extras counted against the measures, categories and dates left over.
fn fits(r: &TableRoles, roles: &[Role]) -> bool {
    let need = |kind: Kind| {
        roles
            .iter()
            .filter(|role| !role.optional && role.kind == kind)
            .count()
    };
    let typed = need(Kind::Category) + need(Kind::Measure) + need(Kind::Date);
    (need(Kind::Label) == 0 || r.label.is_some())
        && (need(Kind::Key) == 0 || r.key.is_some())
        && (need(Kind::LabelOrMeasure) == 0 || r.label.is_some() || !r.measures.is_empty())
        && r.categories.len() >= need(Kind::Category)
        && r.measures.len() >= need(Kind::Measure)
        && r.dates.len() >= need(Kind::Date)
        && r.categories.len() + r.measures.len() + r.dates.len() >= typed + need(Kind::Extra)
}

/// A column of the role that is not in `used`.
fn pick_column(rng: &mut impl Rng, r: &TableRoles, kind: Kind, used: &[usize]) -> Option<usize> {
    let mut any = |columns: &mut dyn Iterator<Item = &usize>| {
        let free: Vec<usize> = columns.copied().filter(|c| !used.contains(c)).collect();
        free.choose(rng).copied()
    };
    match kind {
        Kind::Label => r.label,
        Kind::Key => r.key,
        Kind::Category => any(&mut r.categories.iter()),
        Kind::Measure => any(&mut r.measures.iter()),
        Kind::Date => any(&mut r.dates.iter()),
        Kind::LabelOrMeasure => r.label.or_else(|| any(&mut r.measures.iter())),
        Kind::Extra => any(&mut r.measures.iter().chain(&r.categories).chain(&r.dates)),
    }
}

#[derive(Clone, Copy)]
struct Column {
    table: usize,
    col: usize,
    kind: Kind,
}

/// The placeholders of one instance, and the columns behind them.
#[derive(Default)]
pub(crate) struct Binding {
    slots: BTreeMap<String, String>,
    columns: BTreeMap<String, Column>,
    edge: Option<Edge>,
}

impl Binding {
    fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.slots.insert(name.into(), value.into());
    }

    fn get(&self, name: &str) -> Result<&str, Miss> {
        self.slots
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| Miss::Bug(format!("placeholder `{{{name}}}` was never filled")))
    }

    fn column(&self, name: &str) -> Result<Column, Miss> {
        self.columns
            .get(name)
            .copied()
            .ok_or_else(|| Miss::Bug(format!("column `{name}` was never bound")))
    }

    /// The pattern with every `{name}` replaced, in one pass: a value that
    /// holds braces is not expanded again.
    pub fn fill(&self, pattern: &str) -> Result<String, Miss> {
        let mut out = String::with_capacity(pattern.len() + 64);
        let mut rest = pattern;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| Miss::Bug(format!("an unclosed `{{` in \"{pattern}\"")))?;
            out.push_str(self.get(&after[..close])?);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn table(&mut self, ctx: &DbContext, prefix: &str, t: usize) {
        self.set(format!("{prefix}table"), ctx.table(t));
        self.set(format!("{prefix}plural"), ctx.plural(t));
        self.set(format!("{prefix}singular"), ctx.singular(t));
    }

    /// The parent of an edge as `parent.`, named with the edge's role
    /// where the foreign key has one.
    fn parent_table(&mut self, ctx: &DbContext, e: Edge) {
        self.table(ctx, "parent.", e.parent);
        self.set("parent.plural", ctx.parent_plural(e));
        self.set("parent.singular", ctx.parent_singular(e));
    }

    fn roles(
        &mut self,
        ctx: &DbContext,
        rng: &mut impl Rng,
        prefix: &str,
        t: usize,
        roles: &[Role],
    ) -> Result<(), Miss> {
        let mut used = Vec::new();
        for role in roles {
            match pick_column(rng, &ctx.roles[t], role.kind, &used) {
                Some(c) => {
                    used.push(c);
                    let name = format!("{prefix}{}", role.slot);
                    self.set(format!("{name}_w"), ctx.words(t, c));
                    self.set(name.clone(), ctx.col(t, c));
                    let column = Column {
                        table: t,
                        col: c,
                        kind: role.kind,
                    };
                    self.columns.insert(name, column);
                }
                None if role.optional => {}
                None => return Err(Miss::NoFit),
            }
        }
        Ok(())
    }

    fn edge(
        &mut self,
        ctx: &DbContext,
        rng: &mut impl Rng,
        e: Edge,
        roles: &EdgeRoles,
    ) -> Result<(), Miss> {
        self.table(ctx, "child.", e.child);
        self.parent_table(ctx, e);
        let (fk, pk) = (
            ctx.col(e.child, e.child_col),
            ctx.col(e.parent, e.parent_col),
        );
        let (child, parent) = (ctx.table(e.child), ctx.table(e.parent));
        self.set(
            "join",
            format!("FROM {child} AS T1 INNER JOIN {parent} AS T2 ON T1.{fk} = T2.{pk}"),
        );
        self.set(
            "join_step",
            format!("Join `{child}` (T1) with `{parent}` (T2) on T1.`{fk}` = T2.`{pk}`."),
        );
        self.set("fk", fk);
        self.set("pk", pk);
        self.edge = Some(e);
        self.roles(ctx, rng, "child.", e.child, &roles.child)?;
        self.roles(ctx, rng, "parent.", e.parent, &roles.parent)
    }

    fn concept(&mut self, k: &Concept) {
        self.set("term", k.term);
        self.set("explanation", k.explanation);
        self.set("cond", k.condition.replace("{a}", ""));
        self.set("cond_t1", k.condition.replace("{a}", "T1."));
    }
}

#[derive(Clone, Copy)]
struct Concept<'a> {
    term: &'a str,
    table: usize,
    explanation: &'a str,
    /// `{a}` before each column, where a table alias goes.
    condition: &'a str,
}

fn pick_concept<'a>(
    ctx: &DbContext<'a>,
    rng: &mut impl Rng,
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
    concepts.choose(rng).copied()
}

/// Two edges grand -> mid -> parent where grand refers to mid's own key.
fn pick_chain(ctx: &DbContext, rng: &mut impl Rng, roles: &ChainRoles) -> Option<(Edge, Edge)> {
    let chains: Vec<(Edge, Edge)> = ctx
        .edges
        .iter()
        .filter(|g| fits(&ctx.roles[g.child], &roles.grand))
        .flat_map(|g| {
            ctx.edges
                .iter()
                .filter(move |c| {
                    c.child == g.parent
                        && ctx.roles[c.child].key == Some(g.parent_col)
                        && fits(&ctx.roles[c.parent], &roles.parent)
                })
                .map(move |c| (*g, *c))
        })
        .collect();
    chains.choose(rng).copied()
}

/// "a", "a and b", "a, b and c".
fn in_words(words: &[String], last_joiner: &str) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {last_joiner} {last}", init.join(", ")),
    }
}

impl Draw {
    fn name(&self) -> &'static str {
        match self {
            Draw::Value(_) => "value",
            Draw::Values(_) => "values",
            Draw::Threshold(_) => "threshold",
            Draw::Mean(_) => "mean",
            Draw::TotalPerParent(_) => "total_per_parent",
            Draw::Range(_) => "range",
            Draw::Number(_) => "number",
            Draw::MoreChildrenThanUsual => "more_children_than_usual",
            Draw::Choice(_) => "choice",
            Draw::Show(_) => "show",
            Draw::Like(_) => "like",
            Draw::ByCount(_) => "by_count",
            Draw::LabelAliases => "label_aliases",
        }
    }

    /// Checks that the draw refers only to what is provided before it, and
    /// adds what it provides.
    pub fn check_and_provide(
        &self,
        p: &mut Provided,
        choices: &BTreeMap<String, Vec<Choice>>,
    ) -> Result<(), String> {
        let name = self.name();
        let needs_edge = |p: &Provided| {
            if p.edge {
                Ok(())
            } else {
                Err(format!("draw `{name}` needs an edge binder"))
            }
        };
        match self {
            Draw::Value(c) => {
                p.column(name, c)?;
                p.add(&[format!("{c}_v"), format!("{c}_q")]);
            }
            Draw::Values(c) => {
                p.column(name, c)?;
                p.add(&[format!("{c}_list"), format!("{c}_list_q")]);
            }
            Draw::Threshold(c) | Draw::Mean(c) => {
                p.column(name, c)?;
                p.add(&["x", "x_q"]);
            }
            Draw::TotalPerParent(c) => {
                needs_edge(p)?;
                p.column(name, c)?;
                if !c.starts_with("child.") {
                    return Err(format!("draw `{name}` needs a child column, not `{c}`"));
                }
                p.add(&["x", "x_q"]);
            }
            Draw::Range(c) => {
                p.column(name, c)?;
                p.add(&["low", "high", "low_q", "high_q"]);
            }
            Draw::Number([low, high]) => {
                if low > high {
                    return Err(format!("draw `number`: {low} is above {high}"));
                }
                p.add(&["n"]);
            }
            Draw::MoreChildrenThanUsual => {
                needs_edge(p)?;
                p.add(&["n"]);
            }
            Draw::Choice(choice) => {
                let options = choices.get(choice).ok_or_else(|| {
                    format!("draw `choice` names `{choice}`, which is not in `choices`")
                })?;
                if let Some(first) = options.first() {
                    p.add(&first.slots.keys().collect::<Vec<_>>());
                }
            }
            Draw::Show(show) => {
                if show.cols.is_empty() {
                    return Err("draw `show` has no columns".to_string());
                }
                let mut prefixes = BTreeSet::new();
                for col in &show.cols {
                    match col.strip_suffix('?') {
                        Some(optional) if p.optional.contains(optional) => {}
                        _ => p.column(name, col.trim_end_matches('?'))?,
                    }
                    prefixes.insert(col.rsplit_once('.').map_or("", |(prefix, _)| prefix));
                }
                if prefixes.len() > 1 {
                    return Err("draw `show` mixes columns of several tables".to_string());
                }
                p.add(&["shown", "shown_w", "shown_cols"]);
            }
            Draw::Like(c) => {
                p.column(name, c)?;
                p.add(&["pattern", "how"]);
            }
            Draw::ByCount(by) => {
                if !p.slots.contains("n") {
                    return Err("draw `by_count` needs `{n}` drawn before it".to_string());
                }
                for pattern in [&by.one, &by.many] {
                    for slot in placeholders(pattern)? {
                        if !p.slots.contains(slot) {
                            return Err(format!(
                                "placeholder `{{{slot}}}` in draw `by_count` is not provided before it"
                            ));
                        }
                    }
                }
                p.add(&[&by.slot]);
            }
            Draw::LabelAliases => {
                p.column(name, "child.label")?;
                p.column(name, "parent.label")?;
                p.add(&["parent_as", "child_as", "parent_out", "child_out"]);
            }
        }
        Ok(())
    }

    pub fn draw(
        &self,
        b: &mut Binding,
        choices: &BTreeMap<String, Vec<Choice>>,
        ctx: &DbContext,
        rng: &mut impl Rng,
    ) -> Result<(), Miss> {
        match self {
            Draw::Value(c) => {
                let col = b.column(c)?;
                let v = ctx.value(rng, col.table, col.col);
                b.set(format!("{c}_v"), sql_lit(&v));
                b.set(format!("{c}_q"), q_lit(&v));
            }
            Draw::Values(c) => {
                let col = b.column(c)?;
                let n = rng.random_range(2..=3);
                let values = ctx.distinct_values(rng, col.table, col.col, n);
                if values.len() < 2 {
                    return Err(Miss::NoFit);
                }
                let sql: Vec<String> = values.iter().map(sql_lit).collect();
                let words: Vec<String> = values.iter().map(q_lit).collect();
                b.set(format!("{c}_list"), sql.join(", "));
                b.set(format!("{c}_list_q"), in_words(&words, "or"));
            }
            Draw::Threshold(c) => {
                let col = b.column(c)?;
                b.set_number("x", ctx.threshold(rng, col.table, col.col));
            }
            Draw::Mean(c) => {
                let col = b.column(c)?;
                b.set_number("x", nice(ctx.mean(col.table, col.col)));
            }
            Draw::TotalPerParent(c) => {
                let col = b.column(c)?;
                let e = b
                    .edge
                    .ok_or_else(|| Miss::Bug("total_per_parent without an edge".to_string()))?;
                let per_parent = ctx.data[e.child].rows.len() as f64
                    / ctx.data[e.parent].rows.len().max(1) as f64;
                b.set_number("x", nice(ctx.mean(col.table, col.col) * per_parent));
            }
            Draw::Range(c) => {
                let col = b.column(c)?;
                let (low, high) = if col.kind == Kind::Date {
                    ctx.date_range(rng, col.table, col.col)
                } else {
                    let a = ctx.threshold(rng, col.table, col.col);
                    let z = ctx.threshold(rng, col.table, col.col);
                    let number = |v: &Value| sql_lit(v).parse::<f64>().ok();
                    if number(&a) > number(&z) {
                        (z, a)
                    } else {
                        (a, z)
                    }
                };
                b.set_number("low", low);
                b.set_number("high", high);
            }
            Draw::Number([low, high]) => {
                b.set("n", rng.random_range(*low..=*high).to_string());
            }
            Draw::MoreChildrenThanUsual => {
                let e = b.edge.ok_or_else(|| {
                    Miss::Bug("more_children_than_usual without an edge".to_string())
                })?;
                let per_parent =
                    ctx.data[e.child].rows.len() / ctx.data[e.parent].rows.len().max(1);
                let n = (per_parent + rng.random_range(1..=3)).max(2);
                b.set("n", n.to_string());
            }
            Draw::Choice(choice) => {
                let options = choices
                    .get(choice)
                    .ok_or_else(|| Miss::Bug(format!("no choice `{choice}`")))?;
                let total: u32 = options.iter().map(|o| o.weight).sum();
                let mut at = rng.random_range(0..total.max(1));
                for option in options {
                    if at < option.weight {
                        for (name, value) in &option.slots {
                            b.set(name, value);
                        }
                        break;
                    }
                    at -= option.weight;
                }
            }
            Draw::Show(show) => {
                let mut cols = Vec::new();
                for col in &show.cols {
                    match col.strip_suffix('?') {
                        Some(optional) => cols.extend(b.columns.get(optional).copied()),
                        None => cols.push(b.column(col)?),
                    }
                }
                let list: Vec<String> = cols
                    .iter()
                    .map(|c| format!("{}{}", show.alias, ctx.col(c.table, c.col)))
                    .collect();
                let words: Vec<String> = cols.iter().map(|c| ctx.words(c.table, c.col)).collect();
                let ticks: Vec<String> = cols
                    .iter()
                    .map(|c| format!("`{}`", ctx.col(c.table, c.col)))
                    .collect();
                b.set("shown", list.join(", "));
                b.set("shown_w", in_words(&words, "and"));
                b.set("shown_cols", ticks.join(" and "));
            }
            Draw::Like(c) => {
                let col = b.column(c)?;
                let Value::Text(name) = ctx.value(rng, col.table, col.col) else {
                    return Err(Miss::NoFit);
                };
                // A quote would need escaping in the pattern; short words
                // match too much.
                let words: Vec<&str> = name
                    .split(' ')
                    .filter(|w| w.len() >= 3 && !w.contains('\''))
                    .collect();
                let word = *fit(words.choose(rng))?;
                let (pattern, how) = if name.starts_with(word) && rng.random_bool(0.5) {
                    (format!("{word}%"), format!("starts with '{word}'"))
                } else {
                    (format!("%{word}%"), format!("contains '{word}'"))
                };
                b.set("pattern", pattern);
                b.set("how", how);
            }
            Draw::ByCount(by) => {
                let pattern = if b.get("n")? == "1" {
                    &by.one
                } else {
                    &by.many
                };
                let text = b.fill(pattern)?;
                b.set(by.slot.as_str(), text);
            }
            Draw::LabelAliases => {
                // Parent and child labels may share a column name (city):
                // the CTE's output columns then need distinct names.
                let (parent, child) = (b.get("parent.label")?, b.get("child.label")?);
                let (parent_as, child_as, parent_out, child_out) = if parent == child {
                    (
                        format!(" AS parent_{parent}"),
                        format!(" AS child_{child}"),
                        format!("parent_{parent}"),
                        format!("child_{child}"),
                    )
                } else {
                    (
                        String::new(),
                        String::new(),
                        parent.to_string(),
                        child.to_string(),
                    )
                };
                b.set("parent_as", parent_as);
                b.set("child_as", child_as);
                b.set("parent_out", parent_out);
                b.set("child_out", child_out);
            }
        }
        Ok(())
    }
}

impl Binding {
    /// A drawn value as `{name}` (SQL literal) and `{name_q}` (as a
    /// question writes it).
    fn set_number(&mut self, name: &str, v: Value) {
        self.set(name, sql_lit(&v));
        self.set(format!("{name}_q"), q_lit(&v));
    }
}
