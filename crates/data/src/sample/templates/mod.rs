//! Question/SQL templates, four tiers with SynSQL's meaning, kept as data in
//! `crates/data/sample-templates.yaml`: each names what it binds on a
//! database (a table or a foreign-key edge with columns of given roles, a
//! domain concept), what it draws (values from the generated rows, numbers,
//! a choice of wordings) and text patterns with `{placeholders}` for the
//! SQL, the question phrasings, the dialogue turns, the `cot` steps and the
//! external knowledge. The file is embedded at build time and parsed and
//! checked once; [`bind`] holds the binders and draws.
//!
//! SQL is written in one canonical style: upper-case keywords, single
//! spaces, `T1`/`T2` aliases in joins (child first), CTE bodies on their own
//! lines, and `--` comments before the CTEs of Highly Complex queries.

mod bind;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::context::DbContext;
use super::Tier;
use crate::error::DataError;
use bind::{Binding, Miss};

const FILE: &str = "sample-templates.yaml";
const TEMPLATES: &str = include_str!("../../../sample-templates.yaml");

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    choices: BTreeMap<String, Vec<Choice>>,
    templates: Vec<Template>,
}

/// One option of a named choice: the placeholders it sets.
#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    #[serde(default = "one")]
    weight: u32,
    #[serde(flatten)]
    slots: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Template {
    pub name: String,
    pub tier: Tier,
    /// How many times the template is listed in its tier.
    #[serde(default = "one")]
    weight: u32,
    bind: bind::Bind,
    #[serde(default)]
    draw: Vec<bind::Draw>,
    #[serde(default)]
    ctes: Vec<Cte>,
    /// A `--` comment line before each CTE and the final SELECT.
    #[serde(default)]
    comments: bool,
    /// The (final) SELECT, without `;`.
    sql: String,
    asks: Vec<String>,
    plural: bool,
    subject: String,
    turns: Vec<String>,
    #[serde(default)]
    knowledge: String,
    steps: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cte {
    name: String,
    comment: String,
    body: String,
}

/// The parsed and checked templates.
pub(crate) struct Library {
    templates: Vec<Template>,
    choices: BTreeMap<String, Vec<Choice>>,
    /// Per tier, template indices, each listed `weight` times.
    listed: [Vec<usize>; 4],
}

/// The template library, or the first problem found in its file.
pub(crate) fn library() -> Result<&'static Library, DataError> {
    static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| load(TEMPLATES))
        .as_ref()
        .map_err(|message| DataError::Invalid(message.clone()))
}

fn load(text: &str) -> Result<Library, String> {
    // Enums are written as one-key maps (`bind: {table: [label]}`), not
    // as YAML tags.
    let file: TemplateFile = serde_norway::with::singleton_map_recursive::deserialize(
        serde_norway::Deserializer::from_str(text),
    )
    .map_err(|e| format!("{FILE}: invalid: {e}"))?;
    for (name, options) in &file.choices {
        check_choice(name, options).map_err(|e| format!("{FILE}: choice `{name}`: {e}"))?;
    }
    let mut names = BTreeSet::new();
    let mut listed: [Vec<usize>; 4] = Default::default();
    for (i, template) in file.templates.iter().enumerate() {
        let at = format!("{FILE}: template `{}`", template.name);
        if !names.insert(template.name.as_str()) {
            return Err(format!("{at}: the name is used twice"));
        }
        template
            .check(&file.choices)
            .map_err(|e| format!("{at}: {e}"))?;
        let tier = tier_index(template.tier);
        listed[tier].extend(std::iter::repeat_n(i, template.weight as usize));
    }
    if let Some(tier) = Tier::ALL
        .iter()
        .find(|t| listed[tier_index(**t)].is_empty())
    {
        return Err(format!("{FILE}: no template of tier {tier}"));
    }
    Ok(Library {
        templates: file.templates,
        choices: file.choices,
        listed,
    })
}

fn check_choice(name: &str, options: &[Choice]) -> Result<(), String> {
    let Some(first) = options.first() else {
        return Err("has no options".to_string());
    };
    let keys: Vec<&String> = first.slots.keys().collect();
    for option in options {
        if option.weight == 0 {
            return Err("an option has weight 0".to_string());
        }
        if option.slots.keys().collect::<Vec<_>>() != keys {
            return Err(format!(
                "every option of `{name}` must set the same placeholders ({keys:?})"
            ));
        }
    }
    Ok(())
}

