//! The one rule for finding the shared public data the tests read (Spider,
//! BIRD, SynSQL samples): the folder `shared/data` next to the checkout,
//! i.e. `../shared/data` from the workspace root. Tests of every crate find
//! it here rather than spelling the path themselves.

use std::path::{Path, PathBuf};

/// `shared/data` beside the checkout (it may be absent).
pub fn shared_data_dir() -> PathBuf {
    // This crate sits at `crates/data` in the workspace.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// The file or folder `rel` under [`shared_data_dir`], or `None` when it is
/// absent (the caller skips its test, with a note on stderr); under CI
/// (`CI` set) the data must be there, so an absent path panics.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let path = shared_data_dir().join(rel);
    if path.exists() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} is missing under CI", path.display());
    } else {
        eprintln!("skipping: {} not present", path.display());
        None
    }
}

/// The ten real SynSQL-2.5M records of `synsql/real_samples_10.json`, as
/// JSON values, or `None` when the file is absent (as [`shared_data`]).
pub fn real_synsql_samples() -> Option<Vec<serde_json::Value>> {
    let path = shared_data("synsql/real_samples_10.json")?;
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
