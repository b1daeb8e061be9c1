"""The ``lstm_layer_fwd_bwd`` step (nn.LSTM(256, 256) on (35, 32, 256), forward and
backward of the output's sum) on two paths of shendu's LSTM time loops and in PyTorch,
interleaved in one process, so that a shared machine's load falls on all three alike:

* ``per-step``: every step called from Python, ``cpu.matmul`` products on the unpacked
  recurrent weight and the step kernel with the kernels' own tanh (the path before the
  compiled loops; it also scales the projections in two passes where main scaled the
  weights);
* ``shared``: the compiled loops ``jit.lstm_forward_loop`` / ``lstm_backward_loop`` with
  every product on both threads (products on the packed W_hh^T forward, MKL's vector
  tanh), and the large gradient products after BPTT (the default before the two-thread
  schedules);
* ``compiled``: the two-thread schedules: the forward step kernel multiplies each
  thread's rows (the default where the CPU has AVX-512, ``backend.rnn._in_step_products``;
  elsewhere the forward is ``shared``'s), and BPTT runs on one thread while the other
  makes the large gradient products (``jit.lstm_backward_overlapped``, the default).

The switch is made by replacing what ``backend/rnn.py`` asks ``runtime`` and
``cpu.StepProducts``, and its two-thread schedules (nothing else changes). Blocks of
``--iters`` steps; the minimum and first quartile over ``--rounds`` blocks are the
numbers to compare (a block that met another process's work only gets slower).

    python benchmarks/lstm_layer_ab.py --rounds 40 --json benchmarks/results/lstm-layer-ab.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import shendu  # noqa: E402
from shendu._bench_report import machine_info  # noqa: E402
from shendu.backend import cpu, runtime  # noqa: E402
from shendu.backend import rnn as backend_rnn  # noqa: E402

T, N, H = 35, 32, 256


class _PerStepRuntime:
    """``runtime`` as ``backend/rnn.py`` sees it, saying "no MKL" while ``per_step``."""

    per_step = False

    def __getattr__(self, name):
        return getattr(runtime, name)

    def mkl_loaded(self):
        return not self.per_step and runtime.mkl_loaded()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--iters", type=int, default=2, help="steps per timed block")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the timings here")
    args = p.parse_args(argv)

    import torch

    shendu.backend.keep_freed_memory(True)  # as `shendu bench` runs
    shendu.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    switch = _PerStepRuntime()
    backend_rnn.runtime = switch
    packing = cpu.StepProducts.__init__

    def step_products(self, b, rows):
        packing(self, b, rows)
        if switch.per_step:
            self.packed, self.compiled = None, False
    cpu.StepProducts.__init__ = step_products

    x = np.random.default_rng(0).standard_normal((T, N, H), dtype=np.float32)
    shendu.manual_seed(0)
    s_lstm, s_x = shendu.nn.LSTM(H, H), shendu.tensor(x).requires_grad_(True)
    t_lstm, t_x = torch.nn.LSTM(H, H), torch.from_numpy(x).requires_grad_(True)

    def shendu_step():
        s_lstm.zero_grad()
        s_x.grad = None
        out, _ = s_lstm(s_x)
        out.sum().backward()

    def torch_step():
        t_lstm.zero_grad()
        t_x.grad = None
        out, _ = t_lstm(t_x)
        out.sum().backward()

    def block(step):
        step()  # after a switch of path: its arrays and threads warm
        t0 = time.perf_counter()
        for _ in range(args.iters):
            step()
        return (time.perf_counter() - t0) / args.iters * 1e3

    schedules = (backend_rnn._IN_STEP_MIN_ROWS, backend_rnn.lstm_backward_overlapped,
                 backend_rnn._IN_STEP)

    def use(name):
        switch.per_step = name == "per-step"
        on = name == "compiled"
        backend_rnn._IN_STEP_MIN_ROWS = schedules[0] if on else 10 ** 9
        backend_rnn.lstm_backward_overlapped = schedules[1] if on else lambda *a, **k: None
        backend_rnn._IN_STEP = True if on else schedules[2]   # on any CPU (see _in_step_products)

    runs = {"per-step": [], "shared": [], "compiled": [], "torch": []}
    load_before = os.getloadavg()
    for _ in range(3):
        shendu_step()
        torch_step()
    for _ in range(args.rounds):
        for name in ("per-step", "shared", "compiled"):
            use(name)
            runs[name].append(block(shendu_step))
        runs["torch"].append(block(torch_step))
    use("compiled")
    backend_rnn._IN_STEP = schedules[2]

    summary = {}
    t_min, t_q1 = min(runs["torch"]), float(np.percentile(runs["torch"], 25))
    for name, ms in runs.items():
        q1 = float(np.percentile(ms, 25))
        summary[name] = {"min_ms": round(min(ms), 3), "q1_ms": round(q1, 3),
                         "median_ms": round(float(np.median(ms)), 3),
                         "torch_over_this_min": round(t_min / min(ms), 3),
                         "torch_over_this_q1": round(t_q1 / q1, 3)}
        print(f"{name:9s} min {min(ms):6.2f} ms  q1 {q1:6.2f}  median {np.median(ms):6.2f}"
              f"   PyTorch/this: min {t_min / min(ms):.3f}  q1 {t_q1 / q1:.3f}")
    print(f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    if args.json:
        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": "python benchmarks/lstm_layer_ab.py " + " ".join(argv or sys.argv[1:]),
               "machine": machine_info({"threads": args.threads}),
               "load_average_before": load_before, "summary": summary, "runs_ms": runs}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
