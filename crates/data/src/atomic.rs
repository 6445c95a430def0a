//! Atomic writes, the one implementation of the workspace: a file or a
//! folder is built under a temporary name beside its final path and renamed
//! into place, so a crash or an error never leaves a half-written output
//! under the final name, and an older output is only ever replaced by a
//! complete new one.
//!
//! Temporary names start with [`TEMP_PREFIX`] and carry the final name
//! (`.tmp-model.safetensors-a1B2c3`); `tempfile` makes them unique, so two
//! writers never share one, and removes them when a write fails or panics.
//! Outputs get the usual permissions (`0666` / `0777` less the umask), as
//! `std::fs::write` and `std::fs::create_dir` would give them, not
//! `tempfile`'s private ones.
//!
//! Only [`write_file_with`] syncs the file to disk before the rename; the
//! other writers leave that to the operating system.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::{Builder, NamedTempFile, TempDir};

/// How every temporary file and folder of this module is named first.
pub const TEMP_PREFIX: &str = ".tmp-";

/// An I/O error of an atomic write. It names the output being written, or
/// the folder it goes in when that folder could not be created.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct AtomicError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl AtomicError {
    fn new(path: &Path, source: io::Error) -> Self {
        AtomicError {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> AtomicError + '_ {
    move |source| AtomicError::new(path, source)
}

/// Whether a file name is one of this module's temporary names. A crash
/// skips the cleanup and may leave one behind; readers skip them.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// The folder `path` goes in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn name_of(path: &Path) -> Result<String, AtomicError> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| {
            AtomicError::new(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "has no file name"),
            )
        })
}

/// `tempfile`'s builder with the usual permissions, `mode` less the umask.
fn builder<'a, 'b>(prefix: &'a str, suffix: &'b str, mode: u32) -> Builder<'a, 'b> {
    let mut builder = Builder::new();
    builder.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
}

/// A new empty temporary file beside `path`, its name ending in `suffix`.
fn temp_file_for(path: &Path, suffix: &str) -> Result<NamedTempFile, AtomicError> {
    let prefix = format!("{TEMP_PREFIX}{}-", name_of(path)?);
    builder(&prefix, suffix, 0o666)
        .tempfile_in(parent_of(path))
        .map_err(err(path))
}

/// A new empty temporary folder beside `path` (whose parent folders are
/// created if missing), named after it with `tag`.
fn temp_dir_for(path: &Path, tag: &str) -> Result<TempDir, AtomicError> {
    let parent = parent_of(path);
    std::fs::create_dir_all(parent).map_err(err(parent))?;
    let prefix = format!("{TEMP_PREFIX}{tag}{}-", name_of(path)?);
    builder(&prefix, "", 0o777)
        .tempdir_in(parent)
        .map_err(err(path))
}

/// Writes `bytes` to `path` atomically. The folder must exist.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), AtomicError> {
    let mut tmp = temp_file_for(path, "")?;
    tmp.write_all(bytes).map_err(err(path))?;
    tmp.persist(path)
        .map_err(|e| AtomicError::new(path, e.error))?;
    Ok(())
}

/// Lets `write` fill `path` through a buffered writer, then flushes it,
/// syncs it to disk and renames it into place. The folder must exist. A
/// failed `write` leaves `path` as it was and no temporary file behind.
pub fn write_file_with<E: From<AtomicError>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
) -> Result<(), E> {
    let (file, tmp_path) = temp_file_for(path, "")?.into_parts();
    let mut out = BufWriter::new(file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| err(path)(e.into_error()))?;
    file.sync_all().map_err(err(path))?;
    drop(file);
    tmp_path
        .persist(path)
        .map_err(|e| AtomicError::new(path, e.error))?;
    Ok(())
}

/// For writers that want a path rather than a writer (safetensors, image
/// encoders): `write` fills the temporary file at the path it is given,
/// whose name ends in `suffix` (an image encoder picks its format from the
/// extension), which is then renamed to `path`. The folder must exist.
pub fn write_file_at<E: From<AtomicError>>(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = temp_file_for(path, suffix)?.into_temp_path();
    write(&tmp)?;
    tmp.persist(path)
        .map_err(|e| AtomicError::new(path, e.error))?;
    Ok(())
}

/// Lets `fill` fill a new empty folder, then renames it to `path`,
/// replacing an existing `path` (see [`replace`]). The parent folders are
/// created if missing. A failed `fill` leaves `path` as it was and no
/// temporary folder behind.
pub fn write_dir<E: From<AtomicError>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let staged = StagedDir::new(path)?;
    fill(staged.path())?;
    staged.commit()?;
    Ok(())
}