fn tier_index(tier: Tier) -> usize {
    Tier::ALL.iter().position(|t| *t == tier).unwrap_or(0)
}

impl Library {
    #[cfg(test)]
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The tier's template indices, each listed as often as its weight, to
    /// draw from uniformly.
    pub fn listed(&self, tier: Tier) -> &[usize] {
        &self.listed[tier_index(tier)]
    }

    /// Template `index` instantiated on the database; `None` when its
    /// binder or a draw finds nothing that fits this database.
    pub fn instantiate(
        &self,
        index: usize,
        ctx: &DbContext,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<Item>, DataError> {
        let template = &self.templates[index];
        match template.instantiate(&self.choices, ctx, rng) {
            Ok(item) => Ok(Some(item)),
            Err(Miss::NoFit) => Ok(None),
            Err(Miss::Bug(message)) => Err(DataError::Invalid(format!(
                "{FILE}: template `{}`: {message}",
                template.name
            ))),
        }
    }
}

impl Template {
    fn patterns(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let ctes = self
            .ctes
            .iter()
            .flat_map(|c| [("ctes", &c.name), ("ctes", &c.comment), ("ctes", &c.body)]);
        let lists = [
            ("asks", &self.asks),
            ("turns", &self.turns),
            ("steps", &self.steps),
        ];
        ctes.chain([
            ("sql", &self.sql),
            ("subject", &self.subject),
            ("knowledge", &self.knowledge),
        ])
        .map(|(field, text)| (field, text.as_str()))
        .chain(
            lists
                .into_iter()
                .flat_map(|(field, texts)| texts.iter().map(move |t| (field, t.as_str()))),
        )
    }

    /// Every placeholder of every pattern is provided by the binder or a
    /// draw, and every draw refers to what exists before it.
    fn check(&self, choices: &BTreeMap<String, Vec<Choice>>) -> Result<(), String> {
        if self.weight == 0 {
            return Err("weight must be at least 1".to_string());
        }
        if self.asks.is_empty() || self.turns.is_empty() || self.steps.is_empty() {
            return Err("asks, turns and steps need at least one pattern each".to_string());
        }
        let mut provided = self.bind.provides();
        for draw in &self.draw {
            draw.check_and_provide(&mut provided, choices)?;
        }
        for (field, pattern) in self.patterns() {
            for name in placeholders(pattern)? {
                if !provided.slots.contains(name) {
                    return Err(format!(
                        "placeholder `{{{name}}}` in {field} is provided neither by its binder nor by a draw"
                    ));
                }
            }
        }
        Ok(())
    }

    fn instantiate(
        &self,
        choices: &BTreeMap<String, Vec<Choice>>,
        ctx: &DbContext,
        rng: &mut ChaCha8Rng,
    ) -> Result<Item, Miss> {
        let mut b = self.bind.bind(ctx, rng)?;
        for draw in &self.draw {
            draw.draw(&mut b, choices, ctx, rng)?;
        }
        let all = |patterns: &[String], b: &Binding| -> Result<Vec<String>, Miss> {
            patterns.iter().map(|p| b.fill(p)).collect()
        };
        let ctes = self
            .ctes
            .iter()
            .map(|c| Ok((b.fill(&c.name)?, b.fill(&c.comment)?, b.fill(&c.body)?)))
            .collect::<Result<Vec<_>, Miss>>()?;
        Ok(Item {
            sql: with_ctes(&ctes, &b.fill(&self.sql)?, self.comments),
            asks: all(&self.asks, &b)?,
            plural: self.plural,
            subject: b.fill(&self.subject)?,
            turns: all(&self.turns, &b)?,
            knowledge: b.fill(&self.knowledge)?,
            schema_notes: String::new(),
            steps: all(&self.steps, &b)?,
        })
    }
}

/// The `{name}` placeholders of a pattern, in order.
fn placeholders(pattern: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("a `}}` without `{{` in \"{pattern}\""));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("an unclosed `{{` in \"{pattern}\""))?;
        let name = &after[..close];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!(
                "a malformed placeholder `{{{name}}}` in \"{pattern}\""
            ));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// A multi-line query made of CTEs (name, comment, body) and a final
