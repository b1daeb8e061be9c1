"""The benchmark harness: registry, discovery, statistics, error rows, CLI and JSON.

No assertion here depends on how fast the machine is: speed targets live in benchmarks/.
"""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from shendu import bench

FAKE_FILE = textwrap.dedent('''
    """Fake benchmarks for the harness tests."""
    import time

    from _fake_helper import SLEEP
    from shendu.bench import benchmark


    @benchmark("sleepy", "fake", items_per_iter=4)
    def sleepy():
        """Sleeps a little per step."""
        return lambda: time.sleep(SLEEP)


    @sleepy.twin(label="twin")
    def sleepy_twin():
        return lambda: time.sleep(2 * SLEEP)


    @benchmark("broken_setup", "fake")
    def broken_setup():
        raise RuntimeError("setup exploded")


    @benchmark("first_group", "train")
    def first_group():
        return lambda: None
''')


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(bench, "REGISTRY", {})


@pytest.fixture
def bench_dir(tmp_path):
    (tmp_path / "bench_fake.py").write_text(FAKE_FILE)
    (tmp_path / "_fake_helper.py").write_text("SLEEP = 0.001\n")
    (tmp_path / "not_a_bench.py").write_text("raise RuntimeError('must not be imported')\n")
    return tmp_path


class FakeClock:
    """A clock that only moves when a step runs, by the step's scripted duration."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_discover_finds_registered_benchmarks_in_group_order(bench_dir):
    found = bench.discover(bench_dir)
    assert [b.name for b in found] == ["first_group", "sleepy", "broken_setup"]
    sleepy = found[1]
    assert sleepy.group == "fake" and sleepy.items_per_iter == 4
    assert sleepy.twin_label == "twin" and sleepy.twin_setup is not None
    assert sleepy.doc == "Sleeps a little per step."
    assert set(bench.REGISTRY) == {"sleepy", "broken_setup", "first_group"}
    again = bench.discover(bench_dir)  # files run afresh: same names, no duplicate error
    assert [b.name for b in again] == [b.name for b in found]


def test_duplicate_name_from_another_module_is_rejected():
    def setup():
        return lambda: None

    bench.benchmark("dup")(setup)
    other = lambda: (lambda: None)  # noqa: E731
    other.__module__ = "somewhere_else"
    with pytest.raises(ValueError, match="already registered"):
        bench.benchmark("dup")(other)


def test_measure_on_fake_clock_is_exact():
    clock = FakeClock()
    durations = iter([1.0] * 2 + [0.5, 0.5, 1.0, 1.0, 2.0, 2.0])  # 2 warm-up, 3 blocks

    def step():
        clock.now += next(durations)

    stats = bench.measure(step, items_per_iter=10, blocks=3, min_time=2.0, warmup_s=0.0,
                          clock=clock, memory=None)
    assert stats.iters_per_block == 2  # one warm-up call took 1 s, a block should take 2 s
    assert stats.values == [20.0, 10.0, 5.0]  # 20 samples in 1 s, 2 s, 4 s
    assert (stats.median, stats.min, stats.max) == (10.0, 5.0, 20.0)
    assert stats.q1 == 7.5 and stats.q3 == 15.0
    assert stats.spread == pytest.approx(0.75)


def test_summarize_quartiles_and_time_units():
    s = bench.summarize([7, 1, 3, 5, 2, 6, 4], iters_per_block=3)
    assert (s.q1, s.median, s.q3, s.min, s.max) == (2.5, 4, 5.5, 1, 7)
    assert bench.summarize([3.0]).median == 3.0
    assert bench._to_unit(2.0, iters=4, items=100, unit="µs/op") == pytest.approx(5000.0)
    assert bench._to_unit(2.0, iters=4, items=100, unit="samples/s") == 200.0
    assert bench.is_time_unit("µs/op") and not bench.is_time_unit("seq/s")


def test_sleep_benchmark_is_never_faster_than_its_sleep():
    stats = bench.measure(lambda: time.sleep(0.002), items_per_iter=1, blocks=3,
                          min_time=0.01, warmup_s=0.0, memory=None)
    # sleep never returns early, so this bound holds on any machine, however loaded
    assert 0 < stats.max <= 1 / 0.002
    assert stats.min <= stats.q1 <= stats.median <= stats.q3 <= stats.max


def test_peak_memory_sees_numpy_allocations():
    import numpy as np

    peak = bench.peak_memory(lambda: np.ones(1_000_000, dtype=np.float32).sum())
    assert 4_000_000 <= peak < 5_000_000


def test_ratio_means_shendu_speed_over_baseline():
    fast, slow = bench.summarize([200.0]), bench.summarize([100.0])
    r = bench.Result("x", "g", "samples/s", 1, shendu=fast, reference=slow)
    assert r.ratio == 2.0
    r = bench.Result("x", "g", "µs/op", 1, shendu=slow, reference=fast)  # 100 µs vs 200 µs
    assert r.ratio == 2.0
    assert bench.Result("x", "g", "samples/s", 1, shendu=fast).ratio is None


def test_errors_become_rows_not_crashes(bench_dir):
    found = {b.name: b for b in bench.discover(bench_dir)}
    cfg = bench.Config.quick()
    r = bench.run_benchmark(found["broken_setup"], cfg)
    assert r.shendu is None and r.error == "RuntimeError: setup exploded"

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) > 3:
            raise ValueError("step failed mid-run")
    b = bench.benchmark("flaky", "fake")(lambda: flaky)
    b.twin(lambda: (lambda: None), label="other")
    r = bench.run_benchmark(b, cfg)
    assert r.error == "ValueError: step failed mid-run"
    assert r.reference is not None and r.reference_error is None  # the other side still ran
    table = bench.format_table([r], cfg)
    assert "ERROR" in table and "flaky: shendu failed: ValueError" in table


def test_missing_torch_shows_dash(monkeypatch):
    monkeypatch.setattr(bench, "_torch", lambda: None)
    b = bench.benchmark("t", "fake")(lambda: (lambda: None))
    b.twin(lambda: (lambda: None))  # a torch twin that must not even be built
    r = bench.run_benchmark(b, bench.Config.quick())
    assert r.shendu is not None and r.reference is None
    assert r.reference_error == "torch not available" and r.ratio is None
    row = next(line for line in bench.format_table([r]).splitlines() if line.startswith("  t "))
    assert "—" in row and "ERROR" not in row


def test_list_and_selection(bench_dir, capsys):
    assert bench.main(["--dir", str(bench_dir), "--list"]) == 0
    out = capsys.readouterr().out
    assert "fake/sleepy" in out and "vs twin" in out and "Sleeps a little" in out
    assert bench.main(["--dir", str(bench_dir), "--list", "slee*"]) == 0
    assert "broken_setup" not in capsys.readouterr().out
    assert bench.main(["--dir", str(bench_dir), "no_such_benchmark"]) == 2
    assert "no benchmark matches" in capsys.readouterr().err


def test_json_schema_and_exit_code(bench_dir, tmp_path, capsys):
    path = tmp_path / "out" / "results.json"
    code = bench.main(["--dir", str(bench_dir), "--quick", "--json", str(path), "fake"])
    assert code == 1  # broken_setup failed, and the exit code says so
    doc = json.loads(path.read_text())
    assert doc["schema"] == bench.SCHEMA
    assert {"created", "config", "machine", "results"} <= set(doc)
    assert doc["command"] == f"shendu bench --dir {bench_dir} --quick --json {path} fake"
    assert doc["config"]["blocks"] == 3 and doc["config"]["threads"] == 2
    machine = doc["machine"]
    assert machine["cpu_count"] >= 1 and machine["numpy"] and "threads" in machine
    rows = {r["name"]: r for r in doc["results"]}
    assert set(rows) == {"sleepy", "broken_setup"}
    s = rows["sleepy"]
    assert s["unit"] == "samples/s" and s["items_per_iter"] == 4
    assert s["reference_label"] == "twin" and s["ratio"] > 0
    for side in ("shendu", "reference"):
        assert {"median", "q1", "q3", "min", "max", "values", "iters_per_block",
                "peak_bytes", "spread"} <= set(s[side])
        assert len(s[side]["values"]) == 3
    assert rows["broken_setup"]["error"] == "RuntimeError: setup exploded"
    assert rows["broken_setup"]["shendu"] is None
    out = capsys.readouterr().out
    assert "sleepy" in out and "ratio" in out


def test_real_tiny_benchmark_end_to_end(capsys):
    assert bench.main(["tiny_op_chain", "--quick"]) == 0  # about two seconds, torch included
    out = capsys.readouterr().out
    assert "tiny_op_chain" in out and "µs/op" in out


@pytest.mark.parametrize("flag, state", [([], "libgomp's default spinning"),
                                         (["--omp-wait", "short"], "short spin")])
def test_both_libraries_get_one_named_openmp_wait(flag, state):
    """PyTorch shares shendu's libgomp, which reads its spin setting once: the bench runs
    both at libgomp's default unless asked, and says which it ran."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SHENDU_OMP_WAIT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-m", "shendu.bench", "tiny_op_chain", "--quick",
                          "--no-loop", "--no-memory", "--no-torch", *flag],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert f"OpenMP wait for both libraries: {state}" in out.stdout, out.stdout


