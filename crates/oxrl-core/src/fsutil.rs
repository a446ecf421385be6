//! Atomic file and directory writes: write to a temporary name beside the target, then rename, so a
//! reader never sees a half-written file.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

fn tmp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| std::fs::write(tmp, bytes).map_err(Into::into))
}

/// Produce `path` atomically with a writer that fills the given temporary path.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let tmp = tmp_name(path);
    let res = write(&tmp)
        .and_then(|_| std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display())));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("writing {}", path.display()))
}

/// Build a directory atomically: `fill` writes into a temporary sibling directory, which is then
/// renamed to `dir` (replacing an existing `dir`).
pub fn write_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = tmp_name(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("writing {}", dir.display())));
    }
    if dir.exists() {
        let old = dir.with_file_name(format!(
            ".{}.old-{}",
            dir.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        std::fs::rename(dir, &old)?;
        std::fs::rename(&tmp, dir)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&tmp, dir).with_context(|| format!("renaming into {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporaries() -> Result<()> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("a/b.txt");
        write_atomic(&p, b"hello")?;
        assert_eq!(std::fs::read_to_string(&p)?, "hello");
        let err = write_atomic_with(&d.path().join("c.txt"), |_| anyhow::bail!("boom"));
        assert!(err.is_err());
        assert!(!d.path().join("c.txt").exists());
        let dir = d.path().join("ck");
        write_dir_atomic(&dir, |t| write_atomic(&t.join("x"), b"1"))?;
        write_dir_atomic(&dir, |t| write_atomic(&t.join("y"), b"2"))?;
        assert!(!dir.join("x").exists() && dir.join("y").exists());
        assert!(write_dir_atomic(&d.path().join("bad"), |_| anyhow::bail!("no")).is_err());
        assert!(!d.path().join("bad").exists());
        let names: Vec<_> = std::fs::read_dir(d.path())?.map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}"); // `a` and `ck`, nothing temporary
        Ok(())
    }
}