/// SELECT; `comments` puts a `--` line before each CTE (Highly Complex
/// style). Without CTEs, the final SELECT alone.
fn with_ctes(ctes: &[(String, String, String)], final_select: &str, comments: bool) -> String {
    let mut out = String::new();
    for (i, (name, comment, body)) in ctes.iter().enumerate() {
        if comments {
            out.push_str(&format!("-- {comment}\n"));
        }
        out.push_str(if i == 0 { "WITH " } else { "" });
        out.push_str(&format!("{name} AS (\n  {body}\n)"));
        out.push_str(if i + 1 < ctes.len() { ",\n" } else { "\n" });
    }
    if comments && !ctes.is_empty() {
        out.push_str("-- Final result\n");
    }
    out.push_str(final_select);
    out.push(';');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_file_parses_and_every_placeholder_is_provided() {
        let library = library().unwrap();
        assert!(library.templates().len() >= 40);
        for tier in Tier::ALL {
            assert!(!library.listed(tier).is_empty(), "{tier}");
        }
        // The concept (external knowledge) templates are listed twice.
        let concept_ranking = library
            .templates()
            .iter()
            .position(|t| t.name == "concept_share_ranking")
            .unwrap();
        let listed = library.listed(Tier::HighlyComplex);
        assert_eq!(listed.iter().filter(|&&i| i == concept_ranking).count(), 2);
    }

    const HEAD: &str = "choices: {aggregate: [{agg: AVG, agg_w: average}]}\ntemplates:\n";

    fn one_template(body: &str) -> String {
        format!(
            "{HEAD}  - name: broken_one\n    tier: Simple\n{body}    plural: true\n    subject: \"{{plural}}\"\n    turns: [\"Which?\"]\n"
        )
    }

    #[test]
    fn an_unknown_placeholder_is_named_with_its_template() {
        let text = one_template(
            "    bind: {table: [measure]}\n    sql: \"SELECT {measure} FROM {table}\"\n    asks: [\"the {colour_w} of {plural}\"]\n    steps: [\"Read it.\"]\n",
        );
        let error = load(&text).err().unwrap();
        assert!(error.contains("template `broken_one`"), "{error}");
        assert!(error.contains("`{colour_w}` in asks"), "{error}");
    }

    #[test]
    fn a_draw_needs_its_column_and_its_choice() {
        let missing_column = one_template(
            "    bind: {table: [measure]}\n    draw: [{value: category}]\n    sql: \"SELECT 1\"\n    asks: [\"x\"]\n    steps: [\"x\"]\n",
        );
        let error = load(&missing_column).err().unwrap();
        assert!(error.contains("`category`"), "{error}");
        let missing_choice = one_template(
            "    bind: {table: [measure]}\n    draw: [{choice: colours}]\n    sql: \"SELECT 1\"\n    asks: [\"x\"]\n    steps: [\"x\"]\n",
        );
        let error = load(&missing_choice).err().unwrap();
        assert!(error.contains("`colours`"), "{error}");
    }

    #[test]
    fn placeholders_are_found_and_malformed_ones_refused() {
        assert_eq!(
            placeholders("SELECT {a}, T1.{child.b_w} FROM {t}").unwrap(),
            ["a", "child.b_w", "t"]
        );
        assert!(placeholders("SELECT {a").is_err());
        assert!(placeholders("SELECT a}").is_err());
        assert!(placeholders("SELECT {a b}").is_err());
    }

    #[test]
    fn ctes_are_assembled_in_the_canonical_layout() {
        let ctes = [
            ("a".to_string(), "First".to_string(), "SELECT 1".to_string()),
            (
                "b".to_string(),
                "Second".to_string(),
                "SELECT 2".to_string(),
            ),
        ];
        assert_eq!(
            with_ctes(&ctes, "SELECT * FROM b", true),
            "-- First\nWITH a AS (\n  SELECT 1\n),\n-- Second\nb AS (\n  SELECT 2\n)\n-- Final result\nSELECT * FROM b;"
        );
        assert_eq!(with_ctes(&[], "SELECT 1", false), "SELECT 1;");
    }
}
