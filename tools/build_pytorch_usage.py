"""Count the PyTorch names everyday code uses, from a corpus of real source files.

Writes ``tests/api_coverage/pytorch_usage.tsv``: one row per name (``torch.X`` functions
and attributes, ``nn.X`` modules, ``F.X`` functional calls, ``optim.X`` optimizers and
schedulers, Tensor/Module/Optimizer methods called as ``.x(...)``, and the everyday
Tensor attributes), with its kind, its count, and the count per source.

The corpus (not checked in: it is other projects' code; fetch it as the header says):

- ``d2l_torch.py``: ``d2l/torch.py`` from the ``d2l`` 1.0.3 wheel on PyPI
  (``pip download d2l==1.0.3 --no-deps``), the PyTorch code of *Dive into Deep Learning*
  saved from its chapters. Its aliases (``d2l.concat = torch.cat``,
  ``d2l.reshape = lambda x, ...: x.reshape(...)``) count as the names they stand for.
- ``pytorch_examples/<path>``: files of github.com/pytorch/examples at the commits listed
  in ``SOURCES`` below, as stored by the code index this project used on the day the list
  was built; comments, docstrings and argparse set-up were left out (they hold no calls).

How names are found: Python's ``ast``, resolving import aliases (``import torch.nn as
nn``, ``from torch.optim import Adam``), so ``nn.Linear``, ``torch.nn.Linear`` and a bare
``Linear`` imported from ``torch.nn`` are one name. A ``.x(...)`` call on anything else
counts as a method when ``x`` is a method of ``torch.Tensor`` (then of ``nn.Module``, then
of ``optim.Optimizer``, in that order) in the installed PyTorch, except the names that
builtins have too (``AMBIGUOUS``: ``str.split``, ``set.add``, ...). A heuristic, good
enough for weights: a method of another library with a Tensor method's name still counts.

    python tools/build_pytorch_usage.py /tmp/corpus > tests/api_coverage/pytorch_usage.tsv
"""
from __future__ import annotations

import ast
import collections
import datetime
import hashlib
import os
import sys
import types

SOURCES = {  # corpus path -> (repository, path, commit)
    "d2l_torch.py": ("pypi:d2l==1.0.3", "d2l/torch.py",
                     "sha256 of d2l-1.0.3-py3-none-any.whl c625a01e66eb5d793a7e0a6f8582b1e1"
                     "e35dfad02b5e77f3d2ab299d07177ba6"),
    "pytorch_examples/mnist/main.py": (
        "pytorch/examples", "mnist/main.py", "09654b86fcd7b489840546d9ad0cf9b629dc50d0"),
    "pytorch_examples/word_language_model/model.py": (
        "pytorch/examples", "word_language_model/model.py",
        "001d493285083b54cacbc1334cb26338bdff2455"),
    "pytorch_examples/word_language_model/main.py": (
        "pytorch/examples", "word_language_model/main.py",
        "0f4dca7dc202798f545ca7c006c91956cb584f43"),
    "pytorch_examples/dcgan/main.py": (
        "pytorch/examples", "dcgan/main.py", "00b1e34c536d1cd312f561bc8bceea3e78e74071"),
    "pytorch_examples/vae/main.py": (
        "pytorch/examples", "vae/main.py", "0a8329cff339f4195f4c893780c18caaa51ee732"),
    "pytorch_examples/reinforcement_learning/actor_critic.py": (
        "pytorch/examples", "reinforcement_learning/actor_critic.py",
        "02d5761dfd12e36d9df6a2054820831e3d558712"),
    "pytorch_examples/time_sequence_prediction/train.py": (
        "pytorch/examples", "time_sequence_prediction/train.py",
        "04b1f3cec923d40972d998a7ed3c00c1b37e765e"),
    "pytorch_examples/siamese_network/main.py": (
        "pytorch/examples", "siamese_network/main.py",
        "11cb38f9a39476055dc6e0a1a6f287300a4da989"),
    "pytorch_examples/fast_neural_style/neural_style/transformer_net.py": (
        "pytorch/examples", "fast_neural_style/neural_style/transformer_net.py",
        "01c54ac947b7e5c78ded229c171b8b282886be31"),
    "pytorch_examples/vision_transformer/main.py": (
        "pytorch/examples", "vision_transformer/main.py",
        "14fb9c42bd39b821e385b604d5fed61ed1e3f993"),
    "pytorch_examples/gcn/main.py": (
        "pytorch/examples", "gcn/main.py", "2e70ddadbcdbb2f64517ab5463c8977d05ea3e26"),
}

# Attributes read (not called) that count as Tensor API: what training code reads.
TENSOR_ATTRS = {"shape", "grad", "data", "device", "dtype", "T", "requires_grad", "ndim",
                "grad_fn", "is_leaf", "mT"}


def _dotted(node) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


