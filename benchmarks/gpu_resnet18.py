"""ResNet-18 CIFAR training step, shendu (CuPy) against PyTorch on the same GPU.

Run by ``benchmarks/gpu.sh``; alone: ``python benchmarks/gpu_resnet18.py [--device cuda]``.
Both libraries get the same weights (PyTorch's initialisation, loaded into shendu), so the
script first checks that the two forward passes agree, then times SGD-momentum training
steps (forward + backward + update) on a fixed random batch: median of ``--steps`` after
``--warmup``, each step ended by a device synchronisation. ``--device cpu`` runs the same
code on the CPU (a smoke test for machines without a GPU).

The model is ``sd.vision.models.resnet18(small_input=True)`` when the model zoo has it, else
the network of ``bench_resnet.py``, which PyTorch's side always uses (torchvision's key
names, a 3x3 stride-1 stem without max-pool for 32x32 images).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_resnet import resnet18_small  # noqa: E402

import shendu as sd  # noqa: E402


def resnet18_cifar(lib, num_classes=10):
    """ResNet-18 with a CIFAR stem against ``lib.nn`` (shendu or torch): bench_resnet's."""
    return resnet18_small(lib.nn, num_classes)


def shendu_model():
    zoo = getattr(getattr(sd, "vision", None), "models", None)
    if zoo is not None and hasattr(zoo, "resnet18"):
        try:
            return zoo.resnet18(small_input=True, num_classes=10), "sd.vision.models.resnet18"
        except TypeError:  # a zoo without the CIFAR stem
            pass
    return resnet18_cifar(sd), "benchmarks/gpu_resnet18.py"


def _sync(lib, device):
    if device.startswith("cuda"):
        (sd.cuda if lib is sd else lib.cuda).synchronize()


def time_steps(lib, model, x, y, device, warmup, steps):
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = lib.nn.functional.cross_entropy
    times = []
    for i in range(warmup + steps):
        _sync(lib, device)
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        _sync(lib, device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), float(loss.item())


def machine(device):
    info = {"python": platform.python_version(), "shendu_commit": _commit(),
            "cpu": platform.processor() or platform.machine()}
    if device.startswith("cuda"):
        try:
            info["gpu"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                 "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
        except OSError:
            info["gpu"] = "unknown (no nvidia-smi)"
        import cupy

        info["cupy"] = cupy.__version__
    return info


def _commit():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
    y_np = rng.integers(0, 10, args.batch)

    theirs = resnet18_cifar(torch).to(args.device)
    ours, source = shendu_model()
    ours.load_state_dict({k: v.detach().cpu() for k, v in theirs.state_dict().items()})
    ours.to(args.device)

    # the same network: eval-mode logits agree to float32 accuracy
    ours.eval()
    theirs.eval()
    with sd.no_grad(), torch.no_grad():
        a = ours(sd.tensor(x_np[:8], device=args.device)).cpu().numpy()
        b = theirs(torch.from_numpy(x_np[:8]).to(args.device)).cpu().numpy()
    err = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
    ours.train()
    theirs.train()

    t_sd, loss_sd = time_steps(sd, ours, sd.tensor(x_np, device=args.device),
                               sd.tensor(y_np, device=args.device), args.device,
                               args.warmup, args.steps)
    t_torch, loss_torch = time_steps(torch, theirs, torch.from_numpy(x_np).to(args.device),
                                     torch.from_numpy(y_np).to(args.device), args.device,
                                     args.warmup, args.steps)
    result = {
        "workload": f"ResNet-18 CIFAR training step (SGD momentum), batch {args.batch}, "
                    "float32",
        "device": args.device, "model": source, "forward_max_rel_diff": err,
        "shendu_ms": 1e3 * t_sd, "torch_ms": 1e3 * t_torch,
        "shendu_samples_per_s": args.batch / t_sd, "torch_samples_per_s": args.batch / t_torch,
        "ratio_shendu_over_torch_speed": t_torch / t_sd,
        "losses": [loss_sd, loss_torch], "steps": args.steps, "machine": machine(args.device),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if not err < 1e-3:
        print(f"gpu_resnet18: shendu and PyTorch disagree (max relative diff {err:.2e})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
