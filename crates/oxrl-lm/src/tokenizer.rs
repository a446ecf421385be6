//! Tokenizers behind one trait: a built-in character-level tokenizer for the synthetic tasks and
//! Hugging Face `tokenizer.json` files through the `tokenizers` crate.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::path::Path;

pub trait Tokenizer: Send + Sync {
    /// Encode text without adding special tokens.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Decode ids, skipping special tokens.
    fn decode(&self, ids: &[u32]) -> Result<String>;
    fn vocab_size(&self) -> usize;
    fn bos_id(&self) -> Option<u32>;
    fn eos_id(&self) -> u32;
    fn pad_id(&self) -> u32;
    /// Separator between prompt and response, if the tokenizer has one.
    fn sep_id(&self) -> Option<u32>;
    /// The tokenizer as a Hugging Face `tokenizer.json` document.
    fn to_hf_json(&self) -> Result<String>;
    /// Short name stored in checkpoints ("char" or "hf").
    fn kind(&self) -> &'static str;
}

/// Character-level tokenizer: `<pad>`=0, `<bos>`=1, `<eos>`=2, `<sep>`=3, then `\n` and the 95
/// printable ASCII characters. Unknown characters are an error, never silently dropped.
#[derive(Debug, Clone, Default)]
pub struct CharTokenizer;

pub const CHAR_SPECIALS: [&str; 4] = ["<pad>", "<bos>", "<eos>", "<sep>"];

impl CharTokenizer {
    pub fn new() -> Self {
        Self
    }
    fn chars() -> impl Iterator<Item = char> {
        std::iter::once('\n').chain(' '..='~')
    }
    fn char_id(c: char) -> Option<u32> {
        match c {
            '\n' => Some(4),
            ' '..='~' => Some(5 + (c as u32 - ' ' as u32)),
            _ => None,
        }
    }
}

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|c| Self::char_id(c).ok_or_else(|| anyhow!("character {c:?} is not in the built-in char vocabulary")))
            .collect()
    }
    fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut s = String::with_capacity(ids.len());
        for &id in ids {
            match id {
                0..=3 => {}
                4 => s.push('\n'),
                5..=99 => s.push(char::from_u32(' ' as u32 + id - 5).unwrap()),
                _ => bail!("token id {id} is out of the char vocabulary (size 100)"),
            }
        }
        Ok(s)
    }
    fn vocab_size(&self) -> usize {
        100
    }
    fn bos_id(&self) -> Option<u32> {
        Some(1)
    }
    fn eos_id(&self) -> u32 {
        2
    }
    fn pad_id(&self) -> u32 {
        0
    }
    fn sep_id(&self) -> Option<u32> {
        Some(3)
    }
    /// A BPE model with single-character vocabulary and no merges plus a `Fuse` decoder: any HF
    /// tokenizers implementation reproduces this tokenizer exactly.
    fn to_hf_json(&self) -> Result<String> {
        let mut vocab = serde_json::Map::new();
        for (i, s) in CHAR_SPECIALS.iter().enumerate() {
            vocab.insert(s.to_string(), json!(i));
        }
        for c in Self::chars() {
            vocab.insert(c.to_string(), json!(Self::char_id(c).unwrap()));
        }
        let added: Vec<_> = CHAR_SPECIALS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": false, "special": true})
            })
            .collect();
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": null, "pre_tokenizer": null, "post_processor": null,
            "decoder": {"type": "Fuse"},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocab, "merges": []}
        });
        Ok(serde_json::to_string_pretty(&doc)?)
    }
    fn kind(&self) -> &'static str {
        "char"
    }
}

/// A Hugging Face tokenizer loaded from `tokenizer.json`.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: u32,
    pad: u32,
}

const EOS_NAMES: [&str; 6] = ["<|endoftext|>", "<|im_end|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>"];
const BOS_NAMES: [&str; 4] = ["<s>", "<bos>", "<|begin_of_text|>", "<|startoftext|>"];
const PAD_NAMES: [&str; 3] = ["<pad>", "<|pad|>", "[PAD]"];

impl HfTokenizer {
    /// Load a `tokenizer.json`. End-of-sequence, beginning and padding tokens are found by their
    /// usual names unless given; padding falls back to end-of-sequence.
    pub fn from_file(path: &Path, eos: Option<u32>, bos: Option<u32>, pad: Option<u32>) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("{}: not a valid tokenizer.json: {e}", path.display()))?;
        let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let eos = eos.or_else(|| find(&EOS_NAMES)).with_context(|| {
            format!("{}: no end-of-sequence token found (looked for {EOS_NAMES:?})", path.display())
        })?;
        let bos = bos.or_else(|| find(&BOS_NAMES));
        let pad = pad.or_else(|| find(&PAD_NAMES)).unwrap_or(eos);
        Ok(Self { inner, bos, eos, pad })
    }
}

impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, false).map_err(|e| anyhow!("tokenizer: {e}"))?.get_ids().to_vec())
    }
    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| anyhow!("tokenizer: {e}"))
    }
    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
    fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    fn eos_id(&self) -> u32 {
        self.eos
    }
    fn pad_id(&self) -> u32 {
        self.pad
    }
    fn sep_id(&self) -> Option<u32> {
        None
    }
    fn to_hf_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(|e| anyhow!("tokenizer: {e}"))
    }
    fn kind(&self) -> &'static str {
        "hf"
    }
}

/// Load the tokenizer stored in a checkpoint or model directory: the built-in char tokenizer when
/// `kind` is "char", else `tokenizer.json`.
pub fn load_from_dir(dir: &Path, kind: &str, eos: Option<u32>) -> Result<Box<dyn Tokenizer>> {
    if kind == "char" {
        return Ok(Box::new(CharTokenizer::new()));
    }
    let p = dir.join("tokenizer.json");
    if !p.exists() {
        bail!("{}: missing tokenizer.json", dir.display());
    }
    Ok(Box::new(HfTokenizer::from_file(&p, eos, None, None)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRICKY: [&str; 5] = ["347+285=", "step1: 3*4=12\nanswer: -7", "  spaces  ", "~!@#$%^&*()_+{}|:\"<>?", ""];

    #[test]
    fn char_round_trip() -> Result<()> {
        let t = CharTokenizer::new();
        for s in TRICKY {
            let ids = t.encode(s)?;
            assert_eq!(ids.len(), s.len());
            assert!(ids.iter().all(|&i| (4..100).contains(&i)));
            assert_eq!(t.decode(&ids)?, s);
        }
        // specials are skipped on decode
        let mut ids = vec![1];
        ids.extend(t.encode("12")?);
        ids.extend([3, 2, 0]);
        assert_eq!(t.decode(&ids)?, "12");
        assert!(t.encode("é").unwrap_err().to_string().contains("not in the built-in char vocabulary"));
        assert!(t.decode(&[100]).is_err());
        Ok(())
    }

    #[test]
    fn hf_tokenizer_json_written_by_test_matches_char() -> Result<()> {
        let d = tempfile::tempdir()?;
        let t = CharTokenizer::new();
        let p = d.path().join("tokenizer.json");
        std::fs::write(&p, t.to_hf_json()?)?;
        let hf = HfTokenizer::from_file(&p, None, None, None)?;
        assert_eq!(hf.vocab_size(), 100);
        assert_eq!(hf.eos_id(), 2);
        assert_eq!(hf.bos_id(), Some(1));
        assert_eq!(hf.pad_id(), 0);
        for s in TRICKY {
            assert_eq!(hf.encode(s)?, t.encode(s)?, "{s:?}");
            assert_eq!(hf.decode(&t.encode(s)?)?, s);
        }
        // special tokens in text are recognised as one id
        assert_eq!(hf.encode("1<eos>")?, vec![t.encode("1")?[0], 2]);
        // round trip through the crate's own serialisation
        let p2 = d.path().join("again.json");
        std::fs::write(&p2, hf.to_hf_json()?)?;
        let hf2 = HfTokenizer::from_file(&p2, None, None, None)?;
        assert_eq!(hf2.encode("a+b")?, hf.encode("a+b")?);
        Ok(())
    }

    #[test]
    fn hf_bpe_with_merges() -> Result<()> {
        // A small byte-level-free BPE with merges and a whitespace pre-tokenizer.
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
            "decoder": {"type": "BPEDecoder", "suffix": "</w>"},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": {"<|endoftext|>": 0, "h": 1, "e": 2, "l": 3, "o": 4, "he": 5, "ll": 6, "o</w>": 7,
                                "llo</w>": 8, "hello</w>": 9, "w": 10, "r": 11, "d</w>": 12, "wo": 13},
                      "merges": ["h e", "l l", "ll o</w>", "he llo</w>", "w o"]}
        });
        let d = tempfile::tempdir()?;
        let p = d.path().join("tokenizer.json");
        std::fs::write(&p, doc.to_string())?;
        let hf = HfTokenizer::from_file(&p, None, None, None)?;
        assert_eq!(hf.encode("hello")?, vec![9]);
        assert_eq!(hf.eos_id(), 0);
        assert_eq!(hf.pad_id(), 0);
        assert_eq!(hf.decode(&[9, 0])?, "hello");
        std::fs::write(&p, "{not json")?;
        assert!(HfTokenizer::from_file(&p, None, None, None).err().unwrap().to_string().contains("tokenizer.json"));
        Ok(())
    }
}
