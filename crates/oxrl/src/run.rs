//! Run folders: `runs/<name>/` with the resolved `config.toml`, `metrics.jsonl` (one JSON object
//! per line, flushed as written) and `checkpoints/`.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct RunDir {
    pub path: PathBuf,
    metrics: std::io::BufWriter<std::fs::File>,
}

impl RunDir {
    /// Create the run folder: `out` if given (it must not already hold a run), else `runs/<name>`,
    /// suffixed `-2`, `-3`, … when that exists.
    pub fn create(out: Option<&Path>, name: &str) -> Result<Self> {
        let path = match out {
            Some(p) => {
                if p.join("metrics.jsonl").exists() {
                    bail!("{}: already holds a run (metrics.jsonl exists); choose another --out", p.display());
                }
                p.to_path_buf()
            }
            None => {
                let base = Path::new("runs").join(name);
                let mut p = base.clone();
                let mut i = 2;
                while p.exists() {
                    p = PathBuf::from(format!("{}-{i}", base.display()));
                    i += 1;
                }
                p
            }
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let f = std::fs::File::create(path.join("metrics.jsonl"))
            .with_context(|| format!("creating {}", path.join("metrics.jsonl").display()))?;
        Ok(Self { path, metrics: std::io::BufWriter::new(f) })
    }

    /// Reopen an existing run folder to append metrics (resume).
    pub fn append(path: &Path) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(path.join("metrics.jsonl"))
            .with_context(|| format!("{}: cannot open metrics.jsonl", path.display()))?;
        Ok(Self { path: path.to_path_buf(), metrics: std::io::BufWriter::new(f) })
    }

    pub fn write_config(&self, toml_text: &str) -> Result<()> {
        oxrl_lm::fsutil::write_atomic(&self.path.join("config.toml"), toml_text.as_bytes())
    }

    /// Append one metrics record.
    pub fn log(&mut self, record: &serde_json::Value) -> Result<()> {
        serde_json::to_writer(&mut self.metrics, record)?;
        self.metrics.write_all(b"\n")?;
        self.metrics.flush()?;
        Ok(())
    }

    pub fn checkpoint_dir(&self, label: &str) -> PathBuf {
        self.path.join("checkpoints").join(label)
    }
}
