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
    /// Every id that ends a generation (the end-of-sequence id and any others the model's
    /// config lists, e.g. `<|eot_id|>`).
    fn stop_ids(&self) -> Vec<u32> {
        vec![self.eos_id()]
    }
    /// The chat template prompts are rendered through, when chat formatting is on.
    fn chat(&self) -> Option<&crate::chat::ChatTemplate> {
        None
    }
    /// The tokenizer's chat template whether or not chat formatting is on.
    fn chat_template(&self) -> Option<&crate::chat::ChatTemplate> {
        None
    }
    /// Turn chat formatting of prompts on (with an optional system message) or off.
    fn set_chat(&mut self, on: bool, system: Option<String>) -> Result<()> {
        let _ = system;
        if on {
            bail!("the {} tokenizer has no chat template (tokenizer_config.json `chat_template`)", self.kind());
        }
        Ok(())
    }
    /// `tokenizer_config.json` to write beside `tokenizer.json`.
    fn tokenizer_config(&self) -> Result<serde_json::Value> {
        let name = |id: Option<u32>| -> Result<serde_json::Value> {
            Ok(match id {
                Some(i) => json!(self.decode_special(i)?),
                None => serde_json::Value::Null,
            })
        };
        Ok(json!({
            "bos_token": name(self.bos_id())?,
            "eos_token": name(Some(self.eos_id()))?,
            "pad_token": name(Some(self.pad_id()))?,
            "add_bos_token": false,
            "clean_up_tokenization_spaces": false,
            "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }))
    }
    /// The text of a token, special tokens included.
    fn decode_special(&self, id: u32) -> Result<String>;
    /// A plain (non-chat) prompt: `[BOS] text [SEP]` with whichever of BOS/SEP the tokenizer
    /// has. Hugging Face tokenizers add their own special tokens instead (their post-processor,
    /// as `add_special_tokens=True` does in `transformers`).
    fn encode_prompt_text(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() + 2);
        ids.extend(self.bos_id());
        ids.extend(self.encode(text)?);
        ids.extend(self.sep_id());
        Ok(ids)
    }
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
    fn decode_special(&self, id: u32) -> Result<String> {
        match id {
            0..=3 => Ok(CHAR_SPECIALS[id as usize].to_string()),
            _ => self.decode(&[id]),
        }
    }
}

/// A Hugging Face tokenizer loaded from `tokenizer.json`, with the special tokens and chat
/// template of `tokenizer_config.json` when the directory has one.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: u32,
    pad: u32,
    stops: Vec<u32>,
    config: Option<serde_json::Value>,
    template: Option<crate::chat::ChatTemplate>,
    chat_on: bool,
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
        Ok(Self { inner, bos, eos, pad, stops: vec![eos], config: None, template: None, chat_on: false })
    }

    /// Load a model directory's tokenizer: `tokenizer.json`, then `tokenizer_config.json`'s
    /// special tokens and chat template. `config_eos` are the end-of-sequence ids of
    /// `config.json` / `generation_config.json`: all of them stop generation; the
    /// tokenizer config's `eos_token` (else the first of them) is the one appended to
    /// demonstrations.
    pub fn from_dir(dir: &Path, config_eos: &[u32]) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        if !tj.exists() {
            bail!("{}: missing tokenizer.json", dir.display());
        }
        let cpath = dir.join("tokenizer_config.json");
        let config: Option<serde_json::Value> = match std::fs::read_to_string(&cpath) {
            Ok(text) => {
                Some(serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", cpath.display()))?)
            }
            Err(_) => None,
        };
        let inner = tokenizers::Tokenizer::from_file(&tj)
            .map_err(|e| anyhow!("{}: not a valid tokenizer.json: {e}", tj.display()))?;
        let id_of = |key: &str| -> Result<Option<u32>> {
            let Some(name) = config.as_ref().and_then(|c| crate::chat::special_token(c.get(key))) else {
                return Ok(None);
            };
            inner
                .token_to_id(&name)
                .map(Some)
                .with_context(|| format!("{}: `{key}` = {name:?} is not in tokenizer.json", cpath.display()))
        };
        let eos = id_of("eos_token")?.or(config_eos.first().copied());
        let mut t = Self::from_file(&tj, eos, id_of("bos_token")?, id_of("pad_token")?)?;
        for &e in config_eos {
            if !t.stops.contains(&e) {
                t.stops.push(e);
            }
        }
        t.template = crate::chat::ChatTemplate::from_dir(dir, config.as_ref())?;
        t.config = config;
        Ok(t)
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
    fn stop_ids(&self) -> Vec<u32> {
        self.stops.clone()
    }
    fn chat(&self) -> Option<&crate::chat::ChatTemplate> {
        self.template.as_ref().filter(|_| self.chat_on)
    }
    fn chat_template(&self) -> Option<&crate::chat::ChatTemplate> {
        self.template.as_ref()
    }
    fn set_chat(&mut self, on: bool, system: Option<String>) -> Result<()> {
        match &mut self.template {
            Some(t) => {
                t.system = system;
                self.chat_on = on;
                Ok(())
            }
            None if on => bail!("this tokenizer has no chat template (tokenizer_config.json `chat_template`)"),
            None => Ok(()),
        }
    }
    fn tokenizer_config(&self) -> Result<serde_json::Value> {
        match &self.config {
            Some(c) => Ok(c.clone()),
            None => {
                let name = |id: Option<u32>| {
                    id.and_then(|i| self.inner.id_to_token(i)).map(|s| json!(s)).unwrap_or(serde_json::Value::Null)
                };
                Ok(json!({
                    "bos_token": name(self.bos), "eos_token": name(Some(self.eos)), "pad_token": name(Some(self.pad)),
                    "add_bos_token": false, "clean_up_tokenization_spaces": false,
                    "tokenizer_class": "PreTrainedTokenizerFast",
                }))
            }
        }
    }
    fn decode_special(&self, id: u32) -> Result<String> {
        self.inner.id_to_token(id).with_context(|| format!("token id {id} is not in the vocabulary"))
    }
    fn encode_prompt_text(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, true).map_err(|e| anyhow!("tokenizer: {e}"))?.get_ids().to_vec())
    }
}

/// Load the tokenizer stored in a checkpoint or model directory: the built-in char tokenizer when
/// `kind` is "char", else `tokenizer.json` (+ `tokenizer_config.json`).
pub fn load_from_dir(dir: &Path, kind: &str, eos: &[u32]) -> Result<Box<dyn Tokenizer>> {
    if kind == "char" {
        return Ok(Box::new(CharTokenizer::new()));
    }
    Ok(Box::new(HfTokenizer::from_dir(dir, eos)?))
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
