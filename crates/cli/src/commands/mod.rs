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

/// The decoding flag `ask`, `eval --model` and `serve` share.
#[derive(clap::Args, Debug, Clone)]
pub struct TableLinkArgs {
    /// Constrained decoding prefers the tables the question names where
    /// the SQL names a table: their log-probability gains this much per word
    /// of the table's name the question has (0 turns it off; default
    /// 6, see the README's "Table links").
    #[arg(long, value_name = "BONUS", allow_negative_numbers = true)]
    pub table_link_bonus: Option<f32>,
}

impl TableLinkArgs {
    /// Sets the bonus on `model`, when given.
    pub fn apply(&self, model: &mut text2sql_model::SqlModel) -> anyhow::Result<()> {
        if let Some(bonus) = self.table_link_bonus {
            text2sql_model::generate::check_table_link_bonus(bonus)
                .context("--table-link-bonus")?;
            model.generation_mut().table_link_bonus = bonus;
        }
        Ok(())
    }
}
