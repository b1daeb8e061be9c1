"""The suite's numba kernels compiled ahead, on the core pytest leaves idle.

On a cold numba cache (a fresh clone, as in CI) about half of the suite's time is numba
compiling kernels at their first use, one after another in the pytest process, while the
machine's second core mostly waits. So at the start of a session the conftest starts one
helper process that compiles the kernels the suite uses, in the order the suite first
uses them, into numba's disk cache (``shendu.backend.warm_start.compile_entry``, the
machinery of ``shendu train``'s cold start). A test that reaches a kernel the helper has
cached loads it instead of compiling it; the machine code is the same either way. The
helper runs at the lowest CPU priority (``SCHED_IDLE``), so it only gets CPU time that no
test wants, and it is ended when the session ends.

The list (``kernels_of_the_suite.json``) is a recording of a whole run:
``SHENDU_RECORD_SUITE_KERNELS=1 python -m pytest -q`` writes it again. A stale list costs
time, never correctness: an entry that no longer exists is passed over.
``SHENDU_TEST_PREWARM=0`` turns the helper off.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LIST = Path(__file__).with_name("kernels_of_the_suite.json")


def start():
    """Start the helper when it can help; returns the ``subprocess.Popen`` or None."""
    import shendu
    if os.environ.get("SHENDU_TEST_PREWARM", "1") == "0" or not runtime_allows():
        return None
    code = (f"import sys; sys.path[:0] = [{str(Path(shendu.__file__).parents[1])!r}, "
            f"{str(Path(__file__).parent)!r}]; import kernel_prewarm; kernel_prewarm.main()")
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def runtime_allows() -> bool:
    """Kernels on and MKL as recorded (without MKL the suite takes other paths)."""
    from shendu.backend import runtime
    return runtime.kernels_on() and LIST.exists() \
        and json.loads(LIST.read_text())["mkl"] == runtime.mkl_loaded()


def stop(helper) -> None:
    """End the helper (``warm_start.end``)."""
    from shendu.backend import warm_start
    warm_start.end(helper)


def main() -> None:
    """The helper: compile every listed kernel in order, at idle priority."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):   # not Linux
        os.nice(19)
    from shendu.backend import warm_start
    for entry in json.loads(LIST.read_text())["kernels"]:
        try:
            warm_start.compile_entry(entry)
        except Exception:   # noqa: BLE001 - renamed or changed since the recording
            continue


def record_to_list(order: list) -> None:
    """Write a recording (``warm_start.recording``'s list) as the suite's list."""
    from shendu.backend import runtime
    rows = ",\n".join(json.dumps(entry) for entry in order)   # a line each, for diffs
    LIST.write_text(f'{{"mkl": {json.dumps(runtime.mkl_loaded())}, "kernels": [\n{rows}\n]}}\n')
