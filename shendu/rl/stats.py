"""Episode statistics: returns and lengths as they happen, a CSV and a return-curve plot."""
from __future__ import annotations

import csv
import os
import time

import numpy as np


class EpisodeStats:
    """Per-episode return, length, whether it terminated (vs. truncated) and wall time.

    >>> s = EpisodeStats()
    >>> s.record(1.0, 10, True); s.record(3.0, 20, False)
    >>> s.mean_return(), len(s)
    (2.0, 2)
    """

    def __init__(self) -> None:
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.terminated: list[bool] = []
        self.times: list[float] = []
        self._start = time.perf_counter()

    def record(self, ret: float, length: int, terminated: bool) -> None:
        self.returns.append(float(ret))
        self.lengths.append(int(length))
        self.terminated.append(bool(terminated))
        self.times.append(time.perf_counter() - self._start)

    def __len__(self) -> int:
        return len(self.returns)

    @property
    def total_steps(self) -> int:
        return int(sum(self.lengths))

    def mean_return(self, last: int | None = None) -> float:
        """Mean return over all episodes, or the ``last`` ones; nan when there are none."""
        r = self.returns if last is None else self.returns[-last:]
        return float(np.mean(r)) if r else float("nan")

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write ``episode,return,length,terminated,steps,seconds`` rows."""
        steps = np.cumsum(self.lengths) if self.lengths else []
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["episode", "return", "length", "terminated", "steps", "seconds"])
            for i, row in enumerate(zip(self.returns, self.lengths, self.terminated, steps,
                                        self.times)):
                r, n, t, s, sec = row
                w.writerow([i, repr(r), n, int(t), int(s), f"{sec:.3f}"])

    @staticmethod
    def read_csv(path: str | os.PathLike) -> EpisodeStats:
        s = EpisodeStats()
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                s.returns.append(float(row["return"]))
                s.lengths.append(int(row["length"]))
                s.terminated.append(bool(int(row["terminated"])))
                s.times.append(float(row["seconds"]))
        return s


def moving_average(x, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points (shorter at the start, same length).

    >>> moving_average([1, 2, 3, 4], 2).tolist()
    [1.0, 1.5, 2.5, 3.5]
    """
    x = np.asarray(x, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_returns(curves: dict, path: str | os.PathLike, window: int = 20,
                 title: str = "", ylim: tuple | None = None) -> None:
    """Plot per-episode returns (faint) and their moving average for each named curve.

    Args:
        curves: ``{label: returns}`` (a list of returns or an :class:`EpisodeStats`).
        path: image file to write (png, svg, ...).
        window: moving-average window in episodes.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, r in curves.items():
        r = r.returns if isinstance(r, EpisodeStats) else r
        x = np.arange(1, len(r) + 1)
        (line,) = ax.plot(x, moving_average(r, window), label=f"{label} ({window}-episode mean)")
        ax.plot(x, r, color=line.get_color(), alpha=0.2, linewidth=0.7)
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
