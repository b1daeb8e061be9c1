"""Graph mode: trace LeNet-5 and an LSTM cell, print their graphs and FLOP summaries, and
draw them with Graphviz (when the `dot` program and the graphviz package are installed).

    python examples/graph_mode.py [--out DIR]
"""
import argparse
import os

import shendu as sd
from shendu import nn
from shendu.vision.models import LeNet5


def show(name, module, example, out_dir):
    gm = sd.jit.trace(module, example)
    print(f"== {name}: {len(gm.graph)} nodes")
    print(gm.graph)
    print()
    print(gm.graph.summary())
    dot_path = os.path.join(out_dir, f"{name}.dot")
    with open(dot_path, "w") as f:
        f.write(gm.graph.to_dot())
    try:
        print("drew", gm.graph.draw(os.path.join(out_dir, f"{name}.svg")))
    except RuntimeError as e:  # no Graphviz here: the .dot source is still written
        print(f"wrote {dot_path}; not drawn: {e}")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for the .dot/.svg files")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sd.manual_seed(0)
    show("lenet5", LeNet5().eval(), sd.randn(1, 1, 28, 28), args.out)
    show("lstm_cell", nn.LSTMCell(8, 16), sd.randn(1, 8), args.out)


if __name__ == "__main__":
    main()