class Counter(ast.NodeVisitor):
    def __init__(self, torch, d2l_aliases: dict[str, str]):
        self.torch = torch
        self.aliases: dict[str, str] = {}
        self.d2l = d2l_aliases
        self.counts: collections.Counter = collections.Counter()

    def visit_Import(self, node):
        for a in node.names:
            if a.name == "torch" or a.name.startswith("torch."):
                self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "torch"

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        if mod == "torch" or mod.startswith("torch."):
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{mod}.{a.name}"

    def _resolve(self, parts: list[str]) -> str | None:
        head = parts[0]
        if head == "d2l" and len(parts) == 2 and parts[1] in self.d2l:
            return self.d2l[parts[1]]
        if head in self.aliases:
            return ".".join([self.aliases[head], *parts[1:]])
        return None

    def _is_module(self, dotted: str) -> bool:
        obj = self.torch
        for p in dotted.split(".")[1:]:
            obj = getattr(obj, p, None)
            if obj is None:
                return False
        return isinstance(obj, types.ModuleType)

    def generic_visit(self, node):
        for child in ast.iter_child_nodes(node):
            child._parent = node  # noqa: SLF001 - parents let us keep maximal chains only
        super().generic_visit(node)

    def visit_Attribute(self, node):
        parent = getattr(node, "_parent", None)
        if not isinstance(parent, ast.Attribute):
            parts = _dotted(node)
            full = self._resolve(parts) if parts else None
            if full is not None:
                if full.startswith("method:"):
                    self.counts[full] += 1
                elif not self._is_module(full):
                    self.counts[full] += 1
            elif isinstance(parent, ast.Call) and parent.func is node:
                self.counts["call:" + node.attr] += 1
            elif node.attr in TENSOR_ATTRS and not isinstance(node.ctx, ast.Store):
                self.counts["attr:" + node.attr] += 1
        self.generic_visit(node)

    def visit_Name(self, node):
        parent = getattr(node, "_parent", None)
        if not isinstance(parent, ast.Attribute) and node.id in self.aliases:
            full = self.aliases[node.id]
            if full != "torch" and not self._is_module(full) and \
                    isinstance(node.ctx, ast.Load):
                self.counts[full] += 1


def d2l_aliases(path: str) -> dict[str, str]:
    """``name = torch.X`` -> torch.X; ``name = lambda x, ...: x.m(...)`` -> method m."""
    out = {}
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
            parts = _dotted(value)
            if parts and parts[0] == "torch":
                out[name] = ".".join(parts)
            elif isinstance(value, ast.Lambda) and isinstance(value.body, ast.Call) and \
                    isinstance(value.body.func, ast.Attribute):
                out[name] = "method:" + value.body.func.attr
    return out


# Tensor methods that builtins have too (str.split, set.add, dict.values, list.sort,
# list.index, complex.real/imag): a call by that name cannot be told apart, so it is left out.
AMBIGUOUS = {"add", "imag", "index", "real", "sort", "split", "values"}


def _exists(torch, dotted: str) -> bool:
    obj = torch
    for p in dotted.split(".")[1:]:
        if not hasattr(obj, p):
            return False
        obj = getattr(obj, p)
    return True


def classify(torch, key: str) -> tuple[str, str] | None:
    """(display name, kind) for a counted key, or None when it is no PyTorch API."""
    nn, optim = torch.nn, torch.optim
    if key.startswith("call:") and key[5:] in AMBIGUOUS:
        return None
    if key.startswith(("call:", "method:")):
        m = key.split(":", 1)[1]
        for cls, kind in ((torch.Tensor, "tensor_method"), (nn.Module, "module_method"),
                          (optim.Optimizer, "optimizer_method")):
            if hasattr(cls, m) and not m.startswith("_"):
                return m, kind
        return None
    if key.startswith("attr:"):
        return key[5:], "tensor_attr"
    if not _exists(torch, key):  # a local variable that shadows an imported name
        return None
    rest = key[len("torch."):]
    for prefix, kind, short in (("nn.functional.", "functional", "F."),
                                ("nn.init.", "nn_init", "nn.init."),
                                ("nn.utils.", "nn_utils", "nn.utils."),
                                ("optim.lr_scheduler.", "lr_scheduler", "optim.lr_scheduler."),
                                ("optim.", "optimizer", "optim."),
                                ("utils.data.", "data", "utils.data."),
                                ("nn.", "nn", "nn.")):
        if rest.startswith(prefix):
            return short + rest[len(prefix):], kind
    return "torch." + rest, "torch"


def main(argv=None) -> int:
    import torch

    root = (argv or sys.argv[1:] or ["/tmp/h7_corpus"])[0]
    aliases = d2l_aliases(os.path.join(root, "d2l_torch.py"))
    total: collections.Counter = collections.Counter()
    by_source: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    digests = {}
    for rel, (repo, _path, _commit) in SOURCES.items():
        text = open(os.path.join(root, rel), encoding="utf-8").read()
        digests[rel] = hashlib.sha256(text.encode()).hexdigest()[:12]
        v = Counter(torch, aliases if rel == "d2l_torch.py" else {})
        v.visit(ast.parse(text))
        src = "d2l" if repo.startswith("pypi:d2l") else "examples"
        for key, n in v.counts.items():
            got = classify(torch, key)
            if got is None:
                continue
            total[got] += n
            by_source[got][src] += n
    print("# PyTorch API names used by everyday code, counted (tools/build_pytorch_usage.py)")
    print(f"# built {datetime.date.today().isoformat()} with torch {torch.__version__}; "
          "corpus (path | repository | file | commit | sha256 of the text counted):")
    for rel, (repo, path, commit) in SOURCES.items():
        print(f"#   {rel} | {repo} | {path} | {commit} | {digests[rel]}")
    print("# columns: name, kind, count (all sources), per-source counts")
    print("name\tkind\tcount\tsources")
    for (name, kind), n in sorted(total.items(), key=lambda kv: (-kv[1], kv[0])):
        srcs = ",".join(f"{s}:{c}" for s, c in sorted(by_source[(name, kind)].items()))
        print(f"{name}\t{kind}\t{n}\t{srcs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
