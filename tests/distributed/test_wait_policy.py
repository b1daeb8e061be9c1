"""How a rank waits: long polls only where the job's threads fit the cores, and naps that
end on time (no MPI job needed: a stand-in communicator)."""
import ctypes
import sys
import threading

import pytest

pg = pytest.importorskip("shendu.distributed.process_group")


class _Comm:
    """allgather over made-up ranks: each rank's (usable cores, threads)."""

    def __init__(self, ranks):
        self.ranks = ranks

    def allgather(self, mine):
        assert isinstance(mine[0], set) and mine[1] >= 1   # what this process sends
        return self.ranks


def test_spin_budget_long_only_when_the_threads_fit_the_cores():
    two_cores = {0, 1}
    assert pg._spin_budget(_Comm([(two_cores, 1), (two_cores, 1)])) == pg.SPIN_FREE_S
    assert pg._spin_budget(_Comm([(two_cores, 2), (two_cores, 1)])) == pg.SPIN_S
    assert pg._spin_budget(_Comm([(two_cores, 1)] * 3)) == pg.SPIN_S
    # each rank bound to its own core: the union counts
    assert pg._spin_budget(_Comm([({0}, 1), ({1}, 1)])) == pg.SPIN_FREE_S
    assert pg._spin_budget(_Comm([({0}, 1), ({0}, 1)])) == pg.SPIN_S


@pytest.mark.parametrize("spin_s", [pg.SPIN_S, pg.SPIN_FREE_S])
def test_nap_until_returns_once_the_test_holds(spin_s):
    calls = []

    def test():
        calls.append(1)
        return len(calls) >= 5
    pg._nap_until(test, spin_s)
    assert len(calls) == 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux's")
def test_naps_get_a_small_timer_slack_in_the_thread_that_waits():
    """Linux lets a sleep overrun by the thread's timer slack (50 µs by default)."""
    polls, slack = [], {}

    def waiter():
        prctl = ctypes.CDLL(None).prctl
        prctl(29, 50_000, 0, 0, 0)   # PR_SET_TIMERSLACK: Linux's default (a thread
        slack["before"] = prctl(30, 0, 0, 0, 0)   # inherits its creator's), then GET
        pg._nap_until(lambda: polls.append(1) or len(polls) > 2, 0)   # naps twice
        slack["after"] = prctl(30, 0, 0, 0, 0)
    t = threading.Thread(target=waiter)
    t.start()
    t.join(10)
    assert slack["before"] == 50_000 and slack["after"] == 1_000 and len(polls) == 3, slack
