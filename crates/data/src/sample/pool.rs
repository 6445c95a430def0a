//! Builds, per database and tier, a pool of distinct (question parts, SQL)
//! items whose SQL was executed on the real database and returned rows.
//! Records are then streamed from the pools, so the cost of executing SQL
//! does not grow with the number of records.

use std::collections::HashSet;
use std::path::Path;

use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, OpenFlags};

use super::context::DbContext;
use super::spec::Domain;
use super::templates::{library, Item};
use super::Tier;
use crate::error::DataError;

/// Tries per wanted item before giving up on a tier: some draws repeat an
/// SQL already in the pool or select no rows.
const ATTEMPTS_PER_ITEM: usize = 6;

/// Fills one tier's pool with up to `target` distinct items. An SQL that
/// fails to execute is a bug in a template and is reported as an error.
pub(crate) fn build_pool(
    ctx: &DbContext,
    conn: &Connection,
    db_path: &Path,
    tier: Tier,
    target: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Item>, DataError> {
    let mut pool = Vec::with_capacity(target);
    let mut seen = HashSet::new();
    let library = library()?;
    let listed = library.listed(tier);
    for _ in 0..target * ATTEMPTS_PER_ITEM + 20 {
        if pool.len() >= target {
            break;
        }
        let Some(&template) = listed.choose(rng) else {
            break;
        };
        let Some(item) = library.instantiate(template, ctx, rng)? else {
            continue;
        };
        if seen.contains(&item.sql) {
            continue;
        }
        if returns_rows(conn, &item.sql).map_err(|e| {
            DataError::Invalid(format!(
                "{}: generated {} SQL does not execute ({e}): {}",
                db_path.display(),
                tier.as_str(),
                item.sql
            ))
        })? {
            seen.insert(item.sql.clone());
            let mut item = item;
            item.schema_notes = schema_notes(ctx.domain, &item.sql);
            pool.push(item);
        }
    }
    pool.shuffle(rng);
    Ok(pool)
}

/// One line per table the SQL names: its columns that the SQL names, with
/// their descriptions.
fn schema_notes(domain: &Domain, sql: &str) -> String {
    let words: HashSet<&str> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut lines = Vec::new();
    for table in domain
        .tables
        .iter()
        .filter(|t| words.contains(t.name.as_str()))
    {
        let columns: Vec<String> = table
            .columns
            .iter()
            .filter(|c| words.contains(c.name.as_str()))
            .map(|c| format!("`{}` ({})", c.name, c.description(table)))
            .collect();
        lines.push(format!(
            "- `{}` ({}): {}",
            table.name,
            table.plural,
            columns.join("; ")
        ));
    }
    lines.join("\n")
}

/// Whether the query yields a first row with at least one non-NULL value.
pub(crate) fn returns_rows(conn: &Connection, sql: &str) -> rusqlite::Result<bool> {
    let mut statement = conn.prepare(sql)?;
    let columns = statement.column_count();
    let mut rows = statement.query([])?;
    match rows.next()? {
        None => Ok(false),
        Some(row) => {
            for i in 0..columns {
                if row.get_ref(i)? != rusqlite::types::ValueRef::Null {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

pub(crate) fn open_read_only(path: &Path) -> Result<Connection, DataError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DataError::Sqlite {
        path: path.to_path_buf(),
        source,
    })
}