/// A folder being built under a temporary name beside its final path, for
/// callers that do more between building and committing than
/// [`write_dir`] allows. Dropped without a commit, it is deleted.
#[derive(Debug)]
pub struct StagedDir {
    dir: TempDir,
    target: PathBuf,
}

impl StagedDir {
    /// A new empty folder beside `target`; `target`'s parent folders are
    /// created if missing.
    pub fn new(target: &Path) -> Result<Self, AtomicError> {
        Ok(StagedDir {
            dir: temp_dir_for(target, "")?,
            target: target.to_path_buf(),
        })
    }

    /// Where to build the folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the folder goes.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the folder to its target, replacing an existing one (see
    /// [`replace`]).
    pub fn commit(self) -> Result<(), AtomicError> {
        let StagedDir { dir, target } = self;
        replace(dir.path(), &target)?;
        // The folder now lives under the target's name: nothing to delete.
        let _ = dir.keep();
        Ok(())
    }

    /// Renames the folder to its target unless a non-empty folder holds that
    /// name already (another writer got there first): then this one is
    /// deleted and `false` returned, and the caller uses the other's.
    pub fn commit_unless_present(self) -> Result<bool, AtomicError> {
        let StagedDir { dir, target } = self;
        match std::fs::rename(dir.path(), &target) {
            Ok(()) => {
                let _ = dir.keep();
                Ok(true)
            }
            Err(_) if target.is_dir() => Ok(false),
            Err(e) => Err(AtomicError::new(&target, e)),
        }
    }
}

/// A new empty temporary folder in `dir`, deleted when dropped: for
/// several outputs built together and then each moved into place with
/// [`replace`].
pub fn temp_dir_in(dir: &Path) -> Result<TempDir, AtomicError> {
    builder(TEMP_PREFIX, "", 0o777)
        .tempdir_in(dir)
        .map_err(err(dir))
}

/// Renames `from` (a finished file or folder in the same file system) to
/// `to`. A file replaces a file in one rename; otherwise an existing `to`
/// is first moved aside to a temporary name beside
/// it and deleted once the new one is in place; if the rename fails it is
/// moved back. So `to` is never half written, and at every instant a
/// complete old or new copy exists (though, for a folder, for a moment
/// not under the name `to`).
pub fn replace(from: &Path, to: &Path) -> Result<(), AtomicError> {
    // A file replaces a file in one rename; anything else moves `to` aside.
    let aside = match std::fs::symlink_metadata(to) {
        Ok(meta) if meta.is_dir() || from.is_dir() => move_aside(to)?,
        _ => None,
    };
    if let Err(e) = std::fs::rename(from, to) {
        if let Some(aside) = &aside {
            let _ = std::fs::rename(aside.path(), to);
        }
        return Err(AtomicError::new(to, e));
    }
    if let Some(aside) = aside {
        // The new copy is in place; the old one is best deleted.
        let _ = aside.remove();
    }
    Ok(())
}

/// A file or folder moved aside by [`move_aside`]: deleted by
/// [`Aside::remove`], or, best effort, when dropped.
#[derive(Debug)]
pub struct Aside {
    dir: TempDir,
    path: PathBuf,
}

impl Aside {
    /// Where the old file or folder now is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes it.
    pub fn remove(self) -> Result<(), AtomicError> {
        let Aside { dir, path } = self;
        dir.close().map_err(err(&path))
    }
}

