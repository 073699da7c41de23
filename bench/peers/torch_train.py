#!/usr/bin/env python3
"""Peer benchmark: PyTorch CPU f32 training steps for the two `emily train`
recipes, same models, batches and optimizer (AdamW, clipping), at 1 and 2
threads: median ms per step (forward, backward, optimizer update), warm.

Set up once (a venv under the git-ignored bench/peers/.venv):
    python3 -m venv bench/peers/.venv && bench/peers/.venv/bin/pip install torch
Run:  bench/peers/.venv/bin/python bench/peers/torch_train.py [--threads 1,2]
(`emily bench train` runs it with its own thread count and prints the ratios.)
"""
import math
import statistics
import sys
import time


def median_ms(step, runs=7, min_s=1.0):
    step()
    t = time.perf_counter()
    step()
    one = max(time.perf_counter() - t, 1e-7)
    reps = max(1, int(min_s / runs / one))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(reps):
            step()
        times.append((time.perf_counter() - t) / reps * 1e3)
    return statistics.median(times)


def digits_step(torch, F):
    g = torch.Generator().manual_seed(0)
    fc1 = torch.nn.Linear(64, 128)
    fc2 = torch.nn.Linear(128, 10)
    params = list(fc1.parameters()) + list(fc2.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    x = torch.rand(64, 64, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)

    def step():
        h = F.dropout(F.gelu(fc1(x)), 0.1, training=True)
        loss = F.cross_entropy(fc2(h), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    return step


class RMSNorm:
    def __init__(self, torch, d):
        self.w = torch.ones(d, requires_grad=True)

    def __call__(self, F, x):
        return F.rms_norm(x, (x.shape[-1],), self.w, 1e-6)


def rope_tables(torch, head_dim, t, base=10000.0):
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().float(), ang.sin().float()


def rotate(torch, x, cos, sin):
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


def bytelm_step(torch, F, dim=64, layers=2, heads=4, kv_heads=2, ffn=172, batch=16, seq=64):
    g = torch.Generator().manual_seed(0)
    hd = dim // heads

    def lin(i, o):
        return torch.nn.Linear(i, o, bias=False)

    embed = torch.nn.Embedding(256, dim)
    blocks = []
    for _ in range(layers):
        blocks.append(dict(n1=RMSNorm(torch, dim), q=lin(dim, heads * hd), k=lin(dim, kv_heads * hd),
                           v=lin(dim, kv_heads * hd), o=lin(heads * hd, dim), n2=RMSNorm(torch, dim),
                           gate=lin(dim, ffn), up=lin(dim, ffn), down=lin(ffn, dim)))
    norm = RMSNorm(torch, dim)
    head = lin(dim, 256)
    params = list(embed.parameters()) + list(head.parameters()) + [norm.w]
    for b in blocks:
        for m in b.values():
            params += [m.w] if isinstance(m, RMSNorm) else list(m.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    ids = torch.randint(0, 256, (batch, seq), generator=g)
    tgt = torch.randint(0, 256, (batch, seq), generator=g)
    cos, sin = rope_tables(torch, hd, seq)

    def step():
        x = embed(ids)
        for b in blocks:
            h = b["n1"](F, x)
            q = b["q"](h).view(batch, seq, heads, hd).transpose(1, 2)
            k = b["k"](h).view(batch, seq, kv_heads, hd).transpose(1, 2)
            v = b["v"](h).view(batch, seq, kv_heads, hd).transpose(1, 2)
            q, k = rotate(torch, q, cos, sin), rotate(torch, k, cos, sin)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = x + b["o"](a.transpose(1, 2).reshape(batch, seq, dim))
            h = b["n2"](F, x)
            x = x + b["down"](F.silu(b["gate"](h)) * b["up"](h))
        logits = head(norm(F, x))
        loss = F.cross_entropy(logits.reshape(-1, 256), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return step


def thread_counts(argv):
    """`--threads 1,2` (the default) from the command line."""
    if "--threads" not in argv:
        return [1, 2]
    i = argv.index("--threads")
    if i + 1 >= len(argv):
        raise SystemExit("--threads needs a value, e.g. --threads 1,2")
    counts = [int(v) for v in argv[i + 1].split(",") if v]
    if not counts or min(counts) < 1:
        raise SystemExit(f"--threads {argv[i + 1]}: give positive thread counts")
    return counts


def main():
    counts = thread_counts(sys.argv[1:])
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch not installed (see this script's docstring)")
        return 1
    print(f"torch {torch.__version__}, f32, ms per training step (median of 7)")
    for threads in counts:
        torch.set_num_threads(threads)
        for name, make in (("digits MLP b64", digits_step), ("byte LM b16x64", bytelm_step)):
            print(f"{name:<16} threads={threads}  {median_ms(make(torch, F)):8.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
