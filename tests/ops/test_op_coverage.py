"""Every op named in issue 2 goes through ``check_op`` somewhere in ``tests/ops``."""
from op_coverage import HERE, NAMED_OPS, coverage, functions_under_test, missing


def test_every_named_op_is_run_through_check_op():
    assert missing() == [], "ops named in issue 2 without a check_op test (see op_coverage.py)"


def test_conv_and_pool_are_covered_in_their_own_file():
    sources = functions_under_test(HERE / "test_conv_pool.py")
    for op in ("conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
               "adaptive_avg_pool2d"):
        assert any(op in s for s in sources), f"{op} has no check_op call in test_conv_pool.py"


def test_the_scanner_sees_parametrized_tables():
    # the tables of test_elementwise.py reach check_op through a parametrized ``fn``
    hits = coverage()
    assert any("sd.rsqrt" in s for s in hits["rsqrt"])
    assert len(NAMED_OPS) > 80
