"""Shared test setup: make ``tests/`` importable (for ``op_helper``), seed every test, and
keep the oracles visible: a comparison whose oracle is missing shows as a skip with its
reason, and ``SHENDU_REQUIRE_ORACLES=1`` (CI) refuses to run without them."""
import importlib
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

if os.environ.get("SHENDU_TEST_DEVICE") == "fake":
    # Run the suite's check_op calls on the CuPy stand-in, installed as device 'cuda'.
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "devices"))
    import fakecupy

    fakecupy.install()

# Independent references the suite compares against (test-only dependencies).
ORACLES = {"torch": "PyTorch (pip install -e '.[oracle]')",
           "scipy": "SciPy (pip install -e '.[test]')",
           "sklearn": "scikit-learn (pip install -e '.[test]')",
           "onnx": "ONNX (pip install -e '.[test]')",
           "onnxruntime": "onnxruntime (pip install -e '.[test]')",
           "pycocotools": "pycocotools, the COCO mAP oracle (pip install -e '.[oracle]')",
           "sacrebleu": "sacrebleu, the BLEU oracle (pip install -e '.[oracle]')",
           "seqeval": "seqeval, the span-F1 oracle (pip install -e '.[oracle]')"}


def missing_oracles():
    missing = []
    for name, what in ORACLES.items():
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(what)
    return missing


_prewarm = {"helper": None, "recording": None}


def _start_prewarm():
    """Compile the suite's kernels ahead on the idle core (``kernel_prewarm``), or, with
    ``SHENDU_RECORD_SUITE_KERNELS=1``, record which the session uses. Either way not again
    in the pytest runs some tests start: they inherit the environment set here."""
    import contextlib

    import kernel_prewarm

    from shendu.backend import warm_start
    if os.environ.pop("SHENDU_RECORD_SUITE_KERNELS", "0") == "1":
        stack = contextlib.ExitStack()
        _prewarm["recording"] = (stack, stack.enter_context(warm_start.recording(False)))
    else:
        _prewarm["helper"] = kernel_prewarm.start()
    os.environ["SHENDU_TEST_PREWARM"] = "0"


def pytest_sessionfinish(session, exitstatus):
    import kernel_prewarm
    kernel_prewarm.stop(_prewarm["helper"])
    if _prewarm["recording"] is not None:
        stack, order = _prewarm["recording"]
        stack.close()
        kernel_prewarm.record_to_list(order)


def pytest_sessionstart(session):
    from op_helper import REQUIRE_ORACLES

    missing = missing_oracles()
    if REQUIRE_ORACLES and missing:
        pytest.exit("SHENDU_REQUIRE_ORACLES=1 but these test oracles are not installed: "
                    + ", ".join(missing), returncode=3)
    if os.environ.get("SHENDU_REQUIRE_TORCHVISION") == "1":
        try:
            importlib.import_module("torchvision")
        except ImportError as e:  # the venv .ci/run made for these comparisons is broken
            pytest.exit(f"SHENDU_REQUIRE_TORCHVISION=1 but torchvision does not import: {e}",
                        returncode=3)
    _start_prewarm()


def pytest_report_header(config):
    missing = missing_oracles()
    return ("oracles: all installed" if not missing else
            "oracles MISSING (their comparisons show as skipped): " + ", ".join(missing))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test whose checks passed but lost an oracle comparison is reported as skipped,
    with what did not run: never a silent pass."""
    import op_helper

    if call.when == "setup":
        op_helper.MISSING.clear()
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and report.passed and op_helper.MISSING:
        what = sorted(set(op_helper.MISSING))
        report.outcome = "skipped"
        report.longrepr = (str(item.fspath), item.location[1] or 0,
                           "Skipped: oracle not installed, these comparisons did not run "
                           "(the NumPy and finite-difference checks passed): " + "; ".join(what))
    if call.when == "call":
        op_helper.MISSING.clear()


@pytest.fixture(autouse=True)
def _seed():
    import shendu as sd

    sd.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    # Test-sized matrix products gain nothing from a second BLAS thread, and on shared
    # cores OpenBLAS threads stall waiting for each other (see shendu/_threads.py).
    from shendu._threads import blas_threads

    with blas_threads(1):
        yield
