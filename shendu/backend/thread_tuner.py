"""Choose how many threads the CPU fast paths use from the speed each count gives now.

Why measure rather than estimate. On a shared machine neither the core count nor the
cores left idle predicts which thread count is fastest. ``shendu bench --contend`` on a
2-core VM (``benchmarks/results/thread-counts-probe.txt``): beside two busy processes,
two threads ran the LeNet-5/Adam step in 11-19 ms and one thread in 127-148 ms (the
scheduler gives a process with more runnable threads more of the cores, and threads that
sleep between parallel regions get the core back quickly when they wake); with other
engineers' training jobs on the same machine instead, two threads took 44 ms and one
34 ms. A rule "run as many threads as cores are idle" picks one thread in both cases,
ten times slower in the first. So the tuner tries the counts and keeps the faster one.

How. The fast paths call ``tick()`` once per dispatched op (``backend/cpu.py``), and
``tick(step_end=True)`` at each optimizer step. Once steps are seen, every window starts
and ends at a step's end and its rate is steps per second; without an optimizer (an
inference loop) it is ops per second, which a loop repeating the same ops makes
proportional to its steps per second at any thread count. The tuner:

* waits ``WARMUP_S``, and until two ``WARMUP_WINDOW_S`` windows in a row ran at about the
  same rate (first-use compilation makes early steps slow at any count: a window holding
  a compilation would make the count it ran at look slow);
* runs a *trial*: ``PAIRS`` pairs of windows, one at the current count and one at the
  other count (a neighbour on the ladder ``n, n/2, ..., 1``), in alternating order so that
  a load that drifts during the trial hits both sides alike; each window lasts at least
  ``WINDOW_S`` seconds, and every window of the tuner at least ``MIN_STEPS`` steps (or
  ``MIN_TICKS`` ops);
* compares the median window rate of each count (a window that caught a stall of the
  whole machine does not decide). More threads must earn their keep: the tuner goes to
  fewer threads unless the current count runs at least ``MARGIN_KEEP`` faster than
  them (on the medians and in ``PAIRS - 1`` of the pairs), and to more threads only when
  those run ``MARGIN_UP`` faster (the same way); between the two margins the count stays
  where it is, so noise does not make it flap. So where the counts tie, the smaller one
  runs: it is as fast, leaves cores to the other work, and its step is steadier (threads
  wait at every parallel region for the one the scheduler is holding back). Beside a
  training job, a PyTorch loop and a busy process per core the counts tied within 5% in
  four alternating rounds (``benchmarks/results/contend-epyc-mixed-rounds-d28a67f.json``),
  at step quartile ranges of 19-23% of the median for two threads and 9-18% for one; the
  tuner of that commit, asking fewer threads to be 10% faster in every pair, kept two;
* abandons a trial after its first pair when the other count ran under ``ABANDON`` of the
  current rate, and cuts a window of fewer threads short as soon as it has taken longer
  than its least number of steps would at ``ABANDON`` of the current rate: beside busy
  processes one thread took 130-230 ms a step where two took 15-40, and a trial must not
  cost seconds of such steps;
* between trials watches the current count's rate in ``WATCH_S`` windows and runs the next
  trial ``TRIAL_EVERY_S`` later, doubling that gap (up to ``TRIAL_EVERY_MAX_S``) each time
  the current count clearly wins, and trying again at once (after ``TRIAL_GAP_MIN_S``)
  when the rate moves by more than ``MOVED`` for two windows in a row, down (or up, below
  the top count), which is what a change of load looks like.

Everything process-wide (the thread counts themselves) happens in ``apply``, a function
given by ``backend/runtime.py``; this module only decides, from a clock and the ticks, so
its logic is tested with a fake clock.

>>> counts = []
>>> clock = [0.0]
>>> t = ThreadTuner(2, counts.append, clock=lambda: clock[0])
>>> t.levels, t.count
([2, 1], 2)
>>> for _ in range(100):               # warm-up: the first ticks only start the clock
...     clock[0] += 0.05; t.tick()
>>> t.state
'trial'
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["ThreadTuner", "ladder"]

WARMUP_S = 2.0           # no trial before this (compilation, first-use costs) ...
WARMUP_WINDOW_S = 0.5    # ... nor before two windows this long ran at about one rate ...
WARMUP_MAX_S = 30.0      # ... unless the rate never settles
WINDOW_S = 0.25          # a trial window's least length
MIN_TICKS = 20           # ... and least number of ticks (any window: a compilation is a
                         # few ticks far apart, and must share a window with normal ones)
MIN_STEPS = 4            # ... or of steps, once steps are seen
PAIRS = 3                # windows per count in a trial
MARGIN_KEEP = 0.05       # more threads must be this much faster to be kept ...
MARGIN_UP = 0.10         # ... and this much to be chosen
ABANDON = 0.6            # other/current rate below this after one window: stop the trial
CLEAR_WIN = 0.25         # current beats the other by this much: wait longer next time
TRIAL_EVERY_S = 10.0     # gap between trials (doubles while the current count clearly wins)
TRIAL_EVERY_MAX_S = 80.0
WATCH_S = 1.0            # between trials, the current rate is read over windows this long
MOVED = 0.35             # a watched rate this far from the trial's: load changed, try again
TRIAL_GAP_MIN_S = 4.0    # ... but never sooner than this after the last trial ended
STEP_WAIT_MAX_S = 5.0    # a window waiting this long for a step's end starts again (the
                         # loop does something else meanwhile, such as evaluating)


LOG_TRIALS = 40           # trials kept in ``ThreadTuner.log``


def ladder(n: int) -> list[int]:
    """The counts tried: ``n``, then halvings down to 1 (``[8, 4, 2, 1]``, ``[6, 3, 1]``)."""
    out = [max(1, int(n))]
    while out[-1] > 1:
        out.append(max(1, out[-1] // 2))
    return out


class ThreadTuner:
    """Decides the thread count from measured tick rates; ``apply(count)`` sets it.

    ``top`` is the count the process would use untuned (the most tried); ``clock`` returns
    seconds (``time.perf_counter`` by default). Call ``tick()`` once per unit of work; it
    returns fast except at a window's end.
    """

    def __init__(self, top: int, apply: Callable[[int], None],
                 clock: Callable[[], float] = time.perf_counter):
        self.levels = ladder(top)
        self.apply = apply
        self.clock = clock
        self.level = 0                  # index into levels of the count in use
        self.state = "warmup"           # warmup -> trial <-> watch
        self.ticks = 0                  # ticks in the current window
        self.steps = 0                  # ... and step ends among them
        self.stepped = False            # step ends seen: windows are measured in steps
        self.window_end: float | None = None  # the clock when the current window may end
        self.window_start = 0.0
        self.trial_every = TRIAL_EVERY_S
        self.next_trial = 0.0
        self.started = 0.0              # the clock at the first tick
        self.warmup_rate: float | None = None  # the last warm-up window's rate
        self.current_rate: float | None = None  # the count in use, last measured
        self.moved = 0                  # watch windows in a row whose rate moved
        self.home = 0                   # the level a running trial started from
        self.trial_ended = 0.0
        self.trial_plan: list[int] = []  # levels of the windows still to run
        self.trial_seen: list[tuple[int, int, float]] = []  # (level, ticks, seconds)
        self.reference_rate: float | None = None  # the current count's rate in the last trial
        self.trials = self.switches = 0
        self.last_trial: dict | None = None
        self.history: list[tuple[float, int]] = []  # (clock, count) at each switch
        self.log: list[dict] = []       # the last LOG_TRIALS trials (info, benchmarks)

    @property
    def count(self) -> int:
        """The thread count in use."""
        return self.levels[self.level]

    def tick(self, step_end: bool = False) -> None:
        """One unit of work done (``step_end``: a training step's last); at a window's
        end, decide."""
        self.ticks += 1
        now = self.clock()
        if step_end:
            self.steps += 1
            if not self.stepped:         # from now on windows run from step to step
                self.stepped = True
                if self.window_end is not None:
                    self._open(now, self.window_end - self.window_start)
                    return
        if self.window_end is None:      # the first tick: start the warm-up
            self.started = now
            self._open(now, WARMUP_WINDOW_S)
            return
        if now < self.window_end:
            return
        done, need = (self.steps, MIN_STEPS) if self.stepped else (self.ticks, MIN_TICKS)
        if done < need:
            if (self.state == "trial" and self.level > self.home and self.current_rate
                    and (now - self.window_start) * ABANDON * self.current_rate >= need):
                # fewer threads have not done in this time what ABANDON of the current
                # rate would have: stop now, not after their slow steps (trying more
                # threads always runs whole windows: a stall must not keep fewer)
                self.trial_seen.append((self.level, done, now - self.window_start))
                self._end_trial(now, switch=False)
            return
        if self.stepped and not step_end:
            if now > self.window_end + STEP_WAIT_MAX_S:
                self.resume()
            return
        ticks = self.steps if self.stepped else self.ticks
        seconds = now - self.window_start
        if self.state == "trial":
            self._trial_window(now, ticks, seconds)
        elif self.state == "watch":
            self._watch_window(now, ticks, seconds)
        else:
            self._warmup_window(now, ticks, seconds)

    def resume(self) -> None:
        """Start the current window again (the ticks were held, e.g. while the caller set
        the counts itself): what ran meanwhile is not measured."""
        if self.window_end is None or self.state == "idle":
            return
        length = {"warmup": WARMUP_WINDOW_S, "trial": WINDOW_S, "watch": WATCH_S}[self.state]
        self._open(self.clock(), length)

    # ------------------------------------------------------------------ windows
    def _open(self, now: float, length: float) -> None:
        self.window_start, self.window_end, self.ticks, self.steps = now, now + length, 0, 0

    def _set_level(self, level: int) -> None:
        if level != self.level:
            self.level = level
            self.apply(self.levels[level])

    def _other_level(self) -> int | None:
        """The neighbour to try: alternately the next smaller and the next larger count."""
        down = self.level + 1 if self.level + 1 < len(self.levels) else None
        up = self.level - 1 if self.level > 0 else None
        if down is None or up is None:
            return down if up is None else up
        return down if self.trials % 2 == 0 else up

    def _warmup_window(self, now: float, ticks: int, seconds: float) -> None:
        rate, before = ticks / max(seconds, 1e-9), self.warmup_rate
        self.warmup_rate = self.current_rate = rate
        steady = before is not None and abs(rate - before) <= MOVED * max(rate, before)
        if (now - self.started >= WARMUP_S and steady) or now - self.started >= WARMUP_MAX_S:
            self._start_trial(now)
        else:
            self._open(now, WARMUP_WINDOW_S)

    def _start_trial(self, now: float) -> None:
        other = self._other_level()
        if other is None:                # one core: nothing to choose
            self.state, self.window_end = "idle", float("inf")
            return
        here = self.level
        plan = []
        for i in range(PAIRS):           # other first, then current first, ...
            plan += [other, here] if i % 2 == 0 else [here, other]
        self.home, self.trial_plan, self.trial_seen = here, plan, []
        self.state = "trial"
        self._next_trial_window(now)

    def _next_trial_window(self, now: float) -> None:
        level = self.trial_plan.pop(0)
        self._set_level(level)
        self._open(now, WINDOW_S)

    def _trial_window(self, now: float, ticks: int, seconds: float) -> None:
        self.trial_seen.append((self.level, ticks, seconds))
        if len(self.trial_seen) == 2 and self._abandon():
            self._end_trial(now, switch=False)
        elif self.trial_plan:
            self._next_trial_window(now)
        else:
            self._end_trial(now, switch=self._other_wins())

    def _rates(self) -> tuple[float, float, list[tuple[float, float]]]:
        """(current's median window rate, the other's, the pairs' (current, other) rates)."""
        home = [t / max(s, 1e-9) for lv, t, s in self.trial_seen if lv == self.home]
        other = [t / max(s, 1e-9) for lv, t, s in self.trial_seen if lv != self.home]
        home = home or [self.current_rate or 0.0]  # a trial cut in its first window
        return statistics.median(home), statistics.median(other), list(zip(home, other))

    def _abandon(self) -> bool:
        here, other, _ = self._rates()
        return other < ABANDON * here

    def _other_wins(self) -> bool:
        here, other, pairs = self._rates()
        fewer = self.trial_seen[0][0] > self.home  # the other count is further down the ladder
        if fewer:   # down unless the current, larger count is MARGIN_KEEP faster
            lost = sum(h < (1 + MARGIN_KEEP) * o for h, o in pairs)
            return here < (1 + MARGIN_KEEP) * other and lost >= PAIRS - 1
        won = sum(o > (1 + MARGIN_UP) * h for h, o in pairs)
        return other > (1 + MARGIN_UP) * here and won >= PAIRS - 1

    def _end_trial(self, now: float, switch: bool) -> None:
        here, other, pairs = self._rates()
        wins = sum(o > h for h, o in pairs)
        other_level = next(lv for lv, _, _ in self.trial_seen if lv != self.home)
        self.trials += 1
        self.last_trial = {"at_s": round(now - self.started, 2),
                           "counts": (self.levels[self.home], self.levels[other_level]),
                           "rates": (round(here, 2), round(other, 2)),
                           "other_won_pairs": wins, "windows": len(self.trial_seen),
                           "switched": switch, "unit": "steps" if self.stepped else "ops",
                           "seen": [(self.levels[lv], t, round(s, 3))
                                    for lv, t, s in self.trial_seen]}
        self.log = (self.log + [self.last_trial])[-LOG_TRIALS:]
        if switch:
            self._set_level(other_level)
            self.switches += 1
            self.history.append((now, self.count))
            self.reference_rate = self.current_rate = other
            self.trial_every = TRIAL_EVERY_S
        else:
            self._set_level(self.home)
            self.reference_rate = self.current_rate = here
            clear = other < (1 - CLEAR_WIN) * here
            self.trial_every = (min(2 * self.trial_every, TRIAL_EVERY_MAX_S) if clear
                                else TRIAL_EVERY_S)
        self.trial_ended = now
        self.next_trial = now + self.trial_every
        self.state = "watch"
        self._open(now, WATCH_S)

    def _watch_window(self, now: float, ticks: int, seconds: float) -> None:
        rate = self.current_rate = ticks / max(seconds, 1e-9)
        ref = self.reference_rate or rate
        # slower than at the last trial: another count may do better now; faster: only
        # worth a look below the top count (the load that made fewer threads win may be gone)
        self.moved = (self.moved + 1 if rate < (1 - MOVED) * ref
                      or (self.level > 0 and rate > (1 + MOVED) * ref) else 0)
        moved = self.moved >= 2
        if now >= self.next_trial or (moved and now >= self.trial_ended + TRIAL_GAP_MIN_S):
            self.moved = 0
            if moved:
                self.trial_every = TRIAL_EVERY_S  # the load changed: the gap starts short
            self._start_trial(now)
        else:
            self._open(now, WATCH_S)

    def describe(self) -> str:
        """One line for ``info()``: the count in use and the last trial."""
        text = f"{self.count} of {self.levels[0]} threads ({self.state}"
        if self.last_trial:
            (a, b), (ra, rb) = self.last_trial["counts"], self.last_trial["rates"]
            unit = self.last_trial["unit"]
            text += (f"; last trial: {_threads(a)} {ra:.1f} {unit}/s, {_threads(b)} {rb:.1f} "
                     f"{unit}/s; {self.trials} trials, {self.switches} switches")
        return text + ")"


def _threads(n: int) -> str:
    return f"{n} thread" + ("s" if n != 1 else "")
