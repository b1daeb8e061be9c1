"""Which of the PyTorch names in ``pytorch_usage.tsv`` shendu has, weighted by usage.

``python tests/api_coverage/api_coverage.py`` prints the figure and the missing names by
weight; ``test_pytorch_coverage.py`` checks it and runs each name against PyTorch.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
USAGE = os.path.join(HERE, "pytorch_usage.tsv")

# Where a name of each kind lives in shendu (PyTorch's layout: ``torch`` -> ``shendu``).
_PLACE = {"torch": ("torch.", ""), "nn": ("nn.", "nn."),
          "functional": ("F.", "nn.functional."), "nn_init": ("nn.init.", "nn.init."),
          "nn_utils": ("nn.utils.", "nn.utils."), "optimizer": ("optim.", "optim."),
          "lr_scheduler": ("optim.lr_scheduler.", "optim.lr_scheduler."),
          "data": ("utils.data.", "utils.data.")}

# Names shendu does not plan to have, and why. Each still counts as missing in the figure.
NOT_PLANNED = {
    "torch.cuda.FloatTensor": "legacy CUDA typed constructor; shendu's GPU arrays are CuPy "
                              "arrays reached through .to('cuda')",
    "to_sparse": "sparse tensors: shendu's arrays are dense NumPy/CuPy arrays",
    "torch.spmm": "sparse tensors (see to_sparse)",
    "torch.sparse_coo_tensor": "sparse tensors (see to_sparse)",
    "resize_": "resizes a tensor's storage in place (old DCGAN idiom); NumPy buffers have "
               "a fixed size: assign a new tensor",
    "nn.parallel.data_parallel": "single-process multi-GPU replication; shendu's "
                                 "multi-device path is distributed (one process per device)",
    "nn.parallel.scatter": "as nn.parallel.data_parallel",
    "nn.DataParallel": "as nn.parallel.data_parallel (PyTorch itself recommends "
                       "DistributedDataParallel)",
    "torch.distributions.Categorical": "probability distributions are out of this issue's "
                                       "scope (the RL package samples with its own helpers)",
}


@dataclass(frozen=True)
class Usage:
    name: str
    kind: str
    count: int
    sources: str


def load_usage(path: str = USAGE) -> list[Usage]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or line.startswith("name\t") or not line.strip():
                continue
            name, kind, count, sources = line.rstrip("\n").split("\t")
            rows.append(Usage(name, kind, int(count), sources))
    return rows


def _walk(root, dotted: str):
    obj, path = root, root.__name__
    for part in dotted.split("."):
        path = f"{path}.{part}"
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(path)
        except ImportError:
            return None
    return obj


def shendu_object(u: Usage):
    """The shendu object for a usage row, or None when shendu lacks it."""
    import shendu as sd
    if u.kind in ("tensor_method", "tensor_attr"):
        return getattr(sd.Tensor, u.name, None)
    if u.kind == "module_method":
        return getattr(sd.nn.Module, u.name, None)
    if u.kind == "optimizer_method":
        return getattr(sd.optim.Optimizer, u.name, None)
    short, where = _PLACE[u.kind]
    return _walk(sd, where + u.name[len(short):])


def coverage(rows: list[Usage] | None = None) -> tuple[float, list[Usage]]:
    """(share of the usage weight shendu has, the missing rows heaviest first)."""
    rows = load_usage() if rows is None else rows
    total = sum(u.count for u in rows)
    missing = [u for u in rows if shendu_object(u) is None]
    return 1 - sum(u.count for u in missing) / total, sorted(missing, key=lambda u: -u.count)


def report() -> str:
    rows = load_usage()
    share, missing = coverage(rows)
    total = sum(u.count for u in rows)
    lines = [f"PyTorch API coverage by usage weight: {100 * share:.1f}% "
             f"({total - sum(u.count for u in missing)} of {total} uses, "
             f"{len(rows) - len(missing)} of {len(rows)} names)", "missing, heaviest first:"]
    for u in missing:
        why = NOT_PLANNED.get(u.name, "to do")
        lines.append(f"  {u.count:4d}  {u.name:34s} {u.kind:15s} {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..")))
    print(report())
