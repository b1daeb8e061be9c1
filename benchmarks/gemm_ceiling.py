"""How far above PyTorch eager can any MLP inference go on this machine?

The MLP 784-512-512-10 at batch 256 is three matrix products (342 MFLOP a batch) and
almost nothing else, so no library runs it faster than this machine multiplies matrices.
This script measures the best rate a large square float32 product reaches here (2048^3,
best of 8, MKL through shendu and through PyTorch), the rate PyTorch eager runs the MLP
at (samples/s times FLOP per sample), and their quotient: the most that ``sd.compile``
(or anything) could gain over PyTorch eager on this workload. Then the MLP's own three
products alone (MKL through PyTorch, no bias or ReLU), against the whole eager forward:
what fusing everything around the products could gain at MKL's speed on these shapes.

    python benchmarks/gemm_ceiling.py --json benchmarks/results/gemm-ceiling.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench_util import mlp  # noqa: E402

MLP_FLOP_PER_SAMPLE = 2 * (784 * 512 + 512 * 512 + 512 * 10)


def _best(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=2048, help="side of the square product")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    import torch

    import shendu as sd
    from shendu._bench_report import machine_info
    from shendu.backend import cpu
    torch.set_num_threads(args.threads)
    sd.set_num_threads(args.threads)
    n, flop = args.n, 2 * args.n ** 3
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    gemm = {"torch": flop / _best(lambda: torch.mm(ta, tb), 8) / 1e9,
            "shendu": flop / _best(lambda: cpu.matmul(a, b), 8) / 1e9}
    torch.manual_seed(0)
    model = mlp(torch.nn).eval()   # the bench's MLP workload
    x = torch.randn(256, 784)

    def forward():
        with torch.no_grad():
            model(x)
    seconds = min(_best(forward, 200) for _ in range(3))
    mlp_gflops = 256 * MLP_FLOP_PER_SAMPLE / seconds / 1e9
    best_gemm = max(gemm.values())
    # the MLP's own three products alone (no bias, no ReLU), each at its best
    shapes = [(256, 784, 512), (256, 512, 512), (256, 512, 10)]
    products = 0.0
    for m, k, nn in shapes:
        pa, pb = torch.randn(m, k), torch.randn(k, nn)
        products += min(_best(lambda a=pa, b=pb: torch.mm(a, b), 200) for _ in range(3))
    doc = {"threads": args.threads, "gemm_n": n, "gemm_gflops": gemm,
           "torch_mlp_samples_per_s": 256 / seconds, "torch_mlp_gflops": mlp_gflops,
           "ceiling_vs_torch_eager": best_gemm / mlp_gflops,
           "mlp_products_alone_s": products, "torch_mlp_s": seconds,
           "products_alone_vs_torch_eager": seconds / products, "machine": machine_info()}
    print(f"{n}^3 float32 product, {args.threads} threads: " +
          ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in gemm.items()))
    print(f"PyTorch eager MLP 784-512-512-10, batch 256 (best of 200 calls): "
          f"{256 / seconds:,.0f} samples/s = {mlp_gflops:.1f} GFLOP/s")
    print(f"ceiling for any MLP inference against PyTorch eager here: "
          f"{doc['ceiling_vs_torch_eager']:.2f}x (the large product's rate / the MLP's)")
    print(f"the MLP's three products alone, each the best of 200: {1e3 * products:.3f} ms "
          f"against {1e3 * seconds:.3f} ms for the whole forward: "
          f"{doc['products_alone_vs_torch_eager']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
