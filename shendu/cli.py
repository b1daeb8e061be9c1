"""The ``shendu`` command: ``train``, ``diagnose``, ``search`` and ``bench``.

``shendu train`` with no arguments trains LeNet-5 on the digits embedded in the package
and reports its test accuracy; ``shendu <command> --help`` explains each command.
The training pipeline itself is ``shendu.train.recipe.run_training``.

>>> main(["diagnose", "--train-error", "0.08", "--dev-error", "0.10"])  # doctest: +ELLIPSIS
Bias/variance diagnosis
...
0
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from collections.abc import Sequence

from .train.recipe import DEFAULTS, OPTIMIZERS, SCHEDULES

__all__ = ["main", "build_parser"]

_IMPORTED = time.perf_counter()  # fallback start-up reference where /proc is missing


def _process_age() -> float | None:
    """Seconds since this process started (Linux: from /proc), or None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _wrap(text: str) -> str:
    """A description paragraph wrapped for the terminal (the epilogs are pre-formatted,
    so the parsers keep text as given)."""
    return textwrap.fill(" ".join(text.split()), width=79)

_EPILOG_TRAIN = """examples:
  shendu train                                 LeNet-5 on the embedded digits
  shendu train --dataset fashion-mnist --epochs 10
  shendu train --model mlp --optimizer sgd --lr 0.05 --momentum 0.9
  shendu train --resume runs/20250101-120000/checkpoint.sd
                                               continue an interrupted run
  shendu train --nproc 2 --model mlp           data-parallel on 2 processes
"""
_EPILOG_SEARCH = """value syntax for the searchable options:
  0.01              a fixed value
  32,64,128         a choice among values (the only form --method grid accepts)
  1e-4:1e-1:log     log-uniform between the bounds (for learning rates)
  0:0.5             uniform between the bounds
  1:4:int           an integer between the bounds (inclusive)
example:
  shendu search --trials 8 --epochs 2 --lr 1e-4:1e-2:log --batch-size 32,64
"""


