"""``shendu bench --check FILE [FILE ...]``: which of the speed targets results files meet.

The targets are the ratios (shendu speed / PyTorch speed, measured in the same run) that
the project set for the reference workloads of ``benchmarks/README.md``. The check reads
a file written by ``shendu bench --json``; it times nothing, so it is the same on any
machine (the numbers in the file are what the file's machine measured, named in it).
Given several files (runs of the same benchmarks, say on one machine one after the
other), it also judges each target on the median of its ratios over the runs: a ratio
near its target lands on either side from run to run on a noisy machine, and one run
decides nothing.

>>> doc = {"results": [{"name": "mlp_train", "ratio": 1.08}, {"name": "lenet5_train",
...         "ratio": 0.8}], "machine": {"git_commit": "abc", "cpu_model": "x"}}
>>> rows = check(doc)
>>> [(r["name"], r["met"]) for r in rows[:3]]
[('mlp_train', True), ('lenet5_train', False), ('cifar_cnn_train', None)]
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["TARGETS", "check", "format_check", "over_runs", "format_over_runs", "main"]

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


def over_runs(checks: list[list[dict]]) -> list[dict]:
    """One row per target over several runs' ``check`` rows: every ratio found, their
    median, and whether the median meets the target (None when no run has the ratio).

    >>> runs = [[{"name": "m", "what": "M", "target": 1.0, "ratio": r}] for r in (0.9, 1.1, 1.2)]
    >>> row = over_runs(runs)[0]
    >>> row["median"], row["met"], row["runs_met"]
    (1.1, True, 2)
    """
    import statistics

    rows = []
    for k, first in enumerate(checks[0]):
        ratios = [run[k]["ratio"] for run in checks if run[k]["ratio"] is not None]
        median = statistics.median(ratios) if ratios else None
        rows.append({"name": first["name"], "what": first["what"], "target": first["target"],
                     "ratios": ratios, "median": median,
                     "met": None if median is None else median >= first["target"],
                     "runs_met": sum(r >= first["target"] for r in ratios)})
    return rows


def format_over_runs(rows: list[dict], runs: int) -> str:
    """``over_runs``'s rows as text, each target's ratios per run beside its median."""
    lines = [f"over the {runs} runs (the median of each target's ratios decides):"]
    for r in rows:
        mark = {True: "met", False: "NOT MET", None: "unknown"}[r["met"]]
        got = "—" if r["median"] is None else f"{r['median']:.2f}"
        each = ", ".join(f"{x:.2f}" for x in r["ratios"]) or "none"
        lines.append(f"  {r['what']:28} median {got:>5}  target >= {r['target']:.1f}  {mark}"
                     f"  (runs: {each}; met in {r['runs_met']} of {runs})")
    met = sum(r["met"] is True for r in rows)
    lines.append(f"{met} of {len(rows)} targets met on the median")
    return "\n".join(lines)


def main(paths: list[str | Path]) -> int:
    """Print the check of each file in ``paths`` and, for several, the check on the
    medians; 0 when every target is met (on the medians), 1 otherwise, 2 when a file
    cannot be read."""
    checks = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            print(f"shendu bench --check: cannot read {path}: {exc}")
            return 2
        doc.setdefault("path", str(path))
        rows = check(doc)
        print(format_check(doc, rows))
        checks.append(rows)
    if len(checks) == 1:
        return 0 if all(r["met"] for r in checks[0]) else 1
    rows = over_runs(checks)
    print(format_over_runs(rows, len(checks)))
    return 0 if all(r["met"] for r in rows) else 1
