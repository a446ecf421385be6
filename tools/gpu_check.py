"""GPU check of a CUDA build (not run in CI: needs a GPU, torch and transformers).

    python tools/gpu_check.py OXRL_BINARY OUT_DIR

1. For each tiny Hugging Face fixture (Qwen2, Qwen3, Llama) the chat-formatted prompt is generated
   greedily by `oxrl generate` on the GPU in f32 and in bf16, and by transformers on the GPU in f32;
   the f32 ids must be equal (bf16 is reported: rounding may flip a near-tie of random weights).
2. A shortened quickstart (countdown SFT, then GRPO) and a LoRA run on the Qwen2 fixture train on
   the GPU; their summaries and wall times are printed.
3. Short runs (100 SFT + 4 RL steps on countdown) with each GPU-relevant zoo technique switched
   on, so their tensor code runs on the device; each must finish with finite losses.
4. The other pipelines, shortened, each with finite losses: every LM example (multi-turn agent,
   SvS, ExPRL, HeRL, GUI-G1), multi-turn PPO with a critic, latent reasoning (HRPO; Coconut with
   DePO and Latent-GRPO), DPO, a Bradley-Terry reward model and RL on its scores, RA3 mid-training.
5. `oxrl bench --json` on the GPU.

Exits non-zero when a check fails. Build the binary with
`CUDA_COMPUTE_CAP=90 cargo build --release --features cuda` (see README, "GPU").
"""

import json
import os
import shutil
import subprocess
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "crates", "oxrl-lm", "tests", "fixtures", "hf")
DEV = "cuda" if torch.cuda.is_available() else "cpu"
MSGS = [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "What is 6*7?"}]


def run(cmd, timeout):
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    dt = time.time() - t
    if p.returncode != 0:
        print("FAILED:", " ".join(cmd), "\n", p.stdout[-3000:], p.stderr[-3000:], flush=True)
    return p, dt


def longer_context(name, out):
    """A copy of fixture `name` with a 256-token context (the fixtures have 64)."""
    d = os.path.join(out, name + "-base")
    shutil.copytree(os.path.join(FIX, name), d, dirs_exist_ok=True)
    cfg = os.path.join(d, "config.json")
    c = json.load(open(cfg))
    c["max_position_embeddings"] = 256
    json.dump(c, open(cfg, "w"))
    return d


def generation(oxrl, out):
    ok = True
    for name in ["qwen2", "qwen3", "llama"]:
        d = longer_context(name, out)
        tok = AutoTokenizer.from_pretrained(d)
        msgs = MSGS
        try:
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        except Exception:  # a template without a system role
            msgs = MSGS[1:]
            text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        ids = Tokenizer.from_file(os.path.join(d, "tokenizer.json")).encode(text, add_special_tokens=False).ids
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).to(DEV).eval()
        # oxrl stops at generation_config's end ids and at the tokenizer's end-of-sequence token
        eos = m.generation_config.eos_token_id
        eos = (eos if isinstance(eos, list) else [eos]) + [tok.convert_tokens_to_ids(tok.eos_token)]
        eos = sorted({e for e in eos if e is not None})
        gen = m.generate(torch.tensor([ids]).to(DEV), max_new_tokens=16, do_sample=False, pad_token_id=0,
                         eos_token_id=eos)
        want = gen[0, len(ids):].tolist()
        system = ["--system", MSGS[0]["content"]] if len(msgs) == 2 else []
        for dtype in ["f32", "bf16"]:
            p, dt = run([oxrl, "generate", "--model", d, "--prompt", MSGS[1]["content"], "--chat", *system,
                         "--max-new-tokens", "16", "--dtype", dtype, "--json", "--quiet"], 120)
            if p.returncode != 0:
                ok = False
                continue
            got = json.loads(p.stdout)["token_ids"]
            same = got == want[:len(got)] and (len(got) == len(want) or len(got) == 16)
            print(f"{name} {dtype}: oxrl {got} transformers {want} {'EQUAL' if same else 'DIFFERENT'} ({dt:.1f} s)", flush=True)
            if dtype == "f32" and not same:
                ok = False
    return ok


