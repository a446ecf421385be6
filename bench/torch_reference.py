#!/usr/bin/env python3
"""PyTorch eager reference for `oxrl bench --compare-torch PYTHON`.

The same model, training step and sampler as `oxrl bench --model notes`:
vocab 64, d_model 256, 4 layers, 4 heads (head_dim 64), SwiGLU MLP with intermediate 683,
RMSNorm, rotary embeddings (rotate-half), tied embeddings (3.18 M parameters).

- Training step: batch 16 x 128 tokens, forward, log-softmax + gather loss over the 127 response
  tokens, backward, global-norm clipping at 1.0, AdamW (lr 1e-4). Median of several steps.
- Generation: 8-token prompts, 64 new tokens sampled at temperature 1 with a preallocated KV cache,
  at batch 1 and batch 64. Median tokens/s.

Install: `pip install torch numpy` (CPU is enough). Not run in CI. `--device cuda` runs it on the
GPU (what `oxrl bench --compare-torch` passes when oxrl itself ran on one).
Prints one JSON object with train_step_s, train_tokens_per_s, gen_tokens_per_s_b1,
gen_tokens_per_s_b64, threads and the torch version.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

VOCAB, D, LAYERS, HEADS, FF, MAX_POS = 64, 256, 4, 4, 683, 512
HD = D // HEADS


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


def rope(x, cos, sin):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = RMSNorm(D), RMSNorm(D)
        self.q = torch.nn.Linear(D, D, bias=False)
        self.k = torch.nn.Linear(D, D, bias=False)
        self.v = torch.nn.Linear(D, D, bias=False)
        self.o = torch.nn.Linear(D, D, bias=False)
        self.gate = torch.nn.Linear(D, FF, bias=False)
        self.up = torch.nn.Linear(D, FF, bias=False)
        self.down = torch.nn.Linear(FF, D, bias=False)

    def forward(self, x, cos, sin, cache=None, pos=0):
        b, t, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(b, t, HEADS, HD).transpose(1, 2)
        k = self.k(h).view(b, t, HEADS, HD).transpose(1, 2)
        v = self.v(h).view(b, t, HEADS, HD).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if cache is not None:
            kc, vc = cache
            kc[:, :, pos : pos + t] = k
            vc[:, :, pos : pos + t] = v
            k, v = kc[:, :, : pos + t], vc[:, :, : pos + t]
            causal = t > 1
        else:
            causal = True
        att = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.o(att.transpose(1, 2).reshape(b, t, D))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = RMSNorm(D)
        inv = 1.0 / (10000.0 ** (torch.arange(0, HD // 2, dtype=torch.float64) * 2 / HD))
        ang = torch.arange(MAX_POS, dtype=torch.float64)[:, None] * inv[None]
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, ids, caches=None, pos=0):
        t = ids.shape[1]
        cos, sin = self.cos[pos : pos + t], self.sin[pos : pos + t]
        x = self.embed(ids)
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, None if caches is None else caches[i], pos)
        return self.norm(x) @ self.embed.weight.t()


def median_time(fn, reps, sync=lambda: None):
    fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Model().to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b, t = 16, 128
    ids = torch.tensor([[1 + i % 3] + [4 + (i * 13 + j * 5) % (VOCAB - 4) for j in range(t - 1)] for i in range(b)], device=dev)

    def step():
        # All 128 positions go through the model (as in oxrl's scorer); 127 are scored.
        logits = model(ids)[:, :-1]
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -logp.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    train_s = median_time(step, 3 if args.quick else 7, sync)

    @torch.no_grad()
    def generate(batch, new=64):
        prompt = torch.tensor([[4 + (i * 7 + j * 3) % (VOCAB - 4) for j in range(8)] for i in range(batch)], device=dev)
        caches = [
            (torch.zeros(batch, HEADS, 8 + new, HD, device=dev), torch.zeros(batch, HEADS, 8 + new, HD, device=dev))
            for _ in range(LAYERS)
        ]
        logits = model(prompt, caches, 0)[:, -1]
        pos = prompt.shape[1]
        for _ in range(new):
            tok = torch.multinomial(torch.softmax(logits, -1), 1)
            logits = model(tok, caches, pos)[:, -1]
            pos += 1

    g1 = median_time(lambda: generate(1), 2 if args.quick else 5, sync)
    g64 = median_time(lambda: generate(64), 1 if args.quick else 3, sync)
    print(
        json.dumps(
            {
                "implementation": "pytorch-eager",
                "torch_version": torch.__version__,
                "device": dev.type,
                "threads": torch.get_num_threads(),
                "params": params,
                "train_step_s": train_s,
                "train_tokens_per_s": b * t / train_s,
                "gen_tokens_per_s_b1": 64 / g1,
                "gen_tokens_per_s_b64": 64 * 64 / g64,
            }
        )
    )


if __name__ == "__main__":
    main()
