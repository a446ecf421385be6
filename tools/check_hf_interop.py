"""Check that transformers and PEFT read what oxrl writes (not run in CI: needs torch,
transformers, peft, tokenizers).

    python tools/check_hf_interop.py BASE_DIR RUN_DIR [PROMPT]

BASE_DIR is the Hugging Face model a LoRA run started from (`model.path`), RUN_DIR the run folder
(its checkpoints/final holds the merged model and adapter/ the PEFT adapter; save it with
`model.save_dtype = "f32"` for an exact comparison). Prints transformers' and `oxrl generate`'s
greedy ids for the chat-formatted prompt (they must be equal), and the largest logit difference
between PEFT's base + adapter and the merged checkpoint.

The prompt ids come from the `tokenizers` library on tokenizer.json (as oxrl encodes): transformers
5 may rebuild a model family's tokenizer class instead of using tokenizer.json as written.
"""

import json
import os
import subprocess
import sys

import torch
from peft import PeftModel
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

OXRL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "oxrl")


def main():
    base_dir, run = sys.argv[1], sys.argv[2]
    prompt = sys.argv[3] if len(sys.argv) > 3 else "What is 2 * 3?"
    fin = os.path.join(run, "checkpoints", "final")
    manifest = json.load(open(os.path.join(fin, "oxrl.json")))
    msgs = ([{"role": "system", "content": manifest["system_prompt"]}] if manifest.get("system_prompt") else [])
    msgs.append({"role": "user", "content": prompt})
    text = AutoTokenizer.from_pretrained(fin).apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([Tokenizer.from_file(os.path.join(fin, "tokenizer.json")).encode(text, add_special_tokens=False).ids])
    merged = AutoModelForCausalLM.from_pretrained(fin, dtype=torch.float32).eval()
    out = merged.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0, min_new_tokens=10)
    ours = json.loads(subprocess.check_output(
        [OXRL, "generate", "--model", fin, "--prompt", prompt, "--max-new-tokens", "10", "--json"]))
    theirs = out[0, ids.shape[1]:].tolist()
    print("transformers greedy:", theirs)
    print("oxrl greedy:        ", ours["token_ids"][: len(theirs)])
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    peft = PeftModel.from_pretrained(base, os.path.join(fin, "adapter")).eval()
    with torch.no_grad():
        a, b = peft(ids).logits, merged(ids).logits
    print("PEFT base + adapter vs merged: max |Δlogit| =", (a - b).abs().max().item())
    return 0 if theirs == ours["token_ids"][: len(theirs)] else 1


if __name__ == "__main__":
    sys.exit(main())
