"""The ``shendu`` command line: train (reduced), resume, diagnose, search, bench and help."""
import json
import os

import numpy as np
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
               "--limit", "--patience", "--hidden", "--val-fraction", "--threads",
               "--download"]
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


def test_search_bayesian_over_cli_options(tmp_path, capsys):
    pytest.importorskip("optuna")
    out = str(tmp_path / "b")
    rc = cli.main(["search", "--method", "bayesian", "--trials", "3", "--epochs", "1",
                   "--limit", "200", "--model", "mlp", "--hidden", "16",
                   "--lr", "1e-3:1e-1:log", "--optimizer", "adam,sgd", "--out", out])
    text = capsys.readouterr().out
    assert rc == 0 and "bayesian search" in text and "ranked by dev accuracy" in text
    trials = json.load(open(os.path.join(out, "search.json")))["trials"]
    assert len(trials) == 3
    assert all(1e-3 <= t["params"]["lr"] <= 1e-1 for t in trials)
    assert {t["params"]["optimizer"] for t in trials} <= {"adam", "sgd"}
    scores = [t["metrics"]["val_acc"] for t in trials]
    assert scores == sorted(scores, reverse=True)  # the table is ranked by dev accuracy


def test_bench_is_delegated(monkeypatch):
    import shendu.bench
    seen = []
    monkeypatch.setattr(shendu.bench, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick", "-k", "conv"]) == 0
    assert seen == [["--quick", "-k", "conv"]]


def test_every_train_option_reaches_the_run(tmp_path):
    from shendu.serialization import load
    out, rc = _train(tmp_path, "--model", "mlp", "--hidden", "24", "--batch-size", "40",
                     "--val-fraction", "0.2", "--lr", "0.0123", "--optimizer", "adam",
                     "--weight-decay", "1e-4", "--dropout", "0.1", "--no-augment",
                     "--seed", "5", "--schedule", "none", "--threads", "1")
    assert rc == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    cfg = m["config"]
    assert (cfg["lr"], cfg["batch_size"], cfg["weight_decay"], cfg["dropout"], cfg["seed"],
            cfg["augment"], cfg["threads"]) == (0.0123, 40, 1e-4, 0.1, 5, False, 1)
    assert m["data"]["sizes"] == {"train": 128, "dev": 32, "test": 160}  # --limit, --val-f.
    assert m["history"]["lr"] == [0.0123]  # --lr with --schedule none
    ck = load(os.path.join(out, "checkpoint.sd"))
    assert {k: tuple(v.shape) for k, v in ck["model"].items()} == {
        "net.1.weight": (24, 784), "net.1.bias": (24,),  # --hidden 24 (net.3: dropout)
        "net.4.weight": (10, 24), "net.4.bias": (10,)}
    group = ck["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 1e-4 and "exp_avg_sq" in ck["optimizer"]["state"][0]
    assert ck["optimizer"]["state"][0]["step"] == 4  # 128 images in batches of 40: 4 steps


def _epoch_of(path):
    from shendu.serialization import load

    try:
        return load(path)["epoch"]
    except (FileNotFoundError, OSError):
        return 0


def test_resume_after_kill_mid_epoch_matches_uninterrupted_run(tmp_path, capsys):
    """Kill a real ``shendu train`` process in the middle of an epoch (half an epoch after
    its second checkpoint); ``--resume`` must train only the remaining epochs and end with
    exactly the weights, optimizer state and history of a run that was never interrupted
    (model, optimizer, cosine schedule, epoch and the random streams of shuffling,
    augmentation and dropout all restored). A resume that ignored the checkpoint would
    train every epoch again: the epochs it prints and the optimizer's step count show it
    did not."""
    import signal
    import subprocess
    import sys
    import time

    from shendu.serialization import load
    epochs = 6
    args = ["train", "--epochs", str(epochs), "--limit", "900", "--batch-size", "32",
            "--no-progress"]  # LeNet-5 with augmentation, dropout and a cosine schedule
    a, b = tmp_path / "straight", tmp_path / "killed"
    assert cli.main([*args, "--out", str(a)]) == 0
    capsys.readouterr()

    root = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    ck = b / "checkpoint.sd"
    for _attempt in range(3):  # a stall of the whole machine can still land on a boundary
        if ck.exists():
            ck.unlink()   # a try's own checkpoints are the ones to watch
        proc = subprocess.Popen([sys.executable, "-m", "shendu.cli", *args, "--out", str(b)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        seen, marks = None, []  # each checkpoint is a new file (written, then renamed)
        while proc.poll() is None and time.monotonic() < deadline and len(marks) < 2:
            try:
                ino = os.stat(ck).st_ino
            except FileNotFoundError:
                ino = None
            if ino is not None and ino != seen:
                seen = ino
                marks.append(time.monotonic())
            time.sleep(0.002)
        assert len(marks) == 2, proc.stderr.read() if proc.poll() is not None else marks
        time.sleep((marks[1] - marks[0]) / 2)  # half an epoch into the third
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        # aimed at epoch 3; on a loaded machine this loop may see a checkpoint late, and
        # any kill that leaves epochs to train proves the same
        if 1 <= _epoch_of(ck) < epochs:
            break
    killed_at = _epoch_of(ck)
    assert 1 <= killed_at < epochs, f"could not kill the run mid-way (at epoch {killed_at})"
    per_epoch = load(a / "checkpoint.sd")["optimizer"]["state"][0]["step"] // epochs
    assert load(ck)["optimizer"]["state"][0]["step"] == killed_at * per_epoch

    assert cli.main(["train", "--resume", str(ck), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"Resuming from {ck} (epoch {killed_at})" in out
    trained = [int(line.split("/")[0].split()[-1]) for line in out.splitlines()
               if line.startswith("Epoch ")]
    assert trained == list(range(killed_at + 1, epochs + 1)), out  # the rest: from the file
    want, got = load(a / "checkpoint.sd"), load(ck)
    assert got["epoch"] == want["epoch"] == epochs
    assert got["optimizer"]["state"][0]["step"] == want["optimizer"]["state"][0]["step"] \
        == epochs * per_epoch
    for k, v in want["model"].items():
        np.testing.assert_array_equal(got["model"][k].numpy(), v.numpy(), err_msg=k)
    for i, slots in want["optimizer"]["state"].items():
        for name, v in slots.items():
            np.testing.assert_array_equal(np.asarray(got["optimizer"]["state"][i][name]),
                                          np.asarray(v), err_msg=f"optimizer {i} {name}")
    ma = json.load(open(a / "metrics.json"))
    mb = json.load(open(b / "metrics.json"))
    for key in ("train_loss", "val_loss", "val_acc", "lr"):
        assert mb["history"][key] == ma["history"][key], key
    assert mb["test"] == ma["test"]


def test_resume_refuses_settings_that_define_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "mlp", "--hidden", "16", "--epochs", "1", "--limit",
                     "64", "--no-progress", "--no-augment", "--out", str(out)]) == 0
    ck = str(out / "checkpoint.sd")
    capsys.readouterr()
    assert cli.main(["train", "--resume", ck, "--seed", "7", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.5 (saved: " in err and "--seed 7 (saved: 0)" in err
    assert _epoch_of(ck) == 1  # nothing trained
    # what may change: how long it goes on
    assert cli.main(["train", "--resume", ck, "--epochs", "2", "--seed", "0",
                     "--no-progress"]) == 0
    assert _epoch_of(ck) == 2


@pytest.mark.skipif(not os.path.isfile("/usr/share/datasets/fashion-mnist/"
                                       "t10k-labels-idx1-ubyte.gz"),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_train_on_fashion_mnist_from_debian_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHENDU_DATA", str(tmp_path / "empty-cache"))
    out, rc = _train(tmp_path, "--dataset", "fashion-mnist", "--limit", "1000",
                     "--epochs", "3", "--no-augment", "--dropout", "0")
    text = capsys.readouterr().out
    assert rc == 0 and "on fashion-mnist: 900 train / 100 dev / 1000 test" in text
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["test"]["acc"] > 0.6  # chance is 0.1; LeNet-5 after 3 epochs on 900 images


def test_download_option_fetches_verified_files(tmp_path, monkeypatch, capsys):
    import gzip
    import hashlib
    import struct

    from shendu.data.datasets import MNIST
    mirror, sums = tmp_path / "mirror", {}
    mirror.mkdir()
    r = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        arrays = {"images-idx3": r.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                  "labels-idx1": (np.arange(n) % 10).astype(np.uint8)}
        for kind, arr in arrays.items():
            raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
            name = f"{prefix}-{kind}-ubyte.gz"
            data = gzip.compress(raw + arr.tobytes())
            (mirror / name).write_bytes(data)
            sums[name] = ("md5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(MNIST, "mirrors", (mirror.as_uri() + "/",))
    monkeypatch.setattr(MNIST, "checksums", sums)
    root = tmp_path / "data"
    args = ["train", "--dataset", "mnist", "--data-dir", str(root), "--epochs", "1",
            "--no-progress", "--out", str(tmp_path / "o")]

    assert cli.main(args) == 2  # not on disk, and not asked to download
    err = capsys.readouterr().err
    assert "MNIST: dataset files not found" in err and "add --download" in err
    assert cli.main([*args, "--download"]) == 0
    assert "on mnist: 54 train / 6 dev / 20 test" in capsys.readouterr().out
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()

    monkeypatch.setattr(MNIST, "checksums", {k: ("md5", "0" * 32) for k in sums})
    assert cli.main([*args, "--download", "--data-dir", str(tmp_path / "d2")]) == 2
    assert "expected 0000" in capsys.readouterr().err  # a tampered file: no traceback


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from shendu.train import callbacks
    real = callbacks.ModelCheckpoint.on_epoch_end

    def interrupted_after_saving(self, trainer, epoch, logs):
        real(self, trainer, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.ModelCheckpoint, "on_epoch_end", interrupted_after_saving)
    out, rc = _train(tmp_path, "--model", "mlp", "--hidden", "8")
    ck = os.path.join(out, "checkpoint.sd")
    assert rc == 130
    assert f"interrupted; continue with: shendu train --resume {ck}" in capsys.readouterr().err
    monkeypatch.undo()
    assert cli.main(["train", "--resume", ck, "--epochs", "2", "--no-progress"]) == 0
    assert "Epoch 2/2" in capsys.readouterr().out


def test_train_on_cifar10_binary_files(tmp_path, capsys):
    """Colour 32x32 images: LeNet-5 without padding, per-channel normalisation, flips."""
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    r = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}.bin", 20) for i in range(1, 6)] + [("test_batch.bin", 20)]:
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = r.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], images], 1).tobytes())
    out = str(tmp_path / "o")
    rc = cli.main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--epochs",
                   "1", "--no-progress", "--out", out])
    assert rc == 0 and "on cifar10: 90 train / 10 dev / 20 test" in capsys.readouterr().out
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert len(m["data"]["normalize"]["mean"]) == 3  # one statistic per colour channel


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    import shendu as sd
    if sd.cuda.is_available():
        pytest.skip("a CUDA GPU is available here")
    rc = cli.main(["train", "--device", "cuda", "--out", str(tmp_path / "o")])
    assert rc == 2 and "shendu train: error: device='cuda' needs CuPy" in capsys.readouterr().err


# ------------------------------------------------------------------ polish (issue 10)
def test_done_line_reports_wall_time_with_start_up_and_phases(tmp_path, capsys):
    out, rc = _train(tmp_path, "--model", "mlp", "--hidden", "16")
    text = capsys.readouterr().out
    assert rc == 0
    line = [t for t in text.splitlines() if t.startswith("Done in ")][-1]
    import re
    parts = [re.match(r"([a-z -]+) ([\d.]+) s", p) for p in line.split(": ", 1)[1].split(", ")]
    nums = {m.group(1): float(m.group(2)) for m in parts}
    total = float(re.match(r"Done in ([\d.]+) s", line).group(1))
    phases = ["start-up", "data and model", "training", "evaluation", "saving"]
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert list(nums) == phases
    # the phases add up to the total (each printed to 0.1 s)
    assert abs(sum(nums.values()) - total) <= 0.05 * len(nums) + 1e-9
    # the total is this process's age (read later, to 0.01 s; printed to 0.1 s), so at
    # least the pipeline's own time
    age = cli._process_age()
    assert age is None or total <= age + 0.1
    assert total >= sum(m["timing"].values()) - 0.1
    assert set(m["timing"]) == {"setup_s", "train_s", "evaluate_s", "save_s"}


def test_train_without_a_terminal_prints_one_line_per_epoch(tmp_path, capsys):
    out = str(tmp_path / "r")
    rc = cli.main(["train", "--epochs", "2", "--out", out, "--limit", "160",
                   "--batch-size", "32", "--model", "mlp", "--hidden", "16"])  # progress on
    cap = capsys.readouterr()
    assert rc == 0 and "\r" not in cap.out + cap.err
    assert [t.split(":")[0] for t in cap.out.splitlines() if t.startswith("Epoch")] == \
        ["Epoch 1/2", "Epoch 2/2"]


def test_help_descriptions_are_wrapped(capsys):
    for cmd in ("train", "diagnose", "search"):
        with pytest.raises(SystemExit):
            cli.main([cmd, "--help"])
        text = capsys.readouterr().out
        assert max(len(line) for line in text.splitlines()) <= 80, cmd


def test_search_says_epoch_in_the_singular(tmp_path, capsys):
    rc = cli.main(["search", "--trials", "1", "--epochs", "1", "--limit", "120",
                   "--model", "mlp", "--hidden", "8", "--out", str(tmp_path / "s")])
    text = capsys.readouterr().out
    assert rc == 0 and "(1 epoch per trial)" in text


def test_diagnose_mixed_units_is_an_error_and_unit_names_them(capsys):
    rc = cli.main(["diagnose", "--train-error", "8", "--dev-error", "0.10"])
    cap = capsys.readouterr()
    assert rc == 2 and "mix units" in cap.err and "--unit percent" in cap.err
    assert "-7.9" not in cap.out
    rc = cli.main(["diagnose", "--train-error", "8", "--dev-error", "10", "--human-error",
                   "0.5", "--unit", "percent"])
    text = capsys.readouterr().out
    assert rc == 0 and "7.50%" in text  # avoidable bias 8 - 0.5 percentage points


def test_closed_pipe_ends_quietly():
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # a command whose output is larger than the pipe's buffer, read by nobody
    code = ("import sys; from shendu import cli\n"
            "real = cli._main\n"
            "def noisy(argv):\n"
            "    for _ in range(20000):\n"
            "        print('x' * 79)\n"
            "    return real(argv)\n"
            "cli._main = noisy\n"
            "sys.exit(cli.main(['diagnose', '--train-error', '0.1', '--dev-error', '0.2']))\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdout.read(100)
    p.stdout.close()  # as `| head -c 100` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    # --help through a closed pipe: argparse's exit path is covered too
    p = subprocess.Popen([sys.executable, "-m", "shendu.cli", "train", "--help"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
