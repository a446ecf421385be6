//! `--set key.path=value` overrides of TOML configs, shared by every config-driven command.

use anyhow::{anyhow, bail, Result};
use serde::de::DeserializeOwned;

/// Apply `key.path=value` to a TOML table; the value is parsed as TOML, else taken as a string.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, raw) = spec.split_once('=').ok_or_else(|| anyhow!("--set `{spec}`: expected key=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.is_empty()) {
        bail!("--set `{spec}`: invalid key `{key}`");
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap(),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for (i, p) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set `{spec}`: `{}` is not a table", parts[..=i].join(".")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Parse TOML text into a config type, then apply `--set` overrides; errors name `origin` (a file
/// path or a built-in config) and, for the text alone, its line and column.
pub fn parse_with_overrides<T: DeserializeOwned>(origin: &str, text: &str, sets: &[String]) -> Result<T> {
    // Parse the text alone first so errors carry its line and column.
    let base: T = toml::from_str(text).map_err(|e| anyhow!("{origin}: {e}"))?;
    if sets.is_empty() {
        return Ok(base);
    }
    let mut table: toml::Table = toml::from_str(text).map_err(|e| anyhow!("{origin}: {e}"))?;
    for s in sets {
        apply_override(&mut table, s)?;
    }
    T::deserialize(toml::Value::Table(table)).map_err(|e| anyhow!("{origin} with --set {}: {e}", sets.join(" ")))
}
