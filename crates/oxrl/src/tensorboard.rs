//! TensorBoard event files (`events.out.tfevents.*`): TFRecord framing (length, masked CRC-32C,
//! payload, masked CRC-32C) around hand-encoded `Event` protobufs holding scalar summaries. Written
//! directly so the binary needs no protobuf toolchain.

use anyhow::Result;
use std::io::Write;
use std::path::Path;

/// CRC-32C (Castagnoli), bitwise.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field as u64) << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 | summary = 5 }.
fn event(wall_time: f64, step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = Vec::new();
    e.push((1 << 3) | 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e);
    varint(step as u64, &mut e);
    body(&mut e);
    e
}

pub struct EventWriter {
    file: std::io::BufWriter<std::fs::File>,
}

impl EventWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let path = dir.join(format!("events.out.tfevents.{now}.oxrl"));
        let mut w = Self { file: std::io::BufWriter::new(std::fs::File::create(path)?) };
        let e = event(now as f64, 0, |e| field_bytes(3, b"brain.Event:2", e));
        w.record(&e)?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.file.write_all(&len)?;
        self.file.write_all(&masked_crc(&len).to_le_bytes())?;
        self.file.write_all(data)?;
        self.file.write_all(&masked_crc(data).to_le_bytes())?;
        Ok(())
    }

    /// Write scalars for one step (Summary { value = 1 { tag = 1, simple_value = 2 (float) } }).
    pub fn scalars(&mut self, step: u64, values: &[(String, f64)]) -> Result<()> {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
        let mut summary = Vec::new();
        for (tag, v) in values {
            let mut val = Vec::new();
            field_bytes(1, tag.as_bytes(), &mut val);
            val.push((2 << 3) | 5);
            val.extend_from_slice(&(*v as f32).to_le_bytes());
            field_bytes(1, &val, &mut summary);
        }
        let e = event(wall, step as i64, |e| field_bytes(5, &summary, e));
        self.record(&e)?;
        self.file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_vectors_and_framing() -> Result<()> {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        let d = tempfile::tempdir()?;
        let mut w = EventWriter::create(d.path())?;
        w.scalars(3, &[("reward/mean".into(), 0.5)])?;
        drop(w);
        let f = std::fs::read_dir(d.path())?.next().unwrap()?.path();
        let bytes = std::fs::read(f)?;
        // walk the records, checking both CRCs
        let mut i = 0;
        let mut n = 0;
        while i < bytes.len() {
            let len_bytes = &bytes[i..i + 8];
            let len = u64::from_le_bytes(len_bytes.try_into()?) as usize;
            assert_eq!(u32::from_le_bytes(bytes[i + 8..i + 12].try_into()?), masked_crc(len_bytes));
            let data = &bytes[i + 12..i + 12 + len];
            assert_eq!(u32::from_le_bytes(bytes[i + 12 + len..i + 16 + len].try_into()?), masked_crc(data));
            i += 16 + len;
            n += 1;
        }
        assert_eq!(n, 2);
        assert!(bytes.windows(11).any(|w| w == b"reward/mean"));
        Ok(())
    }
}