/// Moves `path` to a temporary name beside it, so that its name is free at
/// once while its contents are deleted later (readers that still have its
/// files open or mapped keep them). `None` when there is no `path`.
pub fn move_aside(path: &Path) -> Result<Option<Aside>, AtomicError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let dir = temp_dir_for(path, "old-")?;
    let old = dir.path().join(name_of(path)?);
    match std::fs::rename(path, &old) {
        Ok(()) => Ok(Some(Aside { dir, path: old })),
        // Someone else moved or deleted it in the meantime.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AtomicError::new(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The fields are read through `Debug`, in failed assertions.
    #[allow(dead_code)]
    #[derive(Debug)]
    enum TestError {
        Atomic(AtomicError),
        Io(io::Error),
        Failed,
    }

    impl From<io::Error> for TestError {
        fn from(e: io::Error) -> Self {
            TestError::Io(e)
        }
    }

    impl From<AtomicError> for TestError {
        fn from(e: AtomicError) -> Self {
            TestError::Atomic(e)
        }
    }

    #[test]
    fn writes_and_replaces_a_file_leaving_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_file(&path, b"one").unwrap();
        write_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["out.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_half_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.jsonl");
        write_file(&path, b"old\n").unwrap();
        let result = write_file_with(&path, |out| {
            out.write_all(b"half a line")?;
            out.flush()?;
            Err(TestError::Failed)
        });
        assert!(matches!(result, Err(TestError::Failed)), "{result:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
        assert_eq!(names(dir.path()), ["report.jsonl"]);

        let result = write_file_at(&path, ".png", |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(TestError::Failed)
        });
        assert!(matches!(result, Err(TestError::Failed)), "{result:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
        assert_eq!(names(dir.path()), ["report.jsonl"]);
    }

    #[test]
    fn the_writer_variants_write_through_a_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        write_file_at::<TestError>(&path, ".png", |tmp| {
            let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with(".tmp-plot.png-"), "{name}");
            assert!(name.ends_with(".png"), "{name}");
            assert!(!path.exists());
            std::fs::write(tmp, b"image").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"image");
        let lines = dir.path().join("lines.jsonl");
        write_file_with::<TestError>(&lines, |out| {
            writeln!(out, "{{}}")?;
            assert!(!lines.exists());
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&lines).unwrap(), b"{}\n");
        assert_eq!(names(dir.path()), ["lines.jsonl", "plot.png"]);
    }

    #[cfg(unix)]
    #[test]
    fn outputs_get_the_usual_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        write_file(&file, b"x").unwrap();
        let folder = dir.path().join("d");
        write_dir::<AtomicError>(&folder, |_| Ok(())).unwrap();
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("plain-dir")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), mode(&dir.path().join("plain")));
        assert_eq!(mode(&folder), mode(&dir.path().join("plain-dir")));
    }

    #[test]
    fn a_file_write_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("out.json");
        let error = write_file(&path, b"x").unwrap_err();
        assert_eq!(error.path, path);
        assert!(error.to_string().starts_with(&path.display().to_string()));
    }

    #[test]
    fn a_folder_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested").join("model");
        write_dir::<AtomicError>(&out, |tmp| {
            std::fs::write(tmp.join("weights"), b"old").unwrap();
            std::fs::write(tmp.join("stale"), b"old").unwrap();
            Ok(())
        })
        .unwrap();
        write_dir::<AtomicError>(&out, |tmp| {
            let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with(".tmp-model-"), "{name}");
            // The old folder stays whole while the new one is built.
            assert_eq!(std::fs::read(out.join("weights")).unwrap(), b"old");
            std::fs::write(tmp.join("weights"), b"new").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(names(&out), ["weights"]);
        assert_eq!(std::fs::read(out.join("weights")).unwrap(), b"new");
        assert_eq!(names(&dir.path().join("nested")), ["model"]);
    }

    #[test]
    fn a_failed_folder_write_keeps_the_old_folder_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cache");
        write_dir::<AtomicError>(&out, |tmp| {
            std::fs::write(tmp.join("a"), b"old").unwrap();
            Ok(())
        })
        .unwrap();
        let result = write_dir(&out, |tmp| {
            std::fs::write(tmp.join("a"), b"half").unwrap();
            Err(TestError::Failed)
        });
        assert!(matches!(result, Err(TestError::Failed)), "{result:?}");
        assert_eq!(std::fs::read(out.join("a")).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["cache"]);
    }

    #[test]
    fn a_failed_rename_puts_the_old_folder_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("a"), b"old").unwrap();
        let error = replace(&dir.path().join("does-not-exist"), &out).unwrap_err();
        assert_eq!(error.path, out);
        assert_eq!(std::fs::read(out.join("a")).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out"]);
    }

    #[test]
    fn the_first_of_two_staged_folders_wins_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("key");
        let first = StagedDir::new(&out).unwrap();
        let second = StagedDir::new(&out).unwrap();
        assert_ne!(first.path(), second.path());
        std::fs::write(first.path().join("f"), b"first").unwrap();
        std::fs::write(second.path().join("f"), b"second").unwrap();
        assert!(first.commit_unless_present().unwrap());
        assert!(!second.commit_unless_present().unwrap());
        assert_eq!(std::fs::read(out.join("f")).unwrap(), b"first");
        assert_eq!(names(dir.path()), ["key"]);
    }

    #[test]
    fn an_uncommitted_staged_folder_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let staged = StagedDir::new(&dir.path().join("out")).unwrap();
        std::fs::write(staged.path().join("f"), b"x").unwrap();
        assert!(is_temporary(
            &staged.path().file_name().unwrap().to_string_lossy()
        ));
        drop(staged);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn moving_aside_frees_the_name_and_removing_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("old");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("f"), b"x").unwrap();
        let aside = move_aside(&out).unwrap().unwrap();
        assert!(!out.exists());
        assert_eq!(std::fs::read(aside.path().join("f")).unwrap(), b"x");
        aside.remove().unwrap();
        assert!(names(dir.path()).is_empty());
        assert!(move_aside(&out).unwrap().is_none());
    }
}
