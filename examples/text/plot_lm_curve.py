"""Plot a language model's training and validation loss by step and by wall time.

    python examples/text/plot_lm_curve.py examples/text/results/char_lstm.json out.png

The JSON is a results file from examples/text/results (``history`` with step, train_loss,
val_loss, elapsed_s) or a run folder's ``history.json``.
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="results JSON (with 'history') or history.json")
    ap.add_argument("out", help="image to write (.png or .svg)")
    ap.add_argument("--target", type=float, default=1.70, help="loss line to draw")
    ap.add_argument("--title", default="Character LSTM on Shakespeare")
    args = ap.parse_args()
    data = json.load(open(args.results))
    h = data.get("history", data)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, x, label in ((axes[0], h["step"], "step"),
                         (axes[1], [t / 60 for t in h["elapsed_s"]], "wall minutes")):
        ax.plot(x, h["train_loss"], label="train")
        ax.plot(x, h["val_loss"], label="validation")
        ax.axhline(args.target, color="gray", ls="--", lw=1, label=f"target {args.target}")
        ax.set_xlabel(label)
        ax.set_ylabel("nats / token")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)


if __name__ == "__main__":
    main()
