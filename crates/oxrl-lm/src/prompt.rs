//! Turning task text into token ids: `[BOS] prompt [SEP]` for prompts and `response [EOS]` for
//! demonstrations, with whichever of BOS/SEP the tokenizer has.

use crate::tokenizer::Tokenizer;
use anyhow::Result;

pub fn encode_prompt(tok: &dyn Tokenizer, text: &str) -> Result<Vec<u32>> {
    let mut ids = Vec::with_capacity(text.len() + 2);
    ids.extend(tok.bos_id());
    ids.extend(tok.encode(text)?);
    ids.extend(tok.sep_id());
    anyhow::ensure!(!ids.is_empty(), "prompt {text:?} encodes to no tokens");
    Ok(ids)
}

pub fn encode_response(tok: &dyn Tokenizer, text: &str) -> Result<Vec<u32>> {
    let mut ids = tok.encode(text)?;
    ids.push(tok.eos_id());
    Ok(ids)
}

/// Decode generated ids to text, stopping at the first end-of-sequence token.
pub fn decode_response(tok: &dyn Tokenizer, ids: &[u32]) -> Result<String> {
    let end = ids.iter().position(|&t| t == tok.eos_id()).unwrap_or(ids.len());
    tok.decode(&ids[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CharTokenizer;

    #[test]
    fn char_format() -> Result<()> {
        let t = CharTokenizer::new();
        let p = encode_prompt(&t, "1+2=")?;
        assert_eq!(p.first(), Some(&1));
        assert_eq!(p.last(), Some(&3));
        assert_eq!(p.len(), 6);
        let r = encode_response(&t, "answer: 3")?;
        assert_eq!(r.last(), Some(&2));
        assert_eq!(decode_response(&t, &r)?, "answer: 3");
        let mut more = r.clone();
        more.extend(t.encode("junk")?);
        assert_eq!(decode_response(&t, &more)?, "answer: 3");
        Ok(())
    }
}
