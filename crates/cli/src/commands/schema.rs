use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use text2sql_data::schema::{enrich_from_sqlite, read_tables_file, DatabaseSchema};
use text2sql_data::serialize::{
    compact_input, compact_input_within_budget, omnisql_ddl, omnisql_ddl_within_budget,
    CompactOptions, Pruned, TokenBudget, ValuesShown,
};

use text2sql_data::values::index_values_from_sqlite;
use text2sql_model::tokenizer::Tokenizer;

use crate::output::{print_json, GlobalOpts};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The parsed schema model as JSON.
    Json,
    /// OmniSQL's `CREATE TABLE` form with example values in comments.
    Omnisql,
    /// The one-line T5 input `question | db_id | table : col ( value ) , … | t.c = t2.c`.
    Compact,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    None,
    Matching,
    All,
}

const AFTER_HELP: &str = "\
Without --db-id, lists the databases of the tables file. With it, prints that
database's schema; --db or --databases add example values read from its SQLite
file (opened read-only), and with --retrieve-values the stored values the
question mentions. --max-tokens fits the text to a budget by leaving out
the example values, columns and tables least relevant to --question (keys and
whatever --sql uses stay; names are never cut) and reports on stderr what it
left out.

Example:
  text2sql schema --tables spider/tables.json --db-id car_1 \\
    --databases spider/database --format compact \\
    --question \"How many car makers are there?\" --max-tokens 128";

#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// A Spider-style tables.json (SynSQL, Spider or BIRD).
    #[arg(long)]
    pub tables: PathBuf,
    /// The database to show; all of them when omitted (names only).
    #[arg(long)]
    pub db_id: Option<String>,
    /// The database's SQLite file, to read example values from.
    #[arg(long, conflicts_with = "databases", requires = "db_id")]
    pub db: Option<PathBuf>,
    /// A folder of databases laid out as DIR/<db_id>/<db_id>.sqlite
    /// (SynSQL's databases/, Spider's database/), to read example values from.
    #[arg(long, requires = "db_id")]
    pub databases: Option<PathBuf>,
    /// How to print the schema.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// The question: starts the compact input, and decides what is most
    /// relevant when pruning to --max-tokens.
    #[arg(long)]
    pub question: Option<String>,
    /// A gold SQL query whose tables and columns pruning must keep (as at
    /// training time).
    #[arg(long)]
    pub sql: Option<String>,
    /// Fit the text into this many tokens (omnisql and compact formats).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// A tokenizer.json, or a folder with any tokenizer a model loads (a
    /// checkpoint), that counts tokens for --max-tokens; without it
    /// whitespace-separated words are counted, which underestimates subword
    /// tokens.
    #[arg(long, requires = "max_tokens")]
    pub tokenizer: Option<PathBuf>,
    /// Which example values the compact form shows.
    #[arg(long, value_enum, default_value = "all")]
    pub values: Values,
    /// Leave foreign keys out of the compact form.
    #[arg(long)]
    pub no_foreign_keys: bool,
    /// Show the database values --question mentions next to their columns
    /// (`city ( Lyon )`), as a model trained with
    /// `data.schema.value_retrieval` gets them (compact format; needs --db
    /// or --databases, whose text values are indexed in memory).
    #[arg(long)]
    pub retrieve_values: bool,
    /// Mark the names --question mentions (`@` all of a name's words, `~`
    /// some), as a model trained with `data.schema.schema_linking` sees them
    /// (compact format).
    #[arg(long)]
    pub schema_linking: bool,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    let schemas = read_tables_file(&args.tables)?;
    let Some(db_id) = args.db_id.as_deref() else {
        if global.json {
            let ids: Vec<&str> = schemas.iter().map(|s| s.db_id.as_str()).collect();
            return print_json(&ids);
        }
        for schema in &schemas {
            println!(
                "{}\t{} tables\t{} columns",
                schema.db_id,
                schema.tables.len(),
                schema.column_count()
            );
        }
        return Ok(());
    };
    let mut schema = schemas
        .into_iter()
        .find(|s| s.db_id == db_id)
        .with_context(|| format!("no database `{db_id}` in {}", args.tables.display()))?;
    let database = match (&args.db, &args.databases) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(dir)) => Some(text2sql_data::database_path(dir, db_id)),
        (None, None) => None,
    };
    if let Some(database) = &database {
        enrich_from_sqlite(&mut schema, database)?;
    }
    if args.retrieve_values {
        if args.format != Format::Compact {
            bail!("--retrieve-values applies to --format compact");
        }
        let database = database
            .as_ref()
            .context("--retrieve-values needs the database: give --db or --databases")?;
        index_values_from_sqlite(&mut schema, database)?;
    }

    if args.format == Format::Json {
        if args.max_tokens.is_some() {
            bail!("--max-tokens applies to --format omnisql or compact, not json");
        }
        return print_json(&schema);
    }
    let question = args.question.as_deref().unwrap_or("");
    let options = CompactOptions {
        values: match args.values {
            Values::None => ValuesShown::None,
            Values::Matching => ValuesShown::MatchingQuestion,
            Values::All => ValuesShown::All,
        },
        foreign_keys: !args.no_foreign_keys,
        retrieved_values: args.retrieve_values,
        schema_linking: args.schema_linking,
    };
    let (text, pruned) = match args.max_tokens {
        None => (render(&args, &schema, question, &options), None),
        Some(max_tokens) => {
            let counter = token_counter(args.tokenizer.as_deref())?;
            let budget = TokenBudget {
                max_tokens,
                count_tokens: &counter,
            };
            let result = match args.format {
                Format::Compact => compact_input_within_budget(
                    question,
                    &schema,
                    &options,
                    None,
                    args.sql.as_deref(),
                    &budget,
                ),
                _ => omnisql_ddl_within_budget(&schema, question, args.sql.as_deref(), &budget),
            };
            (result.text, Some(result.pruned))
        }
    };

    if global.json {
        return print_json(&serde_json::json!({
            "db_id": schema.db_id,
            "format": format!("{:?}", args.format).to_lowercase(),
            "text": text,
            "pruned": pruned,
        }));
    }
    println!("{text}");
    if let (Some(pruned), false) = (&pruned, global.quiet) {
        eprintln!("{}", describe(pruned, args.max_tokens.unwrap_or(0)));
    }
    Ok(())
}