def test_every_real_benchmark_file_loads():
    names = {b.name for b in bench.discover()}
    assert {"mlp_train", "lenet5_train", "cifar_cnn_train", "lstm_lm_train", "mlp_infer",
            "cifar_cnn_infer", "tiny_op_chain", "conv_lenet1", "conv_cifar", "maxpool2x2",
            "sgd_momentum_1m", "adam_1m", "dataloader_epoch", "autodiff_n100"} <= names


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "shendu.bench", "--list", "autodiff"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "autodiff_n10" in out.stdout


# ---------------------------------------------------------------- commit, targets, user loop
def test_results_name_their_commit(bench_dir, tmp_path, capsys):
    path = tmp_path / "results.json"
    bench.main(["--dir", str(bench_dir), "--quick", "--json", str(path), "sleepy"])
    doc = json.loads(path.read_text())
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(bench.__file__).parents[1]))
    if git.returncode == 0:  # a checkout: the commit, marked when shendu/ has changes
        assert doc["commit"].split("+")[0] == git.stdout.strip()
    else:  # an installed copy: the version
        assert doc["commit"].startswith("shendu ")
    assert doc["machine"]["cpu_model"] and doc["machine"]["cpu_count"] >= 1
    assert "measured at" in capsys.readouterr().out
    assert "user_loop" not in doc  # a named benchmark alone runs no user loop


