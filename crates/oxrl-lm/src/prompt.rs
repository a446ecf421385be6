//! Turning task text into token ids: `[BOS] prompt [SEP]` for prompts (Hugging Face tokenizers:
//! their own special tokens) and `response [EOS]` for demonstrations. With chat formatting on, the
//! prompt is the chat template's rendering of a user turn (plus the generation prompt), and the
//! response ends with the template's end-of-turn token (the tokenizer's end-of-sequence).

use crate::tokenizer::Tokenizer;
use anyhow::Result;

pub fn encode_prompt(tok: &dyn Tokenizer, text: &str) -> Result<Vec<u32>> {
    if let Some(chat) = tok.chat() {
        let ids = tok.encode(&chat.prompt(text)?)?;
        anyhow::ensure!(!ids.is_empty(), "prompt {text:?} encodes to no tokens");
        return Ok(ids);
    }
    let ids = tok.encode_prompt_text(text)?;
    anyhow::ensure!(!ids.is_empty(), "prompt {text:?} encodes to no tokens");
    Ok(ids)
}

/// A chat conversation (ending with a user turn) through the chat template with the generation
/// prompt; the configured system message is put first when the conversation has none.
pub fn encode_messages(tok: &dyn Tokenizer, messages: &[crate::chat::ChatMessage]) -> Result<Vec<u32>> {
    let t = tok.chat().or(tok.chat_template()).ok_or_else(|| {
        anyhow::anyhow!(
            "the data has chat messages but the tokenizer has no chat template (tokenizer_config.json `chat_template`)"
        )
    })?;
    let mut msgs = Vec::with_capacity(messages.len() + 1);
    if let (Some(s), false) = (&t.system, messages.first().is_some_and(|m| m.role == "system")) {
        msgs.push(crate::chat::ChatMessage::new("system", s));
    }
    msgs.extend_from_slice(messages);
    let ids = tok.encode(&t.render(&msgs, true)?)?;
    anyhow::ensure!(!ids.is_empty(), "the conversation encodes to no tokens");
    Ok(ids)
}

pub fn encode_response(tok: &dyn Tokenizer, text: &str) -> Result<Vec<u32>> {
    let mut ids = tok.encode(text)?;
    ids.push(tok.eos_id());
    Ok(ids)
}

/// Decode generated ids to text, stopping at the first stop token.
pub fn decode_response(tok: &dyn Tokenizer, ids: &[u32]) -> Result<String> {
    let stops = tok.stop_ids();
    let end = ids.iter().position(|t| stops.contains(t)).unwrap_or(ids.len());
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