fn render(
    args: &Args,
    schema: &DatabaseSchema,
    question: &str,
    options: &CompactOptions,
) -> String {
    match args.format {
        Format::Compact => compact_input(question, schema, options),
        _ => omnisql_ddl(schema),
    }
}

type Counter = Box<dyn Fn(&str) -> usize>;

fn token_counter(tokenizer: Option<&Path>) -> Result<Counter> {
    let Some(path) = tokenizer else {
        return Ok(Box::new(|text: &str| text.split_whitespace().count()));
    };
    let tokenizer = if path.is_dir() {
        Tokenizer::from_dir(path)?
    } else {
        Tokenizer::from_json_file(path)?
    };
    // Encoding errors cannot be reported from inside the counter; counting
    // them as over any budget makes pruning go as far as it can instead.
    Ok(Box::new(move |text: &str| {
        tokenizer
            .encode(text, true)
            .map(|ids| ids.len())
            .unwrap_or(usize::MAX)
    }))
}

fn describe(pruned: &Pruned, max_tokens: usize) -> String {
    let mut line = format!("{} tokens (budget {max_tokens})", pruned.tokens);
    if !pruned.any() {
        line.push_str(", nothing pruned");
    } else {
        line.push_str(&format!(
            "; left out {} example value lists, {} columns{}, {} tables{}",
            pruned.value_lists,
            pruned.columns.len(),
            list(&pruned.columns),
            pruned.tables.len(),
            list(&pruned.tables)
        ));
    }
    if pruned.over_budget {
        line.push_str(
            "; still over budget: the question, keys and gold SQL parts alone do not fit",
        );
    }
    line
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}
