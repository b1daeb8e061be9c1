"""One library's run of the user-loop benchmark, in a process of its own.

Run by ``shendu._bench_loop`` as ``python -c <this file's text> LIB DATA STEPS THREADS ROOT``
(not imported: the PyTorch run must not load shendu, nor shendu's run PyTorch). It trains
LeNet-5 written as a plain ``nn.Sequential`` with Adam (lr 1e-3), batch 128, fresh batches
indexed out of NumPy arrays every step, exactly as a user's own loop does, and prints one
JSON line: import time, the first step (which pays compilation and first-use costs) and
the time of every later step.
"""
import json
import sys
import time


def main() -> None:
    t_start = time.perf_counter()
    lib, data, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, sys.argv[5])  # the shendu to time, ahead of any installed one

    import numpy as np

    if lib == "shendu":
        import shendu as fw
        from shendu import nn, optim
        from shendu.nn import functional as F
    else:
        import torch as fw
        from torch import nn, optim
        from torch.nn import functional as F
    if threads:
        fw.set_num_threads(threads)
    import_s = time.perf_counter() - t_start

    x = np.load(f"{data}/x.npy", allow_pickle=False)  # (N, 1, 28, 28) float32 in [0, 1]
    y = np.load(f"{data}/y.npy", allow_pickle=False)  # (N,) int64
    fw.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    batch, order, at = 128, rng.permutation(len(x)), 0
    times, losses = [], []
    for step in range(steps):
        if at + batch > len(order):  # a new epoch: a new shuffle
            order, at = rng.permutation(len(x)), 0
        idx = order[at:at + batch]
        at += batch
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(fw.tensor(x[idx])), fw.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        if step % 50 == 0 or step == steps - 1:
            losses.append(float(loss.item()))
    # what shendu's thread count did while the load changed (older shendu: no such report)
    rt = getattr(getattr(fw, "backend", None), "runtime", None) if lib == "shendu" else None
    follow = getattr(rt, "threads_follow_load", None)
    trials = getattr(rt, "threads_follow_load_log", None)
    print("RESULT " + json.dumps({
        "lib": lib, "version": fw.__version__, "threads": fw.get_num_threads(),
        "threads_follow_load": follow() if follow else None,
        "thread_trials": trials() if trials else None,
        "import_s": import_s, "step_s": times, "losses": losses,
        "total_s": time.perf_counter() - t_start}))


if __name__ == "__main__":  # run as a script (python -c), never on import
    main()
