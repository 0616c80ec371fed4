"""The benchmarks' command lines: a count they cannot time with is one line and exit 2, before anything runs."""

import argparse
import re

import pytest

from conftest import ROOT, run_script

BENCHMARKS = sorted(path.name for path in (ROOT / "benchmarks").glob("bench_*.py")
                    if '"--rounds"' in path.read_text())


def test_at_least_takes_counts_from_its_minimum_up():
    import sys
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from timing import at_least
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert [at_least(0)("0"), at_least(1)("1"), at_least(1)("30")] == [0, 1, 30]
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1, got 0"):
        at_least(1)("0")


def test_every_benchmark_with_rounds_is_found():
    assert len(BENCHMARKS) >= 10 and "bench_aggressive.py" in BENCHMARKS


@pytest.mark.parametrize("script", BENCHMARKS)
def test_zero_rounds_is_one_line_and_exit_2(script):
    """Zero rounds used to reach the medians of no timings and end in a traceback."""
    result = run_script(f"benchmarks/{script}", "--rounds=0", cwd=ROOT / "benchmarks")
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error == [f"{script}: error: argument --rounds: must be at least 1, got 0"], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_every_count_a_benchmark_takes_has_its_minimum():
    """A count option of plain `type=int` let a negative value through to a traceback (bench_posteriors'
    --likelihood_images=-1); each takes `at_least` now, whose refusal is the one line above. Seeds may be any
    integer."""
    integer_option = re.compile(r'add_argument\(\s*"(--\w+)"[^)]*\btype=int\b')
    plain = [f"{path.name} {name}" for path in sorted((ROOT / "benchmarks").glob("*.py"))
             for name in integer_option.findall(path.read_text()) if name != "--seed"]
    assert not plain, f"counts without a minimum (use timing.at_least): {plain}"
