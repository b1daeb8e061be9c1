"""The thread tuner's decisions (``backend/thread_tuner.py``), driven by a fake clock: a
simulated workload whose ops take a time set by the thread count in use, so no test
depends on how fast this machine is. Then the runtime's wiring (when the tuner is on, what
a count sets), each in a fresh process since it is process-wide state."""
import json
import os
import random
import re
import subprocess
import sys

import pytest

from shendu.backend import thread_tuner as tt
from shendu.backend.thread_tuner import ThreadTuner, ladder


class Workload:
    """Ticks whose spacing is 1 / ops-per-second of the count in use; ``speeds(now)``
    gives ops per second per count, so the load can change over time."""

    def __init__(self, speeds, top=2, noise=0.0, seed=0):
        self.now = 0.0
        self.speeds = speeds if callable(speeds) else (lambda now, s=speeds: s)
        self.applied = []
        self.rng = random.Random(seed)
        self.noise = noise
        self.tuner = ThreadTuner(top, self.applied.append, clock=lambda: self.now)

    def run(self, seconds):
        end = self.now + seconds
        while self.now < end:
            rate = self.speeds(self.now)[self.tuner.count]
            jitter = 1 + self.noise * (2 * self.rng.random() - 1)
            self.now += jitter / rate
            self.tuner.tick()
        return self.tuner


class Steps(Workload):
    """A training loop: ``ops`` ticks per step, the last one the step's end; the first op
    takes half the step (ops are not alike), ``speeds`` are steps per second."""

    def run(self, seconds, ops=12):
        end = self.now + seconds
        while self.now < end:
            step = 1 / self.speeds(self.now)[self.tuner.count]
            step *= 1 + self.noise * (2 * self.rng.random() - 1)
            for i in range(ops):
                self.now += step / 2 if i == 0 else step / 2 / (ops - 1)
                self.tuner.tick(step_end=i == ops - 1)
        return self.tuner


def test_ladder_halves_down_to_one():
    assert ladder(1) == [1]
    assert ladder(2) == [2, 1]
    assert ladder(8) == [8, 4, 2, 1]
    assert ladder(6) == [6, 3, 1]


def test_keeps_all_threads_when_they_are_faster_and_backs_off():
    w = Workload({2: 1000, 1: 550})
    t = w.run(120)
    assert t.count == 2 and t.switches == 0 and t.trials >= 2
    # the one-thread trials were clear losses: abandoned after their first pair, and the
    # gap between trials grew to its ceiling
    assert t.last_trial["windows"] == 2 and not t.last_trial["switched"]
    assert t.trial_every == tt.TRIAL_EVERY_MAX_S
    # every count tried was put back: the applied counts alternate 1, 2, 1, 2, ...
    assert w.applied[::2] == [1] * len(w.applied[::2]) and set(w.applied[1::2]) == {2}


def test_switches_to_one_thread_when_it_is_faster():
    w = Workload({2: 300, 1: 450})
    t = w.run(30)
    assert t.count == 1 and t.switches == 1 and w.applied[-1] == 1
    assert t.last_trial["counts"][1] == 2 or t.last_trial["switched"]
    assert t.history[0][1] == 1


def test_no_switch_between_the_margins_even_with_noise():
    # two threads 7.5% faster: enough to keep them (5%), not to go back to them (10%); each
    # op's time jittering by +-30%, the count stays where it starts, either way
    w = Workload({2: 1075, 1: 1000}, noise=0.3, seed=1)
    t = w.run(300)
    assert t.count == 2 and t.switches == 0 and t.trials > 10
    w = Workload({2: 1075, 1: 1000}, noise=0.3, seed=1)
    w.tuner._set_level(1)
    t = w.run(300)
    assert t.count == 1 and t.switches == 0 and t.trials > 10


def test_equal_speeds_go_to_fewer_threads_and_stay():
    # a tie under heavy noise: the smaller count is as fast and steadier; it is kept
    w = Workload({2: 800, 1: 800}, noise=0.5, seed=2)
    t = w.run(600)
    assert t.count == 1 and t.switches == 1


def test_two_threads_barely_faster_are_not_kept():
    t = Steps({2: 103, 1: 100}).run(60)
    assert t.count == 1 and t.switches == 1


def test_a_change_of_load_starts_a_trial_soon():
    # two threads are faster until t=60 s, then the load makes one thread twice as fast
    def speeds(now):
        return {2: 1000, 1: 500} if now < 60 else {2: 250, 1: 500}

    w = Workload(speeds)
    t = w.run(60)
    assert t.count == 2 and t.trial_every >= 4 * tt.TRIAL_EVERY_S  # the gap grew
    t = w.run(tt.TRIAL_GAP_MIN_S + 3 * tt.WATCH_S + 2 * tt.PAIRS * tt.WINDOW_S + 1)
    assert t.count == 1 and t.switches == 1   # long before the 80 s gap was over
    t = w.run(100)                            # and it stays there
    assert t.count == 1 and t.switches == 1


