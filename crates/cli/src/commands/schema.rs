use std::path::PathBuf;

use anyhow::{Context, Result};
use text2sql_data::schema::read_tables_file;

use crate::output::{print_json, GlobalOpts};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A Spider-style tables.json (SynSQL, Spider or BIRD).
    #[arg(long)]
    pub tables: PathBuf,
    /// The database to show; all of them when omitted (names only).
    #[arg(long)]
    pub db_id: Option<String>,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    let schemas = read_tables_file(&args.tables)?;
    let Some(db_id) = args.db_id else {
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
    let schema = schemas
        .iter()
        .find(|s| s.db_id == db_id)
        .with_context(|| format!("no database `{db_id}` in {}", args.tables.display()))?;
    print_json(schema)
}
