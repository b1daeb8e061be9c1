"""Pass counts per op family for ONNX's node tests, printed after the test summary."""
import collections
import re

_outcomes = collections.defaultdict(collections.Counter)


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    m = re.search(r"OnnxBackendNodeModelTest::(test_\w+)$", report.nodeid)
    if not m:
        return
    from shendu.onnx.conformance import family_of

    _outcomes[family_of(m.group(1))][report.outcome] += 1


def pytest_terminal_summary(terminalreporter):
    if not _outcomes:
        return
    from shendu.onnx.conformance import FAMILIES, node_test_families

    totals = collections.Counter(node_test_families().values())
    tr = terminalreporter
    tr.section("ONNX node tests per op family (passed/run of all; the rest excluded)")
    line = []
    for fam in FAMILIES:
        c = _outcomes.get(fam, collections.Counter())
        run = sum(c.values())
        line.append(f"{fam} {c['passed']}/{run}/{totals[fam]}")
        if len(line) == 6:
            tr.write_line("  ".join(line))
            line = []
    if line:
        tr.write_line("  ".join(line))
    passed = sum(c["passed"] for c in _outcomes.values())
    run = sum(sum(c.values()) for c in _outcomes.values())
    tr.write_line(f"total: {passed} passed of {run} run, {sum(totals.values())} node tests "
                  f"in these families")