def test_up_again_when_the_load_goes():
    def speeds(now):
        return {2: 250, 1: 500} if now < 40 else {2: 1000, 1: 500}

    t = Workload(speeds).run(80)
    assert t.count == 2 and t.switches == 2


def test_no_trial_while_the_rate_is_still_settling():
    # first-use compilation: for 10 s a few ops take seconds each
    def speeds(now):
        return {2: 0.5, 1: 0.5} if now < 10 else {2: 1000, 1: 300}

    w = Workload(speeds)
    t = w.run(9)
    assert t.state == "warmup" and t.trials == 0 and w.applied == []
    t = w.run(60)
    assert t.count == 2 and t.trials >= 1 and t.switches == 0


def test_wider_ladder_moves_one_step_at_a_time():
    w = Workload({8: 300, 4: 500, 2: 700, 1: 400}, top=8)
    t = w.run(200)
    assert t.count == 2
    assert all(abs(tt.ladder(8).index(a) - tt.ladder(8).index(b)) == 1
               for a, b in zip([8] + w.applied, w.applied))


def test_one_thread_to_start_with_means_no_trials():
    w = Workload({1: 100}, top=1)
    t = w.run(60)
    assert t.state == "idle" and w.applied == [] and t.trials == 0


def test_resume_drops_what_ran_while_held():
    w = Workload({2: 1000, 1: 500})
    t = w.run(30)
    start = t.window_start
    w.now += 5.0               # held for 5 s (a blas_threads block): not measured
    t.resume()
    assert t.window_start == w.now > start and t.ticks == 0


def test_describe_names_the_count_and_the_last_trial():
    t = Workload({2: 300, 1: 450}).run(30)
    text = t.describe()
    assert text.startswith("1 of 2 threads") and "1 thread " in text and "switches" in text


# ---------------------------------------------------------------------- the runtime
CHILD = """
import json, sys
import shendu as sd
from shendu.backend import runtime, pool
from shendu.nn import functional as F
out = {"before": runtime.threads_follow_load()}
_ = F.linear(sd.randn(64, 32), sd.randn(16, 32))  # a fast op: the tuner starts, or says why not
out["started"] = runtime.threads_follow_load()
out["info"] = sd.backend.info()["threads_follow_load"]
out["mkl"] = runtime.mkl_path()
t = runtime._tuner
if t is not None and runtime.kernels_on() and runtime.mkl_loaded():
    runtime.kernel_threads()               # kernels set up, as the first kernel would
    serial = runtime.kernels_serial
    out["top"] = [runtime.mkl_threads(), runtime.kernel_threads(), pool._active()]
    t._set_level(1)                        # what a switch to one thread does
    out["one"] = [runtime.mkl_threads(), runtime.kernel_threads(), pool._active()]
    out["serial_kept"] = runtime.kernels_serial == serial
    with sd._threads.blas_threads(1):
        out["paused"] = runtime._tuner_paused
    out["after_block"] = [runtime.kernel_threads(), pool._active()]
    if sys.argv[1] == "choose":
        sd.set_num_threads(2)              # the user's choice: every library at 2, tuner off
        out["chosen"] = [runtime.mkl_threads(), runtime.kernel_threads(), pool._active()]
        out["off"] = runtime.threads_follow_load()
print(json.dumps(out))
"""


def _child(arg="", **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                         "SHENDU_THREADS_FOLLOW_LOAD", "MKL_CBWR")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                         env=full, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to choose")
def test_runtime_tuner_sets_every_library_and_the_user_turns_it_off():
    r = _child("choose")
    assert r["before"] == "on (starts with the first fast op)"
    assert r["started"] == r["info"]
    assert re.fullmatch(r"on: (\d+) of \1 threads \(warmup\)", r["info"])
    if "top" not in r:
        pytest.skip("no MKL or no numba here: only shendu's pool would follow the load")
    assert r["one"] == [1, 1, 1] and r["serial_kept"]  # parallel kernels on fewer threads
    assert r["paused"] == 1 and r["after_block"] == [1, 1]  # the block ends, the count stays
    assert r["chosen"] == [2, 2, 2]
    assert r["off"] == "off: set by sd.set_num_threads(2)"


def test_runtime_tuner_off_when_the_environment_chose():
    assert _child(OMP_NUM_THREADS="2")["started"] == \
        "off: OMP_NUM_THREADS=2 in the environment"
    assert _child(SHENDU_THREADS_FOLLOW_LOAD="0")["info"] == \
        "off (SHENDU_THREADS_FOLLOW_LOAD=0 in the environment)"


