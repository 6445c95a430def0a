//! `--set key.sub=value`: overrides applied onto the YAML tree before it is
//! deserialised, so an override is type-checked exactly like the file.

use serde_norway::Value;

use crate::error::{Result, TrainError};

/// Applies one `a.b.c=value` onto the YAML tree. The value is parsed as a YAML
/// scalar, so `3e-4` is a number, `true` a bool and `runs/x` a string; numeric
/// segments index into lists (`curriculum.phases.0.steps=100`), and the index
/// just past the end appends (`data.sources.2.processed_dir=bird-train`).
pub fn apply_override(tree: &mut Value, assignment: &str) -> Result<()> {
    let fail = |message: String| TrainError::Override {
        assignment: assignment.to_string(),
        message,
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| fail("expected KEY=VALUE, e.g. optimizer.lr=3e-4".into()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(fail(
            "the key must be dotted names like optimizer.lr".into(),
        ));
    }
    let value: Value = serde_norway::from_str(raw)
        .map_err(|e| fail(format!("the value is not valid YAML: {e}")))?;
    let segments: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for (depth, segment) in segments.iter().enumerate() {
        let last = depth + 1 == segments.len();
        let walked = segments[..=depth].join(".");
        if node.is_null() {
            *node = Value::Mapping(Default::default());
        }
        node = match node {
            Value::Mapping(map) => {
                let k = Value::String((*segment).to_string());
                if last {
                    map.insert(k, value);
                    return Ok(());
                }
                map.entry(k).or_insert(Value::Null)
            }
            Value::Sequence(items) => {
                let index: usize = segment.parse().map_err(|_| {
                    fail(format!(
                        "`{walked}`: a list is indexed by number, not `{segment}`"
                    ))
                })?;
                let len = items.len();
                // The index one past the end appends an item (a new source).
                if index == len {
                    items.push(Value::Null);
                }
                let slot = items.get_mut(index).ok_or_else(|| {
                    fail(format!(
                        "`{walked}`: index {index} is past the list's {len} items \
                         (index {len} appends one)"
                    ))
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(fail(format!(
                    "`{}` is a single value, it has no `{segment}`",
                    segments[..depth].join(".")
                )))
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{parse, two_sources, MINIMAL};
    use crate::config::{OptimizerKind, TrainConfig};

    #[test]
    fn overrides_are_type_aware() {
        let c = parse(
            MINIMAL,
            &[
                "optimizer.lr=1e-3",
                "optimizer.kind=adafactor",
                "training.seed=7",
                "run.name=other",
                "optimizer.adafactor_momentum=true",
                "curriculum.phases.0.steps=3",
                "eval.early_stopping_patience=4",
            ],
        )
        .unwrap();
        assert_eq!(c.optimizer.lr, 1e-3);
        assert_eq!(c.optimizer.kind, OptimizerKind::Adafactor);
        assert_eq!(c.training.seed, 7);
        assert_eq!(c.run.name, "other");
        assert!(c.optimizer.adafactor_momentum);
        assert_eq!(c.curriculum.phases[0].steps, 3);
        assert_eq!(c.eval.early_stopping_patience, Some(4));
    }

    #[test]
    fn sources_are_named_weighted_and_reached_by_overrides() {
        let text = two_sources();
        let c = parse(&text, &[]).unwrap();
        let sources = c.data.sources();
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["synsql", "spider"], "folder name unless named");
        assert_eq!((sources[0].weight, sources[1].weight), (3.0, 1.0));
        let dbs = tempfile::tempdir().unwrap();
        let c = parse(
            &text,
            &[
                "data.sources.1.weight=0.5",
                &format!("data.sources.1.databases={}", dbs.path().display()),
                "data.sources.0.name=sample",
                "eval.source=spider",
                "eval.exec_sample=10",
                "curriculum.phases.0.sources={spider: 0}",
            ],
        )
        .unwrap();
        let sources = c.data.sources();
        assert_eq!(sources[1].weight, 0.5);
        assert_eq!(sources[1].databases.as_deref(), Some(dbs.path()));
        assert_eq!(sources[0].name, "sample");
        assert_eq!(c.eval.source.as_deref(), Some("spider"));
        assert_eq!(c.curriculum.phases[0].sources["spider"], 0.0);
        // The index past the end appends a source.
        let c = parse(
            &text,
            &[
                "data.sources.2.processed_dir=out/bird_train",
                "data.sources.2.weight=2",
            ],
        )
        .unwrap();
        let sources = c.data.sources();
        assert_eq!(sources.len(), 3);
        assert_eq!(
            (sources[2].name.as_str(), sources[2].weight),
            ("bird_train", 2.0)
        );
        // A whole new list can be given too.
        let c = parse(
            &text,
            &["data.sources=[{processed_dir: a}, {processed_dir: b, weight: 2}]"],
        )
        .unwrap();
        assert_eq!(c.data.sources()[1].name, "b");
        // The resolved config reloads to the same value.
        let dir = tempfile::tempdir().unwrap();
        let path = c.save_resolved(dir.path()).unwrap();
        assert_eq!(TrainConfig::load(&path, &[]).unwrap(), c);
    }

    #[test]
    fn malformed_overrides_are_explained() {
        let err = parse(MINIMAL, &["optimizer.lr"]).unwrap_err().to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
        let err = parse(MINIMAL, &["optimizer.lr.x=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("single value"), "{err}");
        let err = parse(MINIMAL, &["curriculum.phases.9.steps=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("past the list"), "{err}");
    }
}
