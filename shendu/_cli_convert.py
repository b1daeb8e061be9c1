"""``shendu convert IN OUT`` and ``shendu inspect FILE``: move weights between formats.

Formats go by file extension: ``.pth``/``.pt``/``.bin``/``.ckpt`` are ``torch.save``
checkpoints (read only: shendu writes no pickles), ``.safetensors``, ``.onnx`` (its
initializers; needs the ``onnx`` package) and anything else shendu's own format. Inputs
other than ONNX are recognised by their content as :func:`shendu.load` does.

>>> import os, tempfile, shendu as sd
>>> d = tempfile.mkdtemp()
>>> sd.save({"model": {"fc.weight": sd.ones(2, 3)}, "epoch": 4}, os.path.join(d, "c.sd"))
>>> main(["convert", os.path.join(d, "c.sd"), os.path.join(d, "w.safetensors")])
wrote 1 tensor to ... (skipped non-tensor entries: epoch)
0
>>> main(["inspect", os.path.join(d, "w.safetensors")])
safetensors ...: 1 tensor, 6 parameters (24 bytes)
name               shape   dtype
model.fc.weight    (2, 3)  float32
0
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

_PYTORCH = (".pth", ".pt", ".bin", ".ckpt")
_KINDS = ("shendu", "safetensors", "onnx", "pytorch")


def kind_of(path: str) -> str:
    """The format a path's extension names: onnx, safetensors, pytorch or shendu."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        return "onnx"
    if ext == ".safetensors":
        return "safetensors"
    return "pytorch" if ext in _PYTORCH else "shendu"


def read(path: str):
    """The contents of ``path``: a (nested) dict of tensors, or an ONNX file's weights."""
    if kind_of(path) == "onnx":
        from .interop.onnx_weights import load_initializers

        return load_initializers(path)
    from .serialization import load

    return load(path, map_location="cpu")


def flatten(obj, prefix: str = "", out=None, skipped=None):
    """Tensors of a nested checkpoint under dotted names, and the names of other values."""
    from .tensor import Tensor

    out = OrderedDict() if out is None else out
    skipped = [] if skipped is None else skipped
    if isinstance(obj, (Tensor, np.ndarray)):
        out[prefix or "tensor"] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out, skipped)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out, skipped)
    else:
        skipped.append(prefix or "<value>")
    return out, skipped


def _select(obj, key: str | None, path: str):
    for part in key.split(".") if key else ():
        if not isinstance(obj, dict) or part not in obj:
            raise ValueError(f"{path} has no entry {key!r} (top-level keys: "
                             f"{', '.join(map(str, obj)) if isinstance(obj, dict) else '-'})")
        obj = obj[part]
    return obj


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def convert(src: str, dst: str, key: str | None = None, to: str | None = None) -> str:
    """Convert ``src`` to ``dst``; returns a one-line summary."""
    fmt = to or kind_of(dst)
    if fmt == "pytorch":
        raise ValueError(f"cannot write {dst}: .pth/.pt files are pickles, which shendu never "
                         "writes; use .safetensors (PyTorch reads it with "
                         "safetensors.torch.load_file) or shendu's format")
    obj = _select(read(src), key, src)
    if fmt == "shendu":
        from .serialization import save

        save(obj, dst)
        return f"wrote {dst}"
    tensors, skipped = flatten(obj)
    if fmt == "safetensors":
        from .interop.safetensors import save_file

        save_file(tensors, dst)
    else:
        from .interop.onnx_weights import save_initializers

        save_initializers(tensors, dst)
    note = f" (skipped non-tensor entries: {', '.join(skipped)})" if skipped else ""
    return f"wrote {_plural(len(tensors), 'tensor')} to {dst}{note}"


def _rows(path: str, tensors: dict, skipped: list, obj, label: str) -> list[str]:
    arrays = {k: np.asarray(v) for k, v in tensors.items()}
    params = sum(a.size for a in arrays.values())
    nbytes = sum(a.nbytes for a in arrays.values())
    table = [("name", "shape", "dtype")] + [(k, str(tuple(a.shape)), str(a.dtype))
                                            for k, a in arrays.items()]
    for name in skipped:
        value = _select(obj, name, path) if isinstance(obj, dict) else obj
        table.append((name, repr(value)[:40], f"({type(value).__name__})"))
    w0 = max(len(r[0]) for r in table)
    w1 = max(len(r[1]) for r in table)
    lines = [f"{label} {path}: {_plural(len(arrays), 'tensor')}, "
             f"{_plural(params, 'parameter')} ({nbytes:,} bytes)"]
    return lines + [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in table]


def _kind_by_content(path: str) -> str:
    from .interop import pytorch

    with open(path, "rb") as fh:
        head = fh.read(32)
    if pytorch.is_legacy(head):
        return "PyTorch checkpoint (legacy)"
    if head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"PK"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as zf:
                if pytorch.is_torch_zip(zf.namelist()):
                    return "PyTorch checkpoint"
        except zipfile.BadZipFile:
            pass
    return "shendu checkpoint"


def inspect(path: str) -> list[str]:
    """The lines ``shendu inspect`` prints for ``path``."""
    if kind_of(path) != "onnx":
        obj = read(path)
        tensors, skipped = flatten(obj)
        return _rows(path, tensors, skipped, obj, _kind_by_content(path))
    from .interop.onnx_weights import graph_ops, load_initializers

    model, ops = graph_ops(path)
    g = model.graph
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    lines = [f"ONNX model {path} (IR {model.ir_version}, opset {opsets}, producer "
             f"{model.producer_name or '?'}): {_plural(len(g.node), 'node')}"]
    lines.append("inputs:  " + ", ".join(i.name for i in g.input) if g.input else "inputs:  -")
    lines.append("outputs: " + ", ".join(o.name for o in g.output) if g.output
                 else "outputs: -")
    lines += ["op" + " " * 22 + "count"] + [f"{op:<24}{n}" for op, n in ops.most_common()]
    weights = load_initializers(path)
    return lines + _rows(path, weights, [], weights, "initializers")[1:] if weights else lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shendu", description="convert or inspect weights")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="convert weights between formats",
                       description="Convert IN to OUT by their extensions: .pth/.pt/.bin/"
                       ".ckpt (PyTorch, read only), .safetensors, .onnx (initializers) or "
                       "shendu's format (any other name). Nested checkpoints flatten to "
                       "dotted names for safetensors and ONNX.")
    p.add_argument("src", metavar="IN")
    p.add_argument("dst", metavar="OUT")
    p.add_argument("--key", help="convert only this entry of IN (e.g. state_dict or "
                   "model.encoder)")
    p.add_argument("--to", choices=[k for k in _KINDS if k != "pytorch"],
                   help="OUT's format when its extension does not say")
    p = sub.add_parser("inspect", help="list a file's tensors or an ONNX graph's ops")
    p.add_argument("file", metavar="FILE")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        if args.command == "convert":
            print(convert(args.src, args.dst, args.key, args.to))
        else:
            print("\n".join(inspect(args.file)))
    except (ValueError, TypeError, ImportError, OSError) as exc:
        print(f"shendu {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