def test_runtime_tuner_off_when_mkl_is_not_strict():
    # a user's own MKL_CBWR mode need not keep the bits over thread counts: no tuner then
    r = _child(MKL_CBWR="AUTO")
    if r.get("mkl") is None:
        pytest.skip("no MKL here")
    assert r["started"].startswith("off: MKL's products are not in strict mode")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to choose")
def test_runtime_tuner_is_on_by_default():
    assert re.fullmatch(r"on: (\d+) of \1 threads \(warmup\)", _child()["info"])


def test_a_training_loop_is_timed_in_steps_from_step_end_to_step_end():
    w = Steps({2: 40, 1: 20})
    t = w.run(30)
    assert t.count == 2 and t.stepped and t.last_trial["unit"] == "steps"
    # each window holds whole steps: its rate is the count's step rate exactly
    for count, steps, seconds in t.last_trial["seen"]:
        assert steps >= tt.MIN_STEPS and steps / seconds == pytest.approx(
            {2: 40, 1: 20}[count], rel=1e-6)
    w = Steps({2: 20, 1: 30})
    t = w.run(30)
    assert t.count == 1 and t.switches == 1


def test_fifteen_percent_moves_the_count_either_way():
    # one thread 15% faster: every pair won, past the 10% margin: down to one
    t = Steps({2: 100, 1: 115}).run(120)
    assert t.count == 1 and t.switches == 1
    # the same 15% the other way, starting from one thread: up to two
    w = Steps({2: 115, 1: 100})
    w.tuner._set_level(1)
    t = w.run(60)
    assert t.count == 2 and t.switches == 1


def _decides(home, rates):
    """Whether a trial from ladder level ``home`` (0: two threads) switches, given the
    (current, other) window rates of its pairs."""
    t = ThreadTuner(2, lambda n: None, clock=lambda: 0.0)
    t.home = home
    t.trial_seen = [x for here, other in rates for x in ((1 - home, other, 1.0),
                                                          (home, here, 1.0))]
    return t._other_wins()


def test_more_threads_must_be_five_percent_faster_to_stay_ten_to_return():
    # (current, other) rates of the three pairs; 0: from two threads, 1: from one
    assert _decides(0, [(100, 97), (100, 99), (100, 101)])       # two not 5% faster: down
    assert not _decides(0, [(100, 93), (100, 94), (100, 96)])    # two 6% faster: kept
    # the medians say down (100 < 105), but two threads were 5% faster in two pairs: kept
    assert not _decides(0, [(90, 100), (120, 100), (100, 95)])
    assert not _decides(1, [(100, 108), (100, 109), (100, 107)])  # two 8% faster: not up
    assert _decides(1, [(100, 120), (100, 95), (100, 125)])      # up on two pairs of three
    # the medians say up (111 > 110), but two threads were 10% faster in one pair only
    assert not _decides(1, [(100, 111), (120, 112), (90, 95)])


def test_one_stalled_window_does_not_decide():
    # from one thread, two are 30% faster, but the machine stalls for 0.5 s in one of the
    # two-thread windows (the trial's fourth): the medians still pick two threads, at once
    stalled = []
    w = Steps({2: 65, 1: 50})
    tuner = w.tuner
    tuner._set_level(1)
    real_tick = tuner.tick

    def tick(step_end=False):
        if (tuner.state == "trial" and tuner.count == 2 and len(tuner.trial_seen) == 3
                and not stalled):
            stalled.append(w.now)
            w.now += 0.5
        real_tick(step_end)

    tuner.tick = tick
    t = w.run(8)
    assert stalled and t.count == 2 and t.trials == 1
    assert min(n / s for c, n, s in t.last_trial["seen"] if c == 2) < 20  # the stall


def test_a_much_slower_count_costs_a_short_window_only():
    # beside busy processes: one thread 8x slower. Its trial window is cut when it has
    # taken longer than MIN_STEPS would at ABANDON of the two-thread rate, not after
    # MIN_STEPS of its own slow steps
    t = Steps({2: 40, 1: 5}).run(30)
    assert t.count == 2 and t.switches == 0
    cut = t.log[0]["seen"][0]
    assert cut[0] == 1 and cut[1] < tt.MIN_STEPS and t.log[0]["windows"] == 1
    assert cut[2] < tt.MIN_STEPS / (tt.ABANDON * 40) + 0.5  # not MIN_STEPS / 5 = 0.8 s


def test_watching_starts_a_trial_only_for_a_lasting_move():
    # at the top count, the rate doubling for a while is no reason to try fewer threads
    def speeds(now):
        return {2: 80, 1: 10} if 30 < now < 50 else {2: 40, 1: 10}

    w = Steps(speeds)
    w.run(30)
    trials = w.tuner.trials
    t = w.run(15)
    assert t.trials == trials  # no trial while faster: the gap had grown past 15 s
