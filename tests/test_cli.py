"""The ``shendu`` command line: train (reduced), resume, diagnose, search, bench and help."""
import json
import os

import pytest

from shendu import cli

_SMALL = ["--limit", "160", "--no-progress", "--batch-size", "32"]


def _train(tmp_path, *extra, name="run"):
    out = str(tmp_path / name)
    return out, cli.main(["train", "--epochs", "1", "--out", out, *_SMALL, *extra])


def test_train_writes_checkpoint_metrics_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, rc = _train(tmp_path)
    text = capsys.readouterr().out
    assert rc == 0
    for name in ("checkpoint.sd", "metrics.json", "learning_curves.png", "history.csv"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert "Test accuracy:" in text and os.path.join(out, "checkpoint.sd") in text
    assert "Epoch 1/1: train_loss=" in text  # --no-progress: one line per epoch
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert len(m["history"]["val_acc"]) == 1 and 0 <= m["test"]["acc"] <= 1
    assert set(m["final"]) == {"train_error", "dev_error", "test_error"}
    assert m["config"]["model"] == "lenet5" and m["data"]["sizes"]["dev"] == 16


def test_train_mlp_sgd_and_resume_continues(tmp_path, capsys):
    out, rc = _train(tmp_path, "--model", "mlp", "--hidden", "32", "--optimizer", "sgd",
                     "--lr", "0.05", "--no-augment", "--schedule", "none")
    assert rc == 0
    ck = os.path.join(out, "checkpoint.sd")
    rc = cli.main(["train", "--resume", ck, "--epochs", "3", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "Resuming from" in text and "Epoch 3/3" in text
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["history"]["epoch"] == [1, 2, 3]
    assert m["config"]["model"] == "mlp" and m["config"]["optimizer"] == "sgd"  # reused


def test_train_classic_lenet_with_dropout(tmp_path):
    _, rc = _train(tmp_path, "--model", "lenet5-classic", "--dropout", "0.2",
                   "--optimizer", "rmsprop", "--weight-decay", "1e-4", "--patience", "2")
    assert rc == 0


def test_train_missing_dataset_is_a_clear_error(tmp_path, capsys):
    rc = cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"),
                   "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "shendu train: error:" in err and "MNIST" in err


def test_help_texts_mention_every_option(capsys):
    options = ["--model", "--dataset", "--data-dir", "--epochs", "--batch-size", "--lr",
               "--optimizer", "--momentum", "--weight-decay", "--dropout", "--augment",
               "--seed", "--out", "--resume", "--no-progress", "--device", "--schedule",
               "--limit", "--patience", "--hidden", "--val-fraction"]
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in options:
        assert opt in text, opt
    for choice in ("lenet5-classic", "fashion-mnist", "cifar10", "adadelta", "adagrad"):
        assert choice in text
    for cmd, words in (("diagnose", ["--train-error", "--dev-error", "--human-error",
                                     "--train-dev-error", "--test-error", "--history"]),
                       ("search", ["--method", "--trials", "1e-4:1e-1:log", "--lr"])):
        with pytest.raises(SystemExit):
            cli.main([cmd, "--help"])
        text = capsys.readouterr().out
        for w in words:
            assert w in text, (cmd, w)
    assert cli.main([]) == 0
    top = capsys.readouterr().out
    assert all(c in top for c in ("train", "diagnose", "search", "bench"))


def test_diagnose_errors_and_history(tmp_path, capsys):
    assert cli.main(["diagnose", "--train-error", "0.08", "--dev-error", "0.10",
                     "--human-error", "0.01"]) == 0
    text = capsys.readouterr().out
    assert "avoidable bias" in text and "<- largest" in text
    hist = {"train_loss": [1.0, 0.6, 0.4, 0.3, 0.25, 0.2],
            "val_loss": [1.0, 0.7, 0.6, 0.65, 0.7, 0.8]}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"history": hist, "final": {"train_error": 0.01,
                                                            "dev_error": 0.09}}))
    assert cli.main(["diagnose", "--history", str(path)]) == 0
    text = capsys.readouterr().out
    assert "[overfitting]" in text and "Dominant problem: variance" in text
    assert cli.main(["diagnose", "--history", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["history"][0]["kind"] == "overfitting"
    assert data["bias_variance"]["problem"] == "variance"
    assert cli.main(["diagnose", "--train-error", "0.1"]) == 2
    assert cli.main(["diagnose", "--history", str(tmp_path / "nope.json")]) == 2


def test_search_random_and_grid(tmp_path, capsys):
    out = str(tmp_path / "s")
    rc = cli.main(["search", "--trials", "2", "--epochs", "1", "--limit", "200",
                   "--lr", "1e-3:1e-2:log", "--model", "mlp", "--hidden", "16",
                   "--out", out])
    text = capsys.readouterr().out
    assert rc == 0 and "ranked by dev accuracy" in text and "Best: shendu train --lr" in text
    data = json.load(open(os.path.join(out, "search.json")))
    assert data["metric"] == "val_acc" and len(data["trials"]) == 2
    assert all(1e-3 <= t["params"]["lr"] < 1e-2 for t in data["trials"])
    rc = cli.main(["search", "--method", "grid", "--epochs", "1", "--limit", "200",
                   "--batch-size", "16,32", "--model", "mlp", "--hidden", "16",
                   "--out", str(tmp_path / "g")])
    assert rc == 0
    data = json.load(open(tmp_path / "g" / "search.json"))
    assert sorted(t["params"]["batch_size"] for t in data["trials"]) == [16, 32]
    assert cli.main(["search", "--lr", "1:2:3", "--out", str(tmp_path / "x")]) == 2


def test_bench_is_delegated(monkeypatch):
    import shendu.bench
    seen = []
    monkeypatch.setattr(shendu.bench, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick", "-k", "conv"]) == 0
    assert seen == [["--quick", "-k", "conv"]]
