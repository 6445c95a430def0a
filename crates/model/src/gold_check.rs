//! Constrained decoding's checker run over known-good SQL (`text2sql sql
//! check`): does it accept a corpus's gold queries at every prefix, as
//! decoding would feed them (token by token under a tokenizer, else
//! character by character)?

use std::collections::HashMap;
use std::sync::Arc;

use text2sql_data::schema::DatabaseSchema;
use text2sql_sql::{check_pieces, Rejection, SchemaIndex, SqlChecker};

use crate::error::{ModelError, Result};
use crate::generate::{check_token_prefixes, TokenTexts};
use crate::tokenizer::Tokenizer;

/// The checker over a set of schemas, with or without a tokenizer.
pub struct GoldChecker<'a> {
    schemas: HashMap<String, Arc<SchemaIndex>>,
    tokenizer: Option<(&'a Tokenizer, TokenTexts)>,
    /// Gold SQL's conventions too ([`SqlChecker::conventional`]).
    conventional: bool,
}

impl<'a> GoldChecker<'a> {
    pub fn new(schemas: &[DatabaseSchema], tokenizer: Option<&'a Tokenizer>) -> Self {
        GoldChecker {
            schemas: schemas
                .iter()
                .map(|s| (s.db_id.clone(), Arc::new(SchemaIndex::new(s))))
                .collect(),
            tokenizer: tokenizer.map(|t| (t, TokenTexts::new(t))),
            conventional: false,
        }
    }

    /// This checker also requiring gold SQL's conventions when
    /// `conventional`, as constrained decoding's first search does.
    pub fn conventional(mut self, conventional: bool) -> Self {
        self.conventional = conventional;
        self
    }

    /// What a rejection's piece index counts: "token" or "character".
    pub fn unit(&self) -> &'static str {
        if self.tokenizer.is_some() {
            "token"
        } else {
            "character"
        }
    }

    /// Checks `sql` on database `db_id` at every prefix and at its end:
    /// `Ok(None)` when accepted, `Ok(Some((piece, why)))` when the piece
    /// (0-based; the piece count for the end) is rejected. An unknown
    /// `db_id` or a query the tokenizer cannot encode is an error.
    pub fn check(&self, db_id: &str, sql: &str) -> Result<Option<(usize, Rejection)>> {
        let schema = self
            .schemas
            .get(db_id)
            .ok_or_else(|| ModelError::Invalid(format!("db_id `{db_id}` has no schema")))?;
        let checker = SqlChecker::new(schema.clone());
        let checker = if self.conventional {
            checker.conventional()
        } else {
            checker
        };
        let outcome = match &self.tokenizer {
            Some((tokenizer, texts)) => {
                let ids = tokenizer
                    .encode(sql, false)
                    .map_err(|e| ModelError::Invalid(format!("tokenizing: {e}")))?;
                check_token_prefixes(&checker, texts, &ids)
            }
            None => {
                let mut buf = [0u8; 4];
                let chars: Vec<String> = sql
                    .chars()
                    .map(|c| c.encode_utf8(&mut buf).to_string())
                    .collect();
                check_pieces(checker, chars.iter().map(String::as_str))
            }
        };
        Ok(outcome.err())
    }
}
