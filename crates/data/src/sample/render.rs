//! Turns a verified item into a record's text: the question in one of
//! SynSQL's nine styles (several phrasings each) and the `cot` reasoning.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::spec::capitalise;
use super::templates::Item;
use super::Style;

/// The question of `item` in `style`, about a database on `topic`.
pub(crate) fn question(item: &Item, style: Style, topic: &str, rng: &mut ChaCha8Rng) -> String {
    let ask = item
        .asks
        .choose(rng)
        .map(String::as_str)
        .unwrap_or_default();
    let pick = |rng: &mut ChaCha8Rng, options: &[&str]| -> String {
        options.choose(rng).copied().unwrap_or("{a}").to_string()
    };
    let frame = match style {
        Style::Formal => pick(
            rng,
            &[
                "Could you please provide {a}?",
                "Please provide {a}.",
                "I would like to obtain {a}.",
                "Would you kindly list {a}?",
                "May I request {a}?",
            ],
        ),
        Style::Colloquial => pick(
            rng,
            &[
                "Hey, can you show me {a}?",
                "I'd love to see {a}, thanks!",
                "Could you pull up {a} for me?",
                "Mind grabbing {a} for me?",
                "So, what about {a}?",
            ],
        ),
        Style::Imperative => pick(
            rng,
            &[
                "List {a}.",
                "Show {a}.",
                "Retrieve {a}.",
                "Find {a}.",
                "Return {a}.",
                "Get {a}.",
            ],
        ),
        Style::Interrogative => {
            if item.plural {
                pick(
                    rng,
                    &["What are {a}?", "Can you tell me {a}?", "Which are {a}?"],
                )
            } else {
                pick(
                    rng,
                    &["What is {a}?", "Can you tell me {a}?", "Do you know {a}?"],
                )
            }
        }
        Style::Descriptive => pick(
            rng,
            &[
                "I need a report of {a}, taken from the {t} data.",
                "The goal is to find {a}, based on the {t} records.",
                "This request is about {t}: it asks for {a}.",
                "For an analysis of {t}, I am gathering {a}.",
            ],
        ),
        Style::Concise => pick(rng, &["{A}.", "{A}?", "{A}"]),
        Style::Vague => pick(
            rng,
            &[
                "I'm curious about {a}.",
                "Something like {a}, if possible.",
                "Could you look into {a}?",
                "Maybe {a}?",
            ],
        ),
        Style::Metaphorical => pick(
            rng,
            &[
                "Shine a light on {a}.",
                "Unearth {a} from the depths of the {t} records.",
                "Let the data speak: reveal {a}.",
                "Cast a net over the {t} records and bring back {a}.",
                "Like a lighthouse in the fog, point out {a}.",
            ],
        ),
        Style::MultiTurnDialogue => return dialogue(item, rng),
    };
    frame
        .replace("{A}", &capitalise(ask))
        .replace("{a}", ask)
        .replace("{t}", topic)
}

fn dialogue(item: &Item, rng: &mut ChaCha8Rng) -> String {
    let subject = &item.subject;
    let opener = [
        format!("I want to look into some {subject}."),
        format!("I need some information about {subject}."),
        format!("Can you help me with {subject}?"),
    ];
    let reply = [
        format!("Sure. What would you like to know about the {subject}?"),
        format!("Of course. Which {subject} are you interested in?"),
        "Happy to help. What exactly do you need?".to_string(),
    ];
    let acks = [
        "Got it. Anything else?",
        "Understood. Is there anything more?",
        "OK. What else do you need?",
    ];
    let mut lines = vec![
        format!(
            "**User**: {}",
            opener.choose(rng).cloned().unwrap_or_default()
        ),
        format!(
            "**Assistant**: {}",
            reply.choose(rng).cloned().unwrap_or_default()
        ),
    ];
    let turns: Vec<String> = if item.turns.is_empty() {
        vec![format!(
            "I need {}.",
            item.asks.first().cloned().unwrap_or_default()
        )]
    } else {
        item.turns.clone()
    };
    for (i, turn) in turns.iter().enumerate() {
        lines.push(format!("**User**: {turn}"));
        if i + 1 < turns.len() {
            lines.push(format!(
                "**Assistant**: {}",
                acks.choose(rng).copied().unwrap_or_default()
            ));
        }
    }
    lines.push("**Assistant**: Is there anything else you need?".to_string());
    lines.push("**User**: No, that's all.".to_string());
    lines.push(
        "**Assistant**: OK, I will help you translate your request into an SQL query.".to_string(),
    );
    lines.join("\n")
}

/// SynSQL-style chain of thought: what the question asks, the tables and
/// columns involved, numbered steps, then the query.
pub(crate) fn cot(item: &Item, db_id: &str) -> String {
    let mut text = format!(
        "To translate the question into an executable SQLite query, we break it into parts and map each one to the `{db_id}` schema.\n\n### Relevant tables and columns\n{}\n\n### Step-by-step reasoning\n",
        item.schema_notes
    );
    for (i, step) in item.steps.iter().enumerate() {
        text.push_str(&format!("{}. {step}\n", i + 1));
    }
    text.push_str("\n### Final query\n```sql\n");
    text.push_str(&item.sql);
    text.push_str("\n```");
    text
}

/// Draws an index by integer weights.
pub(crate) fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (i, &w) in weights.iter().enumerate() {
        if roll < w {
            return i;
        }
        roll -= w;
    }
    weights.len().saturating_sub(1)
}
