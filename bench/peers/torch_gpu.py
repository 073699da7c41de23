#!/usr/bin/env python3
"""Peer benchmark on the GPU: PyTorch at the shapes of emily's cuda_bench
example (rms_norm / layer_norm, SDPA with each backend PyTorch has), median
microseconds per call timed with CUDA events over batches of calls, plus the
device-to-device copy bandwidth. Random normal inputs. Runs where torch sees
a GPU (the device machine's image has it)."""
import statistics
import sys


def main():
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        print("torch not installed")
        return 1
    if not torch.cuda.is_available():
        print("no CUDA device for torch")
        return 1
    dev = torch.device("cuda")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")

    def us(f, reps=50):
        for _ in range(3):
            f()
        torch.cuda.synchronize()
        times = []
        for _ in range(7):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(reps):
                f()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) * 1e3 / reps)
        return statistics.median(times)

    src = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    t = us(lambda: dst.copy_(src), reps=20)
    copy_bw = 2 * (1 << 30) / (t * 1e-6)
    print(f"copy: {t:.1f} us for 1 GiB, {copy_bw / 1e12:.3f} TB/s (read + write)")
    print("case | torch us | TB/s or TFLOP/s | % of copy bw")
    g = torch.Generator(device=dev).manual_seed(0)
    for dt in [torch.float32, torch.bfloat16]:
        for shape in [(16, 2048, 1024), (4, 128, 1024)]:
            x = torch.randn(*shape, generator=g, device=dev).to(dt)
            w = torch.randn(shape[-1], generator=g, device=dev).to(dt)
            b = torch.randn(shape[-1], generator=g, device=dev).to(dt)
            nbytes = 2 * x.numel() * x.element_size()
            for name, f in [
                ("rms_norm", lambda: F.rms_norm(x, (shape[-1],), w, 1e-5)),
                ("layer_norm", lambda: F.layer_norm(x, (shape[-1],), w, b, 1e-5)),
            ]:
                t = us(f)
                bw = nbytes / (t * 1e-6)
                print(f"{name} {list(shape)} {str(dt)[6:]} | {t:.1f} | {bw / 1e12:.3f} TB/s | {100 * bw / copy_bw:.0f}%")
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)]
    for dt, shape in [(torch.bfloat16, (8, 16, 2048, 128)), (torch.float32, (2, 8, 128, 64)),
                      (torch.bfloat16, (2, 8, 128, 64))]:
        q, k, v = (torch.randn(*shape, generator=g, device=dev).to(dt) for _ in range(3))
        bsz, h, n, d = shape
        for causal in [False, True]:
            flops = 4 * bsz * h * n * n * d / (2 if causal else 1)
            results = []
            for bname, be in backends:
                try:
                    with sdpa_kernel([be]):
                        t = us(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                               reps=20 if n > 1000 else 100)
                    results.append((t, bname))
                except RuntimeError:
                    pass
            best = min(results)
            detail = ", ".join(f"{bn} {t:.1f}" for t, bn in results)
            print(f"sdpa {list(shape)} {str(dt)[6:]} causal={causal} | {best[0]:.1f} ({best[1]}) | "
                  f"{flops / (best[0] * 1e-6) / 1e12:.1f} TFLOP/s | - | {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
