//! The SQLite sandbox, execution-accuracy comparison (Spider and BIRD rules), SQL normalisation and exact match.
