#!/usr/bin/env python3
"""Peer benchmark: PyTorch CPU matrix products at the shapes of `emily bench core`
(m, n, k): f32 and bf16 `torch.matmul`, and int8 through dynamically quantized
`nn.Linear` (activations quantized per call, weights once), GFLOP/s at the
thread count given (default 2). Run by `emily bench core` from bench/peers/.venv
(see setup-torch-venv.sh)."""
import statistics
import sys
import time


def median_s(f, min_s=0.5):
    f()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_s and len(times) < 200):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    try:
        import torch
    except ImportError:
        print("peer torch: not installed (bash bench/peers/setup-torch-venv.sh)")
        return 1
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    shapes = [(1500, 1536, 384), (1500, 384, 1536), (2048, 2048, 2048), (128, 1536, 576), (128, 4864, 896)]
    g = torch.Generator().manual_seed(0)
    print(f"peer torch {torch.__version__}, {threads} threads")
    for m, n, k in shapes:
        a = torch.randn(m, k, generator=g)
        w = torch.randn(n, k, generator=g)
        flop = 2.0 * m * n * k
        with torch.no_grad():
            f32 = median_s(lambda: torch.matmul(a, w.t()))
            ab, wb = a.bfloat16(), w.bfloat16()
            bf = median_s(lambda: torch.matmul(ab, wb.t()))
            lin = torch.nn.Linear(k, n, bias=False)
            lin.weight.copy_(w)
            q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
            i8 = median_s(lambda: q(a))
        print(f"torch {m}x{n}x{k}: f32 {flop / f32 / 1e9:7.1f}  bf16 {flop / bf / 1e9:7.1f}  int8 {flop / i8 / 1e9:7.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