def training(oxrl, out):
    ok = True
    base = longer_context("qwen2", out)
    runs = [
        ("quickstart", ["--set", "sft.steps=150", "--set", "train.steps=30", "--set", "eval.max_problems=100"]),
        ("hf-lora", ["--config", os.path.join(ROOT, "examples", "hf-lora.toml"), "--set",
                     "model.path=" + base, "--set", "sft.steps=5", "--set", "train.steps=5"]),
    ]
    for name, args in runs:
        d = os.path.join(out, name)
        p, dt = run([oxrl, "train", "--quiet", "--out", d] + args, 400)
        if p.returncode != 0:
            ok = False
            continue
        s = json.load(open(os.path.join(d, "summary.json")))
        print(f"{name}: {dt:.1f} s wall; summary {json.dumps(s)[:1500]}", flush=True)
    return ok


SHORT = ["--set", "sft.steps=100", "--set", "train.steps=4", "--set", "train.prompts_per_step=8",
         "--set", "eval.max_problems=16"]


def losses_of(d, phase=None):
    """The finite-ness of the `loss` values in a run's metrics.jsonl (of one phase, if given)."""
    rows = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
    xs = [r["loss"] for r in rows if "loss" in r and (phase is None or r.get("phase") == phase)]
    ok = len(xs) > 0 and all(isinstance(x, (int, float)) and x == x and abs(x) != float("inf") for x in xs)
    return ok, xs


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


TECHNIQUES = {
    "siren": ["train.siren_coef=0.01"],
    "papo": ["train.papo_coef=0.01"],
    "aem": ["train.aem_kappa=1.0"],
    "visurf+ppr": ["train.visurf=when_needed", "train.visurf_cap=true", "train.ppr_coef=0.3"],
    "rpo": ["train.rpo=true"],
    "reasonmaxxer": ["train.objective=reasonmaxxer", "train.kl_coef=0.01"],
    "spae": ["train.spae_coef=0.5", "train.spae_sat_penalty=0.1", "train.spae_probes=2"],
    "rlfr": ["train.rlfr_coef=0.1", "train.rlfr_fit_steps=50"],
    "verl+dph": ["train.verl_coef=0.1", "train.dph_divergence=js", "train.dph_coef=0.05"],
    "pacs": ["train.objective=pacs"],
}


def techniques(oxrl, out):
    ok = True
    for name, sets in TECHNIQUES.items():
        args = list(SHORT)
        for x in sets:
            args += ["--set", x]
        d = os.path.join(out, "zoo-" + name)
        p, dt = run([oxrl, "train", "--quiet", "--out", d] + args, 300)
        if p.returncode != 0:
            ok = False
            continue
        finite, losses = losses_of(d, "rl")
        finite = finite and len(losses) == 4
        print(f"technique {name}: {dt:.1f} s, losses {[round(x, 4) for x in losses]} {'OK' if finite else 'NOT FINITE'}",
              flush=True)
        ok = ok and finite
    return ok


