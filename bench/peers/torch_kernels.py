#!/usr/bin/env python3
"""Peer benchmark: PyTorch CPU fp32 kernels at the shapes of `emily bench kernels`,
at 1 and 2 threads, median ms per call (warm). Needs `python3 -m pip install torch`."""
import statistics
import sys
import time


def median_ms(f, min_s=1.0):
    f()
    t = time.perf_counter()
    f()
    one = max(time.perf_counter() - t, 1e-7)
    reps = max(1, int(min_s / 7 / one))
    times = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(reps):
            f()
        times.append((time.perf_counter() - t) / reps * 1e3)
    return statistics.median(times)


def main():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch not installed (python3 -m pip install torch)")
        return 1
    g = torch.Generator().manual_seed(0)
    rows = []
    for shape in [(4, 128, 1024), (1, 4096, 4096)]:
        x = torch.randn(*shape, generator=g)
        w = torch.randn(shape[-1], generator=g)
        b = torch.randn(shape[-1], generator=g)
        rows.append((f"rms_norm {list(shape)}", lambda x=x, w=w: F.rms_norm(x, (x.shape[-1],), w, 1e-5)))
        rows.append((f"layer_norm {list(shape)}", lambda x=x, w=w, b=b: F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)))
    for name, q, kv, causal in [("sdpa [2, 8, 128, 64]", (2, 8, 128, 64), (2, 8, 128, 64), False),
                                ("sdpa [1, 6, 1500, 64]", (1, 6, 1500, 64), (1, 6, 1500, 64), False),
                                ("sdpa [1, 8, 2048, 64] causal", (1, 8, 2048, 64), (1, 8, 2048, 64), True),
                                ("sdpa decode [1,32,1,128] kv2048 gqa8", (1, 32, 1, 128), (1, 8, 2048, 128), False)]:
        qt, k, v = torch.randn(*q, generator=g), torch.randn(*kv, generator=g), torch.randn(*kv, generator=g)
        gqa = q[1] != kv[1]
        rows.append((name, lambda qt=qt, k=k, v=v, c=causal, e=gqa: F.scaled_dot_product_attention(qt, k, v, is_causal=c, enable_gqa=e)))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, f in rows:
            with torch.no_grad():
                print(f"torch {threads} thread(s) {name:<36} {median_ms(f):8.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