def _add_common(p: argparse.ArgumentParser, search: bool = False) -> None:
    """Options shared by ``train`` and ``search`` (in ``search`` some take value specs)."""
    d = DEFAULTS
    spec = str if search else None
    g = p.add_argument_group("model and data")
    from .vision.models.zoo import list_models
    g.add_argument("--model", choices=["lenet5", "lenet5-classic", "mlp", *list_models()],
                   metavar="NAME", help="network to train: lenet5, lenet5-classic, mlp or "
                   f"the zoo's {', '.join(list_models())} (default: {d['model']})")
    g.add_argument("--dataset", choices=["digits", "mnist", "fashion-mnist", "cifar10"],
                   help=f"digits: 5,000 MNIST digits shipped with shendu; the others are "
                        f"read from --data-dir (default: {d['dataset']})")
    g.add_argument("--data-dir", help="folder holding MNIST/Fashion-MNIST/CIFAR-10 files "
                                      "(default: $SHENDU_DATA or ~/.cache/shendu; "
                                      "Fashion-MNIST is also found in Debian's package)")
    g.add_argument("--download", action="store_true", default=None,
                   help="fetch MNIST/Fashion-MNIST/CIFAR-10 into --data-dir (or the cache) "
                        "when missing; checksums are verified")
    g.add_argument("--hidden", help=f"hidden layer widths of --model mlp, comma-separated "
                                     f"(default: {d['hidden']})")
    g.add_argument("--width", type=int, help="planes of the first ResNet stage (default 64, "
                   "torchvision's; smaller is a cheaper network for quick runs)")
    g.add_argument("--resize", type=int, help="enlarge the images to this many pixels a "
                   "side (bilinear), for models built for large images (alexnet 63, vgg 32, "
                   "nin 67 at least)")
    g.add_argument("--val-fraction", type=float, help="share of the training set held "
                   f"out as the dev set for validation (default: {d['val_fraction']})")
    g.add_argument("--limit", type=int, help="use at most this many training and test "
                                             "images (quick experiments)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"passes over the training set "
                                              f"(default: {d['epochs']})")
    g.add_argument("--batch-size", type=spec or int,
                   help=f"mini-batch size (default: {d['batch_size']})")
    g.add_argument("--lr", type=spec or float,
                   help="learning rate (default: per optimizer: "
                        + ", ".join(f"{k} {v[1]:g}" for k, v in OPTIMIZERS.items()) + ")")
    g.add_argument("--optimizer", type=spec, choices=None if search else list(OPTIMIZERS),
                   help=f"update rule: {', '.join(OPTIMIZERS)} (default: {d['optimizer']})")
    g.add_argument("--momentum", type=spec or float, help="momentum of sgd/rmsprop "
                   f"(default: {d['momentum']})")
    g.add_argument("--weight-decay", type=spec or float, help=f"L2 weight decay "
                   f"(default: {d['weight_decay']})")
    g.add_argument("--dropout", type=spec or float, help="dropout probability in the dense "
                   "layers (default: 0.3 for lenet5 and mlp; a zoo model keeps its own: 0.5 "
                   "for alexnet, vgg and nin, 0.2 for googlenet; the resnets have none)")
    g.add_argument("--schedule", type=spec, choices=None if search else SCHEDULES,
                   help=f"learning-rate schedule: {', '.join(SCHEDULES)} "
                        f"(default: {d['schedule']})")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random shifts (crops of the padded image; also flips for "
                        f"clothes and CIFAR) on training images (default: {d['augment']})")
    g.add_argument("--patience", type=int, help="stop early after this many epochs "
                   "without dev-loss improvement (default: off)")
    g.add_argument("--seed", type=int, help=f"random seed (default: {d['seed']})")
    g.add_argument("--device", help="cpu or cuda[:N] (default: cpu)")
    g.add_argument("--threads", type=int, help="BLAS threads for the matrix products; 0 "
                   "keeps the library's default (default: 1: a second thread gains little "
                   "for these small products and stalls them when the cores are shared)")
    g.add_argument("--no-progress", action="store_true",
                   help="print one line per epoch instead of a progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The ``shendu`` argument parser with its sub-commands.

    >>> "train" in build_parser().format_help()
    True
    """
    parser = argparse.ArgumentParser(
        prog="shendu", description="shendu (深度): train, diagnose and tune deep learning "
        "models. Run 'shendu <command> --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", help="train a model and report its test accuracy",
                       description=_wrap("Train a network with a dev split for validation, "
                       "then report test accuracy. Writes checkpoint.sd (resumable), "
                       "metrics.json, history.csv and learning_curves.png to --out."),
                       epilog=_EPILOG_TRAIN, formatter_class=fmt)
    _add_common(p)
    p.add_argument("--out", help="output folder (default: runs/<date>-<time>)")
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint.sd: its "
                   "saved settings are reused unless given again (e.g. more --epochs)")
    g = p.add_argument_group("data-parallel training (MPI; see 'shendu run --help')")
    g.add_argument("--nproc", type=int, metavar="N", help="train on N processes with "
                   "DistributedDataParallel, started through 'shendu run' (mpiexec). "
                   "--batch-size stays the global batch: each rank takes batch-size/N "
                   "samples per step, so the training is the same as with --nproc 1 and "
                   "only the speed changes. Rank 0 prints and writes the files")
    g.add_argument("--hosts", metavar="FILE", help="with --nproc: mpiexec hostfile "
                   "(one host[:slots] per line)")
    g.add_argument("--rank-of-job", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("diagnose", help="bias/variance report or training-curve checks",
                       description=_wrap("Tell which problem to fix first. Give error "
                       "rates (fractions like 0.08 or percentages like 8, all in one unit) "
                       "for a bias/variance report, or --history with a metrics.json / "
                       "history JSON from 'shendu train' to check the curves for "
                       "divergence, plateaus and overfitting."), formatter_class=fmt,
                       epilog="examples:\n  shendu diagnose --train-error 0.08 --dev-error "
                       "0.10 --human-error 0.01\n  shendu diagnose --history "
                       "runs/x/metrics.json")
    p.add_argument("--train-error", type=float, help="error rate on the training set")
    p.add_argument("--dev-error", type=float, help="error rate on the dev set")
    p.add_argument("--human-error", type=float, help="human-level (proxy Bayes) error")
    p.add_argument("--train-dev-error", type=float, help="error on held-out training-"
                   "distribution data (separates variance from data mismatch)")
    p.add_argument("--test-error", type=float, help="error rate on the test set")
    p.add_argument("--unit", choices=["fraction", "percent"], help="the unit of the "
                   "errors given (default: fractions when none exceeds 1, percentages when "
                   "all do; a mix is refused)")
    p.add_argument("--history", metavar="PATH", help="metrics.json or history JSON to check")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("search", help="hyperparameter search over 'train' options",
                       description=_wrap("Run short training trials in this process and "
                       "rank them by dev accuracy (never test accuracy). Searchable options "
                       "take the value syntax below; the others are fixed for all trials."),
                       epilog=_EPILOG_SEARCH, formatter_class=fmt)
    p.add_argument("--method", choices=["random", "grid", "bayesian"], default="random",
                   help="random (default), grid (every combination), or bayesian "
                        "(Optuna TPE; needs optuna)")
    p.add_argument("--trials", type=int, default=8,
                   help="trials for random/bayesian search (default: 8)")
    p.add_argument("--out", help="output folder (default: runs/search-<date>-<time>)")
    _add_common(p, search=True)

    sub.add_parser("bench", add_help=False, help="benchmarks against PyTorch "
                   "(see 'shendu bench --help')")
    sub.add_parser("rl", add_help=False, help="reinforcement learning on Gymnasium "
                   "(see 'shendu rl --help')")
    sub.add_parser("convert", add_help=False, help="convert weights between .pth, "
                   ".safetensors, .onnx and shendu's format (see 'shendu convert --help')")
    sub.add_parser("inspect", add_help=False, help="list a weights file's tensors or an "
                   "ONNX graph's ops (see 'shendu inspect --help')")

    sub.add_parser("detect", add_help=False, help="train object detectors on the canvas "
                   "dataset (see 'shendu detect --help')")
    sub.add_parser("run", add_help=False, help="run a script on N processes through MPI "
                   "(see 'shendu run --help')")
    sub.add_parser("text", add_help=False, help="language models on text "
                   "(see 'shendu text --help')")

    sub.add_parser("style", add_help=False, help="neural style transfer "
                   "(see 'shendu style --help')")
    return parser


_TRAIN_KEYS = tuple(DEFAULTS)
# what a resumed run may set anew: how long it goes on and where it runs
_RESUME_MAY_CHANGE = ("epochs", "patience", "device", "threads", "data_dir", "download")


def _overrides(args: argparse.Namespace) -> dict:
    """The training settings given on the command line (None: not given)."""
    return {k: getattr(args, k, None) for k in _TRAIN_KEYS}


def _default_out(prefix: str = "") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = os.path.join("runs", prefix + stamp), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join("runs", f"{prefix}{stamp}-{n}")
    return path


def _launch_ranks(args: argparse.Namespace, argv: list[str]) -> int:
    """``shendu train --nproc N``: run this same command on N ranks through ``shendu run``
    (its mpiexec, rank prefixes, heartbeats and clean-up), each rank marked as one."""
    from .distributed import launcher

    if args.nproc < 1:
        print(f"shendu train: error: --nproc must be at least 1, got {args.nproc}",
              file=sys.stderr)
        return 2
    batch = args.batch_size or DEFAULTS["batch_size"]
    if args.resume is None and batch % args.nproc:   # fail before starting any rank
        print(f"shendu train: error: --batch-size {batch} is the global batch and must "
              f"split evenly over --nproc {args.nproc} ranks", file=sys.stderr)
        return 2
    if args.resume is None:   # chosen once, here: the ranks' clocks may tick apart
        out = args.out or _default_out()
    else:
        out = args.out or os.path.dirname(os.path.abspath(args.resume))
    out = os.path.abspath(out)   # the ranks' working folder may differ (other hosts)
    rest = _without(argv, ("--nproc", "--hosts", "--out", "--resume"))
    if args.resume is not None:
        rest += ["--resume", os.path.abspath(args.resume)]
    threads = args.threads if args.threads else max(1, (os.cpu_count() or 1) // args.nproc)
    entry = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train",
                         "_rank_entry.py")
    cmd = ["--nproc", str(args.nproc), "--threads", str(threads)]
    if args.hosts:
        cmd += ["--hosts", args.hosts]
    return launcher.main([*cmd, entry, "train", *rest, "--out", out,
                          "--nproc", str(args.nproc), "--rank-of-job"])


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` less the given options and their values (``--opt v`` or ``--opt=v``).

    >>> _without(["--epochs", "2", "--nproc=2", "--out", "x"], ("--nproc", "--out"))
    ['--epochs', '2']
    """
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not a.startswith(tuple(o + "=" for o in options)):
            out.append(a)
    return out


def _train(args: argparse.Namespace, argv: list[str] = ()) -> int:
    from .distributed import _rank
    from .serialization import load
    from .train.recipe import resolve_config, run_training

    if args.nproc is not None and args.nproc != 1 and not args.rank_of_job:
        return _launch_ranks(args, list(argv))
    data_parallel = args.nproc is not None
    speaks = not args.rank_of_job or _rank.launched("RANK", 0) == 0
    given = _overrides(args)
    out = args.out
    if args.resume is not None:
        saved = load(args.resume)
        if not isinstance(saved, dict) or "extra" not in saved:
            raise ValueError(f"{args.resume} is not a checkpoint written by shendu train")
        cfg = dict((saved["extra"] or {}).get("config") or {})
        changed = sorted(k for k, v in given.items() if v is not None
                         and k not in _RESUME_MAY_CHANGE and k in cfg and cfg[k] != v)
        if changed:
            # the checkpoint's model, optimizer, data split and random streams came from
            # these settings: a different value would be silently overridden or mixed in
            raise ValueError(
                "--resume continues the saved run, whose settings cannot change: "
                + ", ".join(f"--{k.replace('_', '-')} {given[k]} (saved: {cfg[k]})"
                            for k in changed)
                + f"; only {', '.join('--' + k.replace('_', '-') for k in _RESUME_MAY_CHANGE)}"
                " may differ")
        cfg.update({k: v for k, v in given.items() if v is not None})
        out = out or os.path.dirname(os.path.abspath(args.resume))
        if speaks:
            print(f"Resuming from {args.resume} (epoch {saved['epoch']})")
        planned = (saved["extra"].get("config") or {}).get("epochs")
        if speaks and planned is not None and cfg.get("epochs") != planned \
                and cfg.get("schedule", DEFAULTS["schedule"]) != "none":
            print(f"Note: the saved run planned its learning-rate schedule for {planned} "
                  "epochs; optimizer and schedule state are restored as saved, so epochs "
                  "beyond that continue from the schedule's final learning rate")
    else:
        cfg = given
    cfg = resolve_config(cfg)
    out = out or _default_out()
    try:
        res = run_training(cfg, out, resume=args.resume,
                           progress="line" if args.no_progress else True,
                           data_parallel=data_parallel)
    except KeyboardInterrupt:
        ckpt = os.path.join(out, "checkpoint.sd")
        hint = (f"; continue with: shendu train --resume {ckpt}" if os.path.exists(ckpt)
                else " before the first checkpoint")
        print(f"\nshendu train: interrupted{hint}", file=sys.stderr)
        return 130
    if not speaks:   # rank 0 reports for the data-parallel job
        return 0
    test, paths = res["test"], res["paths"]
    if "data_parallel" in res:
        dp = res["data_parallel"]
        print(f"Data parallel: {dp['world_size']} rank(s) x batch {dp['per_rank_batch']}; "
              "replicas " + ("identical" if dp["replicas_identical"] else
                             "DIFFER: " + ", ".join(d[:12] for d in dp["replica_digests"])))
    print(f"Test accuracy: {test['acc']:.4f} (loss {test['loss']:.4f}) on "
          f"{res['data']['sizes']['test']} test images")
    print(f"Checkpoint:      {paths.get('checkpoint')}")
    print(f"Metrics:         {paths.get('metrics')}")
    print(f"Learning curves: {paths.get('plot', '(not written: matplotlib missing)')}")
    print(_timing_line(res))
    return 0


def _timing_line(res: dict) -> str:
    """Wall time of the whole command, split into start-up and the run's phases."""
    t = res.get("timing", {})
    run = res["time_s"]
    age = _process_age()
    total = age if age is not None and age >= run else run + time.perf_counter() - _IMPORTED
    parts = [f"start-up {max(0.0, total - run):.1f} s (Python and imports)",
             f"data and model {t.get('setup_s', 0):.1f} s",
             f"training {t.get('train_s', 0):.1f} s (first-use kernel compiles included)",
             f"evaluation {t.get('evaluate_s', 0):.1f} s"]
    if "save_s" in t:
        parts.append(f"saving {t['save_s']:.1f} s")
    return f"Done in {total:.1f} s: " + ", ".join(parts)


def _parse_spec(name: str, text: str):
    """A search value spec (see the search epilog) as a value or a distribution."""
    from .train.search import Choice, IntUniform, LogUniform, Uniform

    def scalar(s: str):
        for cast in (int, float):
            try:
                return cast(s)
            except ValueError:
                pass
        return s

    parts = text.split(":")
    try:
        if len(parts) == 3 and parts[2] == "log":
            return LogUniform(float(parts[0]), float(parts[1]))
        if len(parts) == 3 and parts[2] == "int":
            return IntUniform(int(parts[0]), int(parts[1]))
        if len(parts) == 2:
            return Uniform(float(parts[0]), float(parts[1]))
    except ValueError as exc:
        raise ValueError(f"--{name.replace('_', '-')} {text!r}: {exc}") from None
    if len(parts) != 1:
        raise ValueError(f"--{name.replace('_', '-')} {text!r}: expected a value, a,b,c, "
                         "low:high, low:high:log or low:high:int")
    values = [scalar(v) for v in text.split(",")]
    return Choice(values) if len(values) > 1 else values[0]


_SEARCHABLE = ("lr", "batch_size", "optimizer", "momentum", "weight_decay", "dropout",
               "schedule")


def _search(args: argparse.Namespace) -> int:
    from .train import search as S
    from .train.recipe import resolve_config, run_training

    given = _overrides(args)
    space = {k: _parse_spec(k, given.pop(k)) for k in _SEARCHABLE if given.get(k) is not None}
    if not space:
        space = {"lr": S.LogUniform(3e-4, 1e-2)}
    given["epochs"] = given["epochs"] or 2
    out = args.out or _default_out("search-")
    os.makedirs(out, exist_ok=True)
    counter = iter(range(10 ** 6))

    def train_fn(params: dict) -> dict:
        cfg = resolve_config({**given, **params})
        res = run_training(cfg, os.path.join(out, f"trial-{next(counter):03d}"),
                           evaluate_test=False, save=False, progress=False,
                           log=lambda s: None)
        h = res["history"]
        return {"val_acc": h["val_acc"][-1], "val_loss": h["val_loss"][-1],
                "train_acc": h["train_acc"][-1]}

    print(f"{args.method} search over {space} ({_plural(given['epochs'], 'epoch')} per "
          f"trial) -> {out}")
    if args.method == "grid":
        grid = {k: v.options if isinstance(v, S.Choice) else v for k, v in space.items()}
        result = S.grid_search(train_fn, grid, metric="val_acc", verbose=True)
    elif args.method == "bayesian":
        result = S.bayesian_search(train_fn, space, args.trials, seed=given["seed"] or 0,
                                   metric="val_acc", verbose=True)
    else:
        result = S.random_search(train_fn, space, args.trials, seed=given["seed"] or 0,
                                 metric="val_acc", verbose=True)
    print("\nTrials ranked by dev accuracy:\n" + result.table())
    path = os.path.join(out, "search.json")
    result.to_json(path)
    best = " ".join(f"--{k.replace('_', '-')} {v:.4g}" if isinstance(v, float) else
                    f"--{k.replace('_', '-')} {v}" for k, v in result.best.params.items())
    print(f"\nBest: shendu train {best}\nResults: {path}")
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from .train.diagnose import diagnose, diagnose_history

    if args.history is None and (args.train_error is None or args.dev_error is None):
        print("shendu diagnose: give --train-error and --dev-error, or --history PATH "
              "(see shendu diagnose --help)", file=sys.stderr)
        return 2
    out: dict = {}
    errors = {"train_error": args.train_error, "dev_error": args.dev_error,
              "train_dev_error": args.train_dev_error, "test_error": args.test_error}
    if args.history is not None:
        try:
            with open(args.history, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            print(f"shendu diagnose: cannot read {args.history}: {exc}", file=sys.stderr)
            return 2
        history = data.get("history", data) if isinstance(data, dict) else data
        found = diagnose_history(history)
        out["history"] = found.to_dict()
        if not args.json:
            print(found)
        for k, v in (data.get("final") or {}).items():  # errors measured by shendu train
            if errors.get(k) is None:
                errors[k] = v
    if errors["train_error"] is not None and errors["dev_error"] is not None:
        d = diagnose(errors["train_error"], errors["dev_error"], errors["test_error"],
                     errors["train_dev_error"], args.human_error, unit=args.unit)
        out["bias_variance"] = d.to_dict()
        if not args.json:
            print(("\n" if args.history else "") + d.report())
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``shendu`` command line with ``argv`` (default ``sys.argv[1:]``).

    A closed output pipe (``shendu ... | head``) ends the command quietly, as other
    command-line tools do, with exit status 141 (128 + SIGPIPE)."""
    try:
        try:
            code = _main(argv)
        finally:  # also after argparse's SystemExit (--help): a broken pipe shows here
            sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no real file (a test's capture)
            pass
        return 141


def _main(argv: Sequence[str] | None) -> int:
    from .data.datasets import ChecksumError, DatasetNotFoundError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "search", "bench", "text"):
        # this process trains or measures and is ours: keep freed memory (see
        # shendu.backend.keep_freed_memory; SHENDU_KEEP_FREED_MEMORY=0 refuses)
        from .backend import runtime

        runtime.own_process_defaults()
    if argv and argv[0] == "bench":  # its own parser owns every option after the word
        from . import bench
        return int(bench.main(argv[1:]) or 0)
    if argv and argv[0] == "rl":  # shendu.rl's parser owns its options too
        from .rl import cli as rl_cli
        return int(rl_cli.main(argv[1:]) or 0)
    if argv and argv[0] in ("convert", "inspect"):  # weights formats: their own parser
        from . import _cli_convert
        return _cli_convert.main(argv)

    if argv and argv[0] == "detect":  # shendu._cli_detect owns its options
        from . import _cli_detect
        return int(_cli_detect.main(argv[1:]) or 0)

    if argv and argv[0] == "text":  # shendu._cli_text's parser owns its options
        from . import _cli_text
        return int(_cli_text.main(argv[1:]) or 0)

    if argv and argv[0] == "style":  # shendu/_cli_style.py owns its options
        from . import _cli_style
        return int(_cli_style.main(argv[1:]) or 0)
    if argv and argv[0] == "run":  # the launcher's parser owns its options too
        from .distributed import launcher
        return int(launcher.main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "train":
            return _train(args, argv[1:])
        if args.command == "diagnose":
            return _diagnose(args)
        return _search(args)
    except (FileNotFoundError, ValueError, ImportError, ChecksumError) as exc:
        # a missing dataset, a bad value, an optional package: say so without a traceback
        print(f"shendu {args.command}: error: {exc}", file=sys.stderr)
        if isinstance(exc, DatasetNotFoundError):
            print("From the command line: add --download to fetch the files (checksums "
                  "verified), or give --data-dir DIR where they are.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