def _fake_results(tmp_path, ratios, **extra):
    doc = {"created": "2026-12-05T08:00:00", "commit": "abc1234",
           "machine": {"cpu_model": "Fake CPU", "cpu_count": 2},
           "results": [{"name": n, "ratio": r} for n, r in ratios.items()], **extra}
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(doc))
    return path


def test_check_says_which_targets_are_met(tmp_path, capsys):
    from shendu._bench_check import TARGETS

    all_met = {name: least for name, (_, least) in TARGETS.items()}  # exactly at target
    assert bench.main(["--check", str(_fake_results(tmp_path, all_met))]) == 0
    out = capsys.readouterr().out
    assert "abc1234" in out and "Fake CPU" in out and f"{len(TARGETS)} of {len(TARGETS)}" in out

    some = dict(all_met, lenet5_train=0.89)  # just below LeNet-5's 0.9
    del some["lstm_lm_train"]
    assert bench.main(["--check", str(_fake_results(tmp_path, some))]) == 1
    lines = capsys.readouterr().out.splitlines()
    lenet = next(ln for ln in lines if ln.strip().startswith("LeNet-5 train"))
    lstm = next(ln for ln in lines if ln.strip().startswith("LSTM LM train"))
    assert "NOT MET" in lenet and "0.89" in lenet
    assert "unknown" in lstm and "not in the file" in lstm
    assert f"{len(TARGETS) - 2} of {len(TARGETS)} targets met" in lines[-1]
    assert bench.main(["--check", str(tmp_path / "missing.json")]) == 2


