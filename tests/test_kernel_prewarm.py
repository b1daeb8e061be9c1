"""The suite's kernel list (tests/kernel_prewarm.py): every entry still names a compiled
function of shendu with argument types numba understands, and pytest runs started by
tests do not start helpers of their own."""
import json
import os

import kernel_prewarm

from shendu.backend import warm_start


def test_every_listed_kernel_still_exists():
    """After renaming or removing a kernel, record the list again:
    SHENDU_RECORD_SUITE_KERNELS=1 python -m pytest -q"""
    doc = json.loads(kernel_prewarm.LIST.read_text())
    assert isinstance(doc["mkl"], bool) and len(doc["kernels"]) > 100
    for entry in doc["kernels"]:
        disp = warm_start._dispatcher(entry)
        assert hasattr(disp, "compile") and disp.py_func.__module__ == entry[0], entry[:3]
        assert all(warm_start._type_from_json(t) is not None for t in entry[3]), entry[:3]


def test_pytest_runs_inside_the_session_start_no_second_helper(monkeypatch):
    assert os.environ.get("SHENDU_TEST_PREWARM") == "0"   # set at the session's start
    started = []
    monkeypatch.setattr(kernel_prewarm.subprocess, "Popen", lambda *a, **k: started.append(a))
    assert kernel_prewarm.start() is None and not started
    monkeypatch.setenv("SHENDU_TEST_PREWARM", "1")
    if kernel_prewarm.runtime_allows():
        kernel_prewarm.start()
        assert len(started) == 1 and "kernel_prewarm.main()" in started[0][0][-1]
