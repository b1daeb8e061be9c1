"""Hyperparameter search: grid, random (with log-scale rates) and Bayesian (Optuna).

As the course notes advise (seed 000 §8): prefer random search to a grid (each trial
tries a new value of *every* hyperparameter), sample rates on a log scale (1e-4..1e-1
gives each decade equal trials), and judge trials on the dev set, never the test set.

A search calls ``train_fn(params) -> dict of metrics`` once per trial and returns a
:class:`SearchResult`, its trials sorted best first by ``metric``.

>>> space = {"lr": LogUniform(1e-4, 1e-1), "layers": Choice([1, 2])}
>>> fake = lambda p: {"val_acc": 1 - abs(p["lr"] - 0.01) - 0.01 * p["layers"]}
>>> res = random_search(fake, space, n_trials=20, seed=0)
>>> res.metric, len(res), res.best.params["layers"]
('val_acc', 20, 1)
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Uniform", "LogUniform", "IntUniform", "Choice", "Trial", "SearchResult",
           "grid_search", "random_search", "bayesian_search"]

_DEFAULT_METRICS = ("val_acc", "val_accuracy", "dev_acc", "val_loss", "dev_loss", "accuracy",
                    "acc", "loss", "score")


class Uniform:
    """A float drawn uniformly from ``[low, high)``."""

    def __init__(self, low: float, high: float):
        if not low < high:
            raise ValueError(f"{type(self).__name__}: need low < high, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.low:g}, {self.high:g})"


class LogUniform(Uniform):
    """A positive float whose logarithm is uniform: each decade gets equal probability.

    >>> r = LogUniform(1e-4, 1e-1).sample(np.random.default_rng(0))
    >>> 1e-4 <= r < 1e-1
    True
    """

    def __init__(self, low: float, high: float):
        super().__init__(low, high)
        if low <= 0:
            raise ValueError(f"LogUniform: low must be > 0, got {low}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


class IntUniform:
    """An integer from ``low`` to ``high`` inclusive (``log=True``: log-scale, e.g. widths).

    >>> IntUniform(1, 3).sample(np.random.default_rng(0)) in (1, 2, 3)
    True
    """

    def __init__(self, low: int, high: int, log: bool = False):
        if not int(low) <= int(high) or (log and low < 1):
            raise ValueError(f"IntUniform: need low <= high (and low >= 1 with log), got "
                             f"{low}, {high}")
        self.low, self.high, self.log = int(low), int(high), bool(log)

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(int(v), self.high)
        return int(rng.integers(self.low, self.high + 1))

    def __repr__(self) -> str:
        return f"IntUniform({self.low}, {self.high}{', log=True' if self.log else ''})"


class Choice:
    """One of a fixed list of options (numbers, strings, ...)."""

    def __init__(self, options: Sequence):
        self.options = list(options)
        if not self.options:
            raise ValueError("Choice: needs at least one option")

    def sample(self, rng: np.random.Generator):
        return self.options[int(rng.integers(len(self.options)))]

    def __repr__(self) -> str:
        return f"Choice({self.options!r})"


_DISTRIBUTIONS = (Uniform, IntUniform, Choice)


def _as_distribution(name: str, value):
    if isinstance(value, _DISTRIBUTIONS):
        return value
    if isinstance(value, (list, tuple)):
        return Choice(value)
    return Choice([value])  # a constant


class Trial(NamedTuple):
    """One trial: its number (run order), parameters, metrics, seconds, and error text."""

    number: int
    params: dict
    metrics: dict
    time: float
    error: str | None = None


class SearchResult:
    """Trials sorted best first by ``metric`` (failed or NaN trials last).

    ``best`` is the top trial; ``table()`` a text table; ``to_json()`` JSON text.
    """

    def __init__(self, trials: Sequence[Trial], metric: str, mode: str):
        self.metric, self.mode = metric, mode

        def key(t: Trial):
            v = t.metrics.get(metric)
            if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
                return (1, 0.0)
            return (0, -v if mode == "max" else v)
        self.trials = sorted(trials, key=key)

    @property
    def best(self) -> Trial:
        if not self.trials:
            raise ValueError("SearchResult: no trials were run")
        return self.trials[0]

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self):
        return iter(self.trials)

    def __getitem__(self, i: int) -> Trial:
        return self.trials[i]

    def table(self, max_rows: int | None = None) -> str:
        """The trials as an aligned text table, best first."""
        pkeys = list(dict.fromkeys(k for t in self.trials for k in t.params))
        mkeys = list(dict.fromkeys(k for t in self.trials for k in t.metrics))
        if self.metric in mkeys:  # the ranking metric first
            mkeys.remove(self.metric)
            mkeys.insert(0, self.metric)
        head = ["rank", "trial", *pkeys, *mkeys, "time_s"]
        rows = [head]
        for rank, t in enumerate(self.trials[:max_rows], 1):
            cells = [str(rank), str(t.number)]
            cells += [_fmt(t.params.get(k)) for k in pkeys]
            cells += [_fmt(t.metrics.get(k)) if t.error is None else "failed" for k in mkeys]
            rows.append(cells + [f"{t.time:.1f}"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    __str__ = table

    def to_dict(self) -> dict:
        return {"metric": self.metric, "mode": self.mode,
                "trials": [t._asdict() for t in self.trials]}

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """JSON text of ``to_dict()`` (also written to ``path`` when given)."""
        text = json.dumps(self.to_dict(), indent=1, default=_jsonable)
        if path is not None:
            from .checkpoint import atomic_write_text
            atomic_write_text(path, text)
        return text


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _mode_for(metric: str, mode: str) -> str:
    if mode == "auto":
        return "min" if ("loss" in metric or "err" in metric) else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"search: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class _Runner:
    """Runs trials, records results, and works out the ranking metric."""

    def __init__(self, train_fn: Callable[[dict], Any], metric: str | None, catch: bool,
                 verbose: bool):
        if not callable(train_fn):
            raise TypeError(f"search: train_fn must be callable, got {type(train_fn).__name__}")
        self.train_fn, self.metric, self.catch, self.verbose = train_fn, metric, catch, verbose
        self.trials: list[Trial] = []

    def run(self, params: dict) -> Trial:
        start, error, metrics = time.perf_counter(), None, {}
        try:
            out = self.train_fn(dict(params))
            metrics = {"score": float(out)} if isinstance(out, (int, float)) else dict(out)
        except Exception as exc:
            if not self.catch:
                raise
            error = f"{type(exc).__name__}: {exc}"
        if self.metric is None and metrics:
            found = [k for k in _DEFAULT_METRICS if k in metrics]
            if not found:
                raise ValueError(f"search: cannot tell which metric to rank by among "
                                 f"{sorted(metrics)}; pass metric='...'")
            self.metric = found[0]
        trial = Trial(len(self.trials), dict(params), metrics,
                      round(time.perf_counter() - start, 3), error)
        self.trials.append(trial)
        if self.verbose:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
            res = error or ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
            print(f"trial {trial.number}: {shown} -> {res}", flush=True)
        return trial

    def result(self, mode: str) -> SearchResult:
        metric = self.metric or "score"
        return SearchResult(self.trials, metric, _mode_for(metric, mode))


def grid_search(train_fn: Callable[[dict], Any], grid: Mapping[str, Sequence], *,
                metric: str | None = None, mode: str = "auto", catch: bool = False,
                verbose: bool = False) -> SearchResult:
    """Try every combination of the values in ``grid``.

    Args:
        train_fn: ``train_fn(params) -> {'val_acc': ..., ...}`` (or a single number).
        grid: ``{name: [values...]}``; a scalar counts as one value.
        metric: the result key to rank by; default: the first of ``val_acc``,
            ``val_loss``, ``acc``, ``loss``, ``score``... found in the results.
        mode: ``'max'``, ``'min'`` or ``'auto'`` (min for losses and errors).
        catch: record a trial that raises as failed instead of stopping the search.
        verbose: print one line per trial.

    >>> res = grid_search(lambda p: {"val_loss": (p["x"] - 2) ** 2 + p["y"]},
    ...                   {"x": [1, 2, 3], "y": [0, 1]})
    >>> len(res), res.best.params
    (6, {'x': 2, 'y': 0})
    """
    names = list(grid)
    values = []
    for n in names:
        v = grid[n]
        if isinstance(v, _DISTRIBUTIONS) and not isinstance(v, Choice):
            raise TypeError(f"grid_search: {n!r} is a {type(v).__name__}; a grid needs "
                            "explicit values (use random_search for distributions)")
        values.append(v.options if isinstance(v, Choice) else
                      list(v) if isinstance(v, (list, tuple)) else [v])
    runner = _Runner(train_fn, metric, catch, verbose)
    for combo in itertools.product(*values):
        runner.run(dict(zip(names, combo)))
    return runner.result(mode)


def random_search(train_fn: Callable[[dict], Any], space: Mapping[str, Any],
                  n_trials: int = 10, seed: int | None = 0, *, metric: str | None = None,
                  mode: str = "auto", catch: bool = False,
                  verbose: bool = False) -> SearchResult:
    """Try ``n_trials`` parameter sets drawn at random from ``space``.

    Args:
        train_fn, metric, mode, catch, verbose: as for :func:`grid_search`.
        space: ``{name: distribution}``: ``LogUniform``, ``Uniform``, ``IntUniform``,
            ``Choice``, a list (a choice) or a constant.
        n_trials: how many trials.
        seed: seed of the sampling (the same seed gives the same trials).

    Example: see the module docstring.
    """
    if n_trials < 1:
        raise ValueError(f"random_search: n_trials must be >= 1, got {n_trials}")
    dists = {k: _as_distribution(k, v) for k, v in space.items()}
    rng = np.random.default_rng(seed)
    runner = _Runner(train_fn, metric, catch, verbose)
    for _ in range(n_trials):
        runner.run({k: d.sample(rng) for k, d in dists.items()})
    return runner.result(mode)


def bayesian_search(train_fn: Callable[[dict], Any], space: Mapping[str, Any],
                    n_trials: int = 20, seed: int | None = 0, *, metric: str | None = None,
                    mode: str = "auto", catch: bool = False,
                    verbose: bool = False) -> SearchResult:
    """Bayesian optimisation (Optuna's TPE sampler): later trials go where earlier ones
    scored well. Arguments as for :func:`random_search`; needs ``pip install optuna``.

    >>> res = bayesian_search(lambda p: {"val_loss": (p["x"] - 1) ** 2},
    ...                       {"x": Uniform(-3, 3)}, n_trials=15)  # doctest: +SKIP
    """
    try:
        import optuna
    except ImportError as exc:
        raise ImportError("bayesian_search needs Optuna, an optional dependency: "
                          "pip install optuna (or pip install shendu[search]); "
                          "random_search works without it") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {k: _as_distribution(k, v) for k, v in space.items()}
    runner = _Runner(train_fn, metric, catch, verbose)
    direction: list[str] = []

    def objective(trial) -> float:
        params = {k: _suggest(trial, k, d) for k, d in dists.items()}
        t = runner.run(params)
        if not direction:
            direction.append(_mode_for(runner.metric or "score", mode))
        v = t.metrics.get(runner.metric or "score", math.nan)
        v = float(v) if isinstance(v, (int, float)) else math.nan
        # Optuna minimises here; a failed or NaN trial is reported as very bad, not dropped
        if not math.isfinite(v):
            return math.inf
        return -v if direction[0] == "max" else v

    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return runner.result(mode)


def _suggest(trial, name: str, d):
    if isinstance(d, LogUniform):
        return trial.suggest_float(name, d.low, d.high, log=True)
    if isinstance(d, Uniform):
        return trial.suggest_float(name, d.low, d.high)
    if isinstance(d, IntUniform):
        return trial.suggest_int(name, d.low, d.high, log=d.log)
    if len(d.options) == 1:
        return d.options[0]
    # Optuna stores choices by index so any option type (tuples, None) works
    return d.options[trial.suggest_categorical(name, list(range(len(d.options))))]
