"""Graphviz output: ``to_dot`` (source text, no dependency) and ``draw`` (rendered file).

Ops are boxes, graph inputs ellipses, parameters small grey notes; nodes sit in nested
clusters by module path (``features`` > ``features.0``); edges carry the tensor's dtype and
shape.
"""
from __future__ import annotations

import os
import shutil

from .graph import Graph, Value

INSTALL_HINT = ("install the Graphviz 'dot' program (Debian/Ubuntu: apt-get install graphviz; "
                "macOS: brew install graphviz) and the Python package (pip install "
                "'shendu[graph]'); graph.to_dot() gives the source without either")


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shape(v: Value) -> str:
    return f"{v.dtype.name}[{','.join(map(str, v.shape))}]"


def to_dot(graph: Graph, *, show_params: bool = True, rankdir: str = "TB",
           name: str = "graph") -> str:
    """Graphviz (DOT) source of ``graph``.

    Args:
        show_params: draw parameters, buffers and constants as inputs of their ops.
        rankdir: ``"TB"`` (top to bottom) or ``"LR"``.

    >>> import shendu as sd
    >>> net = sd.nn.Sequential(sd.nn.Linear(3, 2), sd.nn.ReLU())
    >>> src = sd.jit.trace(net, sd.ones(4, 3)).graph.to_dot()
    >>> src.startswith("digraph") and 'label="float32[4,2]"' in src and "cluster_0" in src
    True
    """
    ids: dict = {}

    def vid(v: Value) -> str:
        if v.kind == "node":
            return ids[id(v.node)]
        return ids.setdefault(id(v), f"v{len(ids)}")

    for k, n in enumerate(graph):
        ids[id(n)] = f"n{k}"
    lines = [f"digraph {_q(name)} {{", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8];']
    for v in graph.inputs:
        lines.append(f"  {vid(v)} [shape=ellipse, label={_q(v.name + chr(10) + _shape(v))}];")
    # nested clusters: one per module path prefix that holds nodes
    tree: dict = {}
    for n in graph:
        parts = n.module.split(".") if n.module else []
        sub = tree
        for i in range(len(parts)):
            sub = sub.setdefault(".".join(parts[: i + 1]), {})
        sub.setdefault(None, []).append(n)
    counter = [0]
    types = {n.module: n.module_type for n in graph}

    def emit(sub, depth):
        pad = "  " * depth
        for n in sub.get(None, []):
            label = n.op if n.op == n.name.rsplit("_", 1)[0] else f"{n.op}\n{n.name}"
            style = ", style=filled, fillcolor=lightyellow" if n.op.startswith("fused") else ""
            lines.append(f"{pad}{ids[id(n)]} [shape=box{style}, label={_q(label)}];")
        for path, child in sub.items():
            if path is None:
                continue
            lines.append(f"{pad}subgraph cluster_{counter[0]} {{")
            counter[0] += 1
            label = f"{path}: {types[path]}" if types.get(path) else path
            lines.append(f"{pad}  label={_q(label)}; style=rounded; color=grey60;")
            emit(child, depth + 1)
            lines.append(f"{pad}}}")

    emit(tree, 1)
    for n in graph:
        for v in n.inputs:
            if v.kind in ("param", "buffer", "const"):
                if not show_params:
                    continue
                if id(v) not in ids:
                    lines.append(f"  {vid(v)} [shape=note, style=filled, fillcolor=grey90, "
                                 f"fontsize=8, label={_q(v.name)}];")
            lines.append(f"  {vid(v)} -> {ids[id(n)]} [label={_q(_shape(v))}];")
    for k, v in enumerate(graph.outputs):
        lines.append(f'  out{k} [shape=ellipse, style=bold, label={_q("output " + _shape(v))}];')
        lines.append(f"  {vid(v)} -> out{k};")
    lines.append("}")
    return "\n".join(lines)


def draw(graph: Graph, path, **kwargs) -> str:
    """Render ``graph`` to ``path``; the format is the extension (svg, png, pdf).

    Needs the ``graphviz`` Python package and Graphviz's ``dot`` program; without them it
    raises ``RuntimeError`` saying what to install. Returns ``path``.
    """
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    try:
        import graphviz
    except ImportError:
        raise RuntimeError(f"draw: the graphviz Python package is missing; {INSTALL_HINT}") \
            from None
    if shutil.which("dot") is None:
        raise RuntimeError(f"draw: Graphviz's 'dot' program is not on PATH; {INSTALL_HINT}")
    data = graphviz.Source(to_dot(graph, **kwargs), format=fmt).pipe()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path