def test_check_over_several_runs_judges_the_median(tmp_path, capsys):
    from shendu._bench_check import TARGETS

    paths = []
    for k, mlp in enumerate((0.95, 1.04, 1.02)):   # below in one run of three
        ratios = {name: least + 0.1 for name, (_, least) in TARGETS.items()}
        ratios["mlp_train"] = mlp
        if k == 1:
            del ratios["tiny_op_chain"]              # a run that lacks one
        run = tmp_path / f"run{k}"
        run.mkdir()
        paths.append(str(_fake_results(run, ratios)))
    assert bench.main(["--check", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index(next(ln for ln in lines if ln.startswith("over the 3 runs")))
    mlp = next(ln for ln in lines[at:] if ln.strip().startswith("MLP 784"))
    tiny = next(ln for ln in lines[at:] if ln.strip().startswith("tiny op"))
    assert "median  1.02" in mlp and "met in 2 of 3" in mlp and "0.95, 1.04, 1.02" in mlp
    assert "met in 2 of 3" in tiny and "median  1.10" in tiny   # of the two runs that have it
    assert lines[-1] == f"{len(TARGETS)} of {len(TARGETS)} targets met on the median"

    # the median below a target fails the check, though one run met it
    slow = {name: least + 0.1 for name, (_, least) in TARGETS.items()}
    for k, lstm in enumerate((0.9, 0.95, 1.1)):
        (tmp_path / f"slow{k}").mkdir()
        paths[k] = str(_fake_results(tmp_path / f"slow{k}", dict(slow, lstm_lm_train=lstm)))
    assert bench.main(["--check", *paths]) == 1
    assert "NOT MET" in next(ln for ln in capsys.readouterr().out.splitlines()[::-1]
                             if ln.strip().startswith("LSTM LM"))


def test_user_loop_selection():
    from shendu._bench_report import _parser, _wants_loop

    def wants(*argv):
        return _wants_loop(_parser().parse_args(list(argv)))

    assert wants() and wants("user_loop") and wants("loop") and wants("--contend")
    assert not wants("mlp_train") and not wants("--no-loop") and not wants("train")


def test_user_loop_child_runs_in_its_own_process(tmp_path):
    """The mechanism only: a shendu process, a few steps on tiny data, the statistics."""
    import numpy as np

    from shendu import _bench_loop

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((300, 1, 28, 28), dtype=np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 10, 300))
    r = _bench_loop.run_one("shendu", tmp_path, 4, threads=1)
    assert "error" not in r, r
    assert r["lib"] == "shendu" and r["threads"] == 1 and r["steps"] == 4
    assert r["first_step_s"] > 0 and r["min_ms"] <= r["median_ms"] <= r["max_ms"]
    assert len(r["losses"]) == 2 and all(np.isfinite(r["losses"]))
    bad = _bench_loop.run_one("shendu", tmp_path / "nowhere", 2)
    assert "error" in bad


def test_busy_cores_start_and_stop():
    from shendu._bench_loop import busy_cores

    with busy_cores(2) as procs:
        assert len(procs) == 2
        time.sleep(0.2)
        assert all(p.poll() is None for p in procs)  # still spinning
    assert all(p.poll() is not None for p in procs)  # stopped when the block ended


def test_contend_busy_per_core_option(capsys):
    from shendu._bench_loop import format_loop
    from shendu._bench_report import _parser

    assert _parser().parse_args(["--contend"]).busy_per_core == 1
    assert _parser().parse_args(["--contend", "--busy-per-core", "2"]).busy_per_core == 2
    assert bench.main(["--contend", "--busy-per-core", "0"]) == 2
    assert "--busy-per-core must be at least 1" in capsys.readouterr().err
    run = {"lib": "shendu", "requested_threads": 0, "threads": 2, "import_s": 0.5,
           "first_step_s": 1.0, "median_ms": 20.0, "q1_ms": 19.0, "q3_ms": 22.0,
           "min_ms": 18.0, "max_ms": 30.0, "spread": 0.15}
    text = format_loop({"steps": 30, "data": "x", "contended": True, "busy_per_core": 2,
                        "runs": [run]})
    assert "beside 2 busy processes per core" in text.splitlines()[0]


def test_contend_rounds_alternate_the_thread_counts(monkeypatch, capsys):
    from shendu import _bench_loop
    from shendu._bench_loop import format_loop

    assert bench.main(["--contend", "--rounds", "0"]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err
    ran = []

    def fake_run_one(lib, tmp, steps, n):
        ran.append((lib, n))
        return {"lib": lib, "threads": n or 2, "import_s": 0.1, "first_step_s": 1.0,
                "median_ms": 20.0 if n == 0 else 24.0 - len(ran), "q1_ms": 19.0,
                "q3_ms": 21.0, "min_ms": 18.0, "max_ms": 30.0, "spread": 0.1}
    monkeypatch.setattr(_bench_loop, "run_one", fake_run_one)
    monkeypatch.setattr(_bench_loop, "prepare_data", lambda tmp: "fake data")
    res = _bench_loop.run_loop(5, threads=[0, 1], torch=False, rounds=3, log=lambda s: None)
    assert ran == [("shendu", 0), ("shendu", 1), ("shendu", 1), ("shendu", 0),
                   ("shendu", 0), ("shendu", 1)]
    # one thread's medians: 22 (2nd run), 21 (3rd), 18 (6th); the default's always 20
    assert _bench_loop.default_vs_one(res) == {"shendu": [(20.0, 22.0), (20.0, 21.0),
                                                          (20.0, 18.0)]}
    assert "the default as fast or faster in 2 of 3" in format_loop(res)
