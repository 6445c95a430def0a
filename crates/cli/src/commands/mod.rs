pub mod ask;
pub mod convert;
pub mod eval;
pub mod prepare;
pub mod sample;
pub mod schema;
pub mod serve;
pub mod sql;
pub mod tokenizer;
pub mod train;

use anyhow::Context;

/// The schema-linking flags of decoding that `ask`, `eval --model` and
/// `serve` share.
#[derive(clap::Args, Debug, Clone)]
pub struct LinkArgs {
    /// Constrained decoding prefers the tables the question names where
    /// the SQL names a table: their log-probability gains this much per word
    /// of the table's name the question has (0 turns it off; default
    /// 6, see the README's "Table links").
    #[arg(long, value_name = "BONUS", allow_negative_numbers = true)]
    pub table_link_bonus: Option<f32>,
    /// With --skeletons-from: do not prefer the columns, join keys and
    /// literals the question names where the query held to a shape has
    /// them (see the README's "Filling a shape").
    #[arg(long)]
    pub no_fill_links: bool,
}

/// `--skeletons-from`: hold decoding to the query shapes a classifier
/// trained on the training questions predicts.
#[derive(Debug, Clone, clap::Args)]
pub struct SkeletonArgs {
    /// A folder made by `text2sql prepare`: constrained decoding writes a
    /// query of one of the shapes (SQL with names and literals blanked) that
    /// a classifier trained on its training questions predicts for each
    /// question (see the README's "Query shapes").
    #[arg(long, value_name = "DIR")]
    pub skeletons_from: Option<std::path::PathBuf>,
    /// With --skeletons-from: how many shapes each question may take, the
    /// N the classifier scores highest (on Spider train's tuning databases
    /// 1 gave 196 right answers, 2 gave 158).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        requires = "skeletons_from"
    )]
    pub skeletons: usize,
}

impl SkeletonArgs {
    /// Gives `model` the bank of --skeletons-from, when given.
    pub fn apply(&self, model: &mut text2sql_model::SqlModel) -> anyhow::Result<()> {
        if let Some(dir) = &self.skeletons_from {
            let (bank, skipped) = text2sql_sql::SkeletonBank::from_processed(dir)
                .with_context(|| format!("--skeletons-from {}", dir.display()))?;
            tracing::info!(
                questions = bank.len(),
                skipped,
                "query shapes of {}",
                dir.display()
            );
            model.set_skeletons(std::sync::Arc::new(bank), self.skeletons);
        }
        Ok(())
    }
}

impl LinkArgs {
    /// Sets the bonus and the fill links on `model`, when given.
    pub fn apply(&self, model: &mut text2sql_model::SqlModel) -> anyhow::Result<()> {
        if let Some(bonus) = self.table_link_bonus {
            text2sql_model::generate::check_table_link_bonus(bonus)
                .context("--table-link-bonus")?;
            model.generation_mut().table_link_bonus = bonus;
        }
        if self.no_fill_links {
            model.generation_mut().fill_links = false;
        }
        Ok(())
    }
}
