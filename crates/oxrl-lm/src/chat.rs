//! Chat templates: the Jinja `chat_template` of a Hugging Face `tokenizer_config.json` (or
//! `chat_template.jinja`) rendered with minijinja the way `transformers` renders it
//! (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, Python string methods),
//! with `messages`, `add_generation_prompt` and the special-token strings in the context.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// A chat template with the special-token strings it may reference.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    pub source: String,
    pub bos_token: String,
    pub eos_token: String,
    pub pad_token: String,
    /// System message put first when a prompt is rendered from plain text.
    pub system: Option<String>,
}

/// A special token in `tokenizer_config.json`: a string or `{"content": …}`.
pub fn special_token(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

impl ChatTemplate {
    /// The template of a model directory: `chat_template.jinja`, else `chat_template` of
    /// `tokenizer_config.json` (a string, or a list of `{name, template}` where "default" wins).
    /// None when the directory has no template.
    pub fn from_dir(dir: &Path, tokenizer_config: Option<&serde_json::Value>) -> Result<Option<Self>> {
        let jinja = dir.join("chat_template.jinja");
        let source = if jinja.exists() {
            Some(std::fs::read_to_string(&jinja).with_context(|| format!("reading {}", jinja.display()))?)
        } else {
            match tokenizer_config.and_then(|c| c.get("chat_template")) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Array(list)) => {
                    let pick = |name: &str| {
                        list.iter()
                            .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))
                            .and_then(|e| e.get("template")?.as_str().map(String::from))
                    };
                    Some(
                        pick("default")
                            .or_else(|| list.first().and_then(|e| e.get("template")?.as_str().map(String::from)))
                            .with_context(|| format!("{}: `chat_template` list has no template", dir.display()))?,
                    )
                }
                Some(_) => bail!("{}: `chat_template` must be a string or a list", dir.display()),
            }
        };
        let Some(source) = source else { return Ok(None) };
        let tok = |k: &str| tokenizer_config.and_then(|c| special_token(c.get(k))).unwrap_or_default();
        let t = Self {
            source,
            bos_token: tok("bos_token"),
            eos_token: tok("eos_token"),
            pad_token: tok("pad_token"),
            system: None,
        };
        t.render(&[ChatMessage::new("user", "hi")], true)
            .with_context(|| format!("{}: the chat template does not render", dir.display()))?;
        Ok(Some(t))
    }

    /// Render a conversation.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        // Deterministic by design: templates that print today's date get a fixed one.
        env.add_function("strftime_now", |_fmt: String| "26 Jul 2024".to_string());
        env.add_template("chat", &self.source).map_err(|e| anyhow!("chat template does not parse: {e}"))?;
        let tmpl = env.get_template("chat").map_err(|e| anyhow!("{e}"))?;
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
            pad_token => self.pad_token,
        };
        tmpl.render(ctx).map_err(|e| anyhow!("chat template: {e:#}"))
    }

    /// The prompt for a plain-text user turn (after the optional system message), ending with
    /// the generation prompt.
    pub fn prompt(&self, user: &str) -> Result<String> {
        let mut msgs = Vec::new();
        if let Some(s) = &self.system {
            msgs.push(ChatMessage::new("system", s));
        }
        msgs.push(ChatMessage::new("user", user));
        self.render(&msgs, true)
    }
}

/// The ChatML template of Qwen2.5-Instruct (with its default system message), used by tests and
/// as the template written for the built-in tokenizer's checkpoints.
pub const CHATML: &str = "{%- for message in messages %}{%- if loop.first and messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: &str) -> ChatTemplate {
        ChatTemplate {
            source: src.into(),
            bos_token: "<s>".into(),
            eos_token: "</s>".into(),
            pad_token: String::new(),
            system: None,
        }
    }

    #[test]
    fn chatml_renders_exactly() -> Result<()> {
        let c = t(CHATML);
        let out = c.render(&[ChatMessage::new("user", "2+2?")], true)?;
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
        let conv = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "hi"),
            ChatMessage::new("assistant", "hello"),
        ];
        assert_eq!(
            c.render(&conv, false)?,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
        );
        Ok(())
    }

    #[test]
    fn jinja_features_hf_templates_use() -> Result<()> {
        // trim_blocks / lstrip_blocks, bos_token, python string methods, raise_exception.
        let src = "{{ bos_token }}{% for m in messages %}\n  {% if m.role == 'user' %}\n[INST] {{ m.content.strip() }} [/INST]\n  {% else %}\n{{ m.content }}{{ eos_token }}\n  {% endif %}\n{% endfor %}";
        let out = t(src).render(&[ChatMessage::new("user", "  hi  "), ChatMessage::new("assistant", "yo")], false)?;
        assert_eq!(out, "<s>[INST] hi [/INST]\nyo</s>\n");
        let err = t("{{ raise_exception('roles must alternate') }}").render(&[], false).unwrap_err();
        assert!(format!("{err:#}").contains("roles must alternate"), "{err:#}");
        assert!(t("{% for %}").render(&[], false).is_err());
        Ok(())
    }
}
