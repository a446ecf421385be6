"""Write the Hugging Face reference fixtures under crates/oxrl-lm/tests/fixtures/hf/.

For each of three tiny architectures (Qwen2 with q/k/v biases, Qwen3 with per-head q/k norms and an
explicit head_dim, Llama with llama3 rope scaling and untied embeddings) this script creates a
seeded random model with `transformers`, saves it in Hugging Face layout (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json with a chat template), and records in
reference.json what `transformers` computes for it:

- the logits of a fixed batch of token ids (every position),
- greedy generation (12 new tokens) from a prompt,
- the chat template rendered for a fixed conversation, with and without the generation prompt.

The Rust tests (crates/oxrl-lm/tests/hf.rs) load the same directories and must reproduce these.
Regenerate with:  python tools/make_hf_fixtures.py   (needs torch, transformers, tokenizers)
"""

import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen3Config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "oxrl-lm", "tests", "fixtures", "hf")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>"]
CHARS = ["\n"] + [chr(c) for c in range(ord(" "), ord("~") + 1)]
VOCAB = 104  # 4 specials + 96 characters, padded to a multiple of 8

CHATML = (
    "{%- for message in messages %}"
    "{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# A Llama-2-style template: bos_token, trim/lstrip of block tags, .strip(), raise_exception.
LLAMA_TEMPLATE = """{{ bos_token }}
{% for message in messages %}
    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
    {% if message['role'] == 'user' %}
        {{ '[INST] ' + message['content'].strip() + ' [/INST]' }}
    {% elif message['role'] == 'assistant' %}
        {{ ' ' + message['content'].strip() + eos_token }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}{{ ' ' }}{% endif %}"""


def tokenizer():
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for c in CHARS:
        vocab[c] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    return tok


def write(name, cfg, eos, template, conversation):
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    # Random non-trivial norm weights and biases, so a mistake in either shows in the logits.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer(), eos_token=eos, bos_token="<s>", pad_token="<|endoftext|>"
    )
    hf_tok.chat_template = template
    hf_tok.save_pretrained(out)
    # transformers may write the template to chat_template.jinja; keep it in tokenizer_config.json
    # (the older layout) for this fixture so both code paths are exercised across fixtures.
    jinja = os.path.join(out, "chat_template.jinja")
    if name != "llama" and os.path.exists(jinja):
        tc_path = os.path.join(out, "tokenizer_config.json")
        tc = json.load(open(tc_path))
        tc["chat_template"] = open(jinja).read()
        json.dump(tc, open(tc_path, "w"), indent=2)
        os.remove(jinja)

    ids = torch.tensor(
        [
            [hf_tok.convert_tokens_to_ids(c) for c in "12+34=46 and more!"],
            [hf_tok.convert_tokens_to_ids(c) for c in "The quick brown f"] + [5],
        ]
    )
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        prompt = torch.tensor([[hf_tok.convert_tokens_to_ids(c) for c in "7*8="]])
        gen = model.generate(
            prompt, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0, min_new_tokens=12
        )[0, prompt.shape[1]:]
    ref = {
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "input_ids": ids.tolist(),
        "logits": logits.tolist(),
        "greedy_prompt": prompt[0].tolist(),
        "greedy_ids": gen.tolist(),
        "conversation": conversation,
        "chat": hf_tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=False),
        "chat_generation_prompt": hf_tok.apply_chat_template(
            conversation[:-1], tokenize=False, add_generation_prompt=True
        ),
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(name, "logits", tuple(logits.shape), "greedy", gen.tolist())


def main():
    small = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.15,
        rms_norm_eps=1e-6,
    )
    conv = [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": "42"},
    ]
    write("qwen2", Qwen2Config(**small, rope_theta=10000.0, tie_word_embeddings=True), "<|im_end|>", CHATML, conv)
    write(
        "qwen3",
        Qwen3Config(**small, head_dim=16, rope_theta=1000000.0, tie_word_embeddings=True, attention_bias=False),
        "<|im_end|>",
        CHATML,
        conv[1:],
    )
    llama = LlamaConfig(
        **small,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        attention_bias=False,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    )
    write("llama", llama, "<|endoftext|>", LLAMA_TEMPLATE, [
        {"role": "user", "content": " hi there "},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "ok"},
    ])


if __name__ == "__main__":
    sys.exit(main())