def pipelines(oxrl, out):
    """The other pipelines on the GPU: every LM example, multi-turn PPO with a critic, latent
    reasoning (HRPO, Coconut + DePO + Latent-GRPO), DPO, a reward model driving RL, RA3."""
    ok = True
    pairs = os.path.join(out, "pairs.jsonl")
    write(pairs, "".join('{"prompt": "say %d", "chosen": "%d", "rejected": "%d"}\n'
                         % (i % 10, i % 10, (i % 10 + 1 + (i * 7) % 9) % 10) for i in range(300)))
    small = "[model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n"
    quick = open(os.path.join(ROOT, "examples", "quickstart.toml")).read()
    runs = []
    for ex in ["grid-agent", "arith-svs", "arith-exprl", "instruct-herl", "gui-g1"]:
        runs.append((ex, "train", ["--config", os.path.join(ROOT, "examples", ex + ".toml")] + SHORT, "rl"))
    runs += [
        ("grid-agent-ppo-critic", "train", ["--config", os.path.join(ROOT, "examples", "grid-agent.toml"),
                                            "--set", "train.advantage=gae", "--set", "train.value_head=true"] + SHORT,
         "rl"),
        ("latent-hrpo", "train", ["--config", write(os.path.join(out, "hrpo.toml"), quick
                                  + '\n[model.latent]\nkind = "hrpo"\ngate_init = -2.0\n')] + SHORT, "rl"),
        ("latent-coconut", "train", ["--config", write(os.path.join(out, "coconut.toml"), quick
                                     + '\n[model.latent]\nkind = "coconut"\nsteps = 2\nkappa = 2.0\n'),
                                     "--set", "train.depo_alpha=0.5", "--set", "train.latent_grpo=true"] + SHORT,
         "rl"),
        ("dpo", "dpo", ["--config", write(os.path.join(out, "dpo.toml"), 'name = "dpo"\n' + small
                        + '[dpo]\npairs = "%s"\nsteps = 100\nbatch_size = 16\nlr = 3e-3\n' % pairs)], None),
        ("rm", "rm", ["--config", write(os.path.join(out, "rm.toml"), 'name = "rm"\n' + small
                      + '[rm]\npairs = "%s"\nsteps = 100\nbatch_size = 16\nlr = 3e-3\n' % pairs)], None),
        ("rl-on-rm", "train", ["--config", write(os.path.join(out, "rmrl.toml"), 'name = "rmrl"\n' + small
                               + '[task]\nname = "addition"\ndigits = 1\ntest_size = 8\n'
                               + '[train]\nsteps = 4\nprompts_per_step = 8\ngroup_size = 4\nmax_new_tokens = 4\n'
                               + '[eval]\nk = [1]\nmax_problems = 8\nmax_new_tokens = 4\n'),
                               "--set", "train.reward_model=" + os.path.join(out, "rm-run")], "rl"),
        ("ra3-midtrain", "midtrain", ["--config", write(os.path.join(out, "ra3.toml"), 'name = "ra3"\n'
                                      + '[task]\nname = "arith"\noperands = 3\ntest_size = 8\n'
                                      + '[sft]\nsteps = 60\nbatch_size = 32\nlr = 3e-3\n[train]\nsft_warmup = true\n'
                                      + '[ra3]\nrounds = 1\nproblems = 12\ncandidates = 4\nsft_steps = 15\n'
                                      + 'batch_size = 12\n[eval]\nk = [1]\nmax_problems = 8\n')], None),
    ]
    for name, cmd, args, phase in runs:
        d = os.path.join(out, "rm-run" if name == "rm" else "pipe-" + name)
        p, dt = run([oxrl, cmd, "--quiet", "--out", d] + args, 300)
        if p.returncode != 0:
            ok = False
            continue
        fin, xs = losses_of(d, phase)
        print(f"pipeline {name}: {dt:.1f} s, {len(xs)} losses, last {[round(x, 4) for x in xs[-4:]]} "
              f"{'OK' if fin else 'NOT FINITE'}", flush=True)
        ok = ok and fin
    return ok


def main():
    oxrl, out = sys.argv[1], sys.argv[2]
    print("torch", torch.__version__, torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu", flush=True)
    os.makedirs(out, exist_ok=True)
    ok = generation(oxrl, out)
    ok = training(oxrl, out) and ok
    ok = techniques(oxrl, out) and ok
    ok = pipelines(oxrl, out) and ok
    p, dt = run([oxrl, "bench", "--json", "--model", "notes"], 200)
    print("bench:", p.stdout[-4000:], f"({dt:.1f} s)", flush=True)
    sys.exit(0 if ok and p.returncode == 0 else 1)


if __name__ == "__main__":
    main()
