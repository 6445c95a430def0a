//! Outputs are written to a temporary sibling and renamed into place, so a
//! crash never leaves a half-written file that looks complete.

use std::path::Path;

use crate::error::{Result, TrainError};

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Lets `write` fill a temporary file (given its path) in `path`'s folder,
/// then renames it to `path`.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    write_with_suffix(path, "", write)
}

/// As [`write_with`], with the temporary file named `*suffix`: for writers
/// that pick the format from the extension (image encoders).
pub fn write_with_suffix(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = parent_of(path);
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| TrainError::io(dir, e))?;
    write(tmp.path())?;
    make_shareable(tmp.path(), 0o644)?;
    tmp.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| TrainError::io(tmp, e))
    })
}

/// Temporary files and folders are created private (0600 / 0700); outputs
/// get the usual permissions before they are renamed into place.
pub(crate) fn make_shareable(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| TrainError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
