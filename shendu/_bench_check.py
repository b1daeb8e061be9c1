"""``shendu bench --check FILE``: which of the speed targets a results file meets.

The targets are the ratios (shendu speed / PyTorch speed, measured in the same run) that
the project set for the reference workloads of ``benchmarks/README.md``. The check reads
a file written by ``shendu bench --json``; it times nothing, so it is the same on any
machine (the numbers in the file are what the file's machine measured, named in it).

>>> doc = {"results": [{"name": "mlp_train", "ratio": 1.08}, {"name": "lenet5_train",
...         "ratio": 0.8}], "machine": {"git_commit": "abc", "cpu_model": "x"}}
>>> rows = check(doc)
>>> [(r["name"], r["met"]) for r in rows[:3]]
[('mlp_train', True), ('lenet5_train', False), ('cifar_cnn_train', None)]
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["TARGETS", "check", "format_check", "main"]

# benchmark name -> (what it is, the least ratio that meets the target)
TARGETS: dict[str, tuple[str, float]] = {
    "mlp_train": ("MLP 784-512-512-10 train", 1.0),
    "lenet5_train": ("LeNet-5 train", 0.9),
    "cifar_cnn_train": ("CIFAR CNN train", 0.5),
    "lstm_lm_train": ("LSTM LM train", 1.0),
    "mlp_infer": ("MLP inference", 1.0),
    "cifar_cnn_infer": ("CIFAR CNN inference", 0.5),
    "tiny_op_chain": ("tiny op forward + backward", 1.0),
}


def check(doc: dict) -> list[dict]:
    """One row per target: the ratio found (None when the file lacks it) and whether it is
    met (None when there is nothing to judge)."""
    found = {r.get("name"): r for r in doc.get("results", [])}
    rows = []
    for name, (what, least) in TARGETS.items():
        r = found.get(name)
        ratio = None if r is None else r.get("ratio")
        rows.append({"name": name, "what": what, "target": least, "ratio": ratio,
                     "met": None if ratio is None else ratio >= least,
                     "why": "" if ratio is not None else
                     ("not in the file" if r is None else
                      (r.get("error") or r.get("reference_error") or "no ratio"))})
    return rows


def format_check(doc: dict, rows: list[dict]) -> str:
    """The rows as text, headed by the commit and machine the file names."""
    m = doc.get("machine", {})
    commit = doc.get("commit") or m.get("git_commit") or "unknown commit"
    head = (f"targets against {doc.get('path', 'the results')}: commit {commit}, "
            f"{m.get('cpu_model', 'unknown CPU')} ({m.get('cpu_count', '?')} CPUs), "
            f"{doc.get('created', 'date unknown')}")
    lines = [head]
    for r in rows:
        mark = {True: "met", False: "NOT MET", None: "unknown"}[r["met"]]
        got = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"  {r['what']:28} ratio {got:>5}  target >= {r['target']:.1f}  {mark}"
                     + (f" ({r['why']})" if r["why"] else ""))
    met = sum(r["met"] is True for r in rows)
    lines.append(f"{met} of {len(rows)} targets met")
    return "\n".join(lines)


def main(path: str | Path) -> int:
    """Print the check of ``path``; 0 when every target is met, 1 otherwise, 2 when the
    file cannot be read."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        print(f"shendu bench --check: cannot read {path}: {exc}")
        return 2
    doc.setdefault("path", str(path))
    rows = check(doc)
    print(format_check(doc, rows))
    return 0 if all(r["met"] for r in rows) else 1
