"""Hyperparameter search: grids cover the product, random search is seeded and samples
log-uniformly, Bayesian search runs with Optuna, results are ranked and exportable."""
import itertools
import json
import math
import sys

import numpy as np
import pytest

from shendu.train.search import (
    Choice,
    IntUniform,
    LogUniform,
    SearchResult,
    Trial,
    Uniform,
    bayesian_search,
    grid_search,
    random_search,
)


def test_grid_covers_the_product_and_ranks():
    grid = {"a": [1, 2, 3], "b": ["x", "y"], "c": 0.5}
    res = grid_search(lambda p: {"val_acc": p["a"] / 10 + (p["b"] == "y")}, grid)
    seen = {(t.params["a"], t.params["b"]) for t in res}
    assert seen == set(itertools.product([1, 2, 3], ["x", "y"])) and len(res) == 6
    assert all(t.params["c"] == 0.5 for t in res)
    assert res.best.params == {"a": 3, "b": "y", "c": 0.5}
    vals = [t.metrics["val_acc"] for t in res]
    assert vals == sorted(vals, reverse=True) and res.metric == "val_acc" and res.mode == "max"
    with pytest.raises(TypeError, match="explicit values"):
        grid_search(lambda p: 0.0, {"lr": LogUniform(1e-3, 1e-1)})


def test_random_search_is_seeded():
    space = {"lr": LogUniform(1e-4, 1e-1), "units": IntUniform(8, 64), "act": ["relu", "tanh"],
             "fixed": 3}

    def params(seed):
        res = random_search(lambda p: {"loss": p["lr"]}, space, n_trials=5, seed=seed)
        return sorted((t.number, tuple(sorted(t.params.items()))) for t in res)
    assert params(0) == params(0) and params(0) != params(1)
    res = random_search(lambda p: {"loss": p["lr"]}, space, n_trials=5, seed=0)
    assert res.mode == "min" and res.best.metrics["loss"] == min(t.metrics["loss"] for t in res)
    for t in res:
        assert 8 <= t.params["units"] <= 64 and t.params["act"] in ("relu", "tanh")
        assert t.params["fixed"] == 3


def test_log_uniform_stays_in_range_and_is_log_distributed():
    rng = np.random.default_rng(0)
    d = LogUniform(1e-4, 1e-1)
    x = np.array([d.sample(rng) for _ in range(6000)])
    assert x.min() >= 1e-4 and x.max() < 1e-1
    decades = np.histogram(np.log10(x), bins=[-4, -3, -2, -1])[0] / len(x)
    np.testing.assert_allclose(decades, 1 / 3, atol=0.03)  # equal share per decade
    assert abs(np.log10(x).mean() + 2.5) < 0.05
    ints = [IntUniform(1, 1000, log=True).sample(rng) for _ in range(3000)]
    assert min(ints) >= 1 and max(ints) <= 1000 and np.median(ints) < 100
    u = [Uniform(-1, 1).sample(rng) for _ in range(100)]
    assert -1 <= min(u) and max(u) < 1
    for bad in (lambda: LogUniform(0, 1), lambda: Uniform(2, 1), lambda: Choice([]),
                lambda: IntUniform(5, 1)):
        with pytest.raises(ValueError):
            bad()


def test_failures_and_nan_rank_last_and_table_and_json():
    def train(p):
        if p["x"] == 3:
            raise RuntimeError("diverged")
        return {"val_loss": math.nan if p["x"] == 2 else p["x"]}
    with pytest.raises(RuntimeError, match="diverged"):
        grid_search(train, {"x": [1, 2, 3, 4]})
    res = grid_search(train, {"x": [1, 2, 3, 4]}, catch=True)
    assert [t.params["x"] for t in res][:2] == [1, 4]
    assert res[3].error == "RuntimeError: diverged" or res[2].error == "RuntimeError: diverged"
    table = res.table()
    lines = table.splitlines()
    assert lines[0].split() == ["rank", "trial", "x", "val_loss", "time_s"]
    assert len(lines) == 6 and "failed" in table
    data = json.loads(res.to_json())
    assert data["metric"] == "val_loss" and len(data["trials"]) == 4
    assert data["trials"][0]["params"] == {"x": 1}


def test_metric_detection_and_explicit_metric():
    res = random_search(lambda p: 1.0 - p["x"], {"x": Uniform(0, 1)}, n_trials=4, seed=0)
    assert res.metric == "score" and res.mode == "max"
    with pytest.raises(ValueError, match="metric="):
        random_search(lambda p: {"f1": 0.5}, {"x": [1]}, n_trials=1)
    res = random_search(lambda p: {"f1": p["x"]}, {"x": [1, 2]}, n_trials=4, metric="f1")
    assert res.best.metrics["f1"] == 2
    r = SearchResult([Trial(0, {}, {"acc": 0.1}, 0.0), Trial(1, {}, {"acc": 0.9}, 0.0)],
                     "acc", "max")
    assert r.best.number == 1


def test_bayesian_search_with_optuna():
    pytest.importorskip("optuna")
    res = bayesian_search(lambda p: {"val_loss": (math.log10(p["lr"]) + 2) ** 2
                                     + (p["opt"] != "adam")},
                          {"lr": LogUniform(1e-5, 1.0), "opt": Choice(["sgd", "adam"]),
                           "k": IntUniform(1, 3)}, n_trials=25, seed=0)
    assert len(res) == 25 and res.mode == "min"
    assert res.best.params["opt"] == "adam" and 1e-3 < res.best.params["lr"] < 1e-1


def test_bayesian_search_without_optuna_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match="pip install optuna"):
        bayesian_search(lambda p: 0.0, {"x": Uniform(0, 1)}, n_trials=2)
