"""Closed-form metrics: the boundary cases of meek-math §5 and the expression whitelist."""

import math
import multiprocessing
import os
import subprocess
import sys

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import expressions
from pipeline.expressions import (
    DEFAULT_A,
    DEFAULT_B,
    ExpressionError,
    classify_expression,
    parse_expression,
)
from pipeline.schema import ScalegapError

# c·ln(ln b / ln a) with the default scenario's a = 4, b = 4·2.828 (meek-math §8): about 0.5596
LN_RATIO = math.log(math.log(DEFAULT_B) / math.log(DEFAULT_A))


@pytest.mark.parametrize("expr, verdict, bounded", [
    ("log(log(log(C)))", "meek", False),              # unbounded yet meek
    ("C**0.3", "mighty-divergent", False),
    ("1 - exp(-C**0.1)", "meek", True),
    ("log(C)", "mighty-divergent", False),
    ("log(log(C))**2", "mighty-divergent", False),
    ("1/(1+exp(-(log(C)-50)))", "meek", True),
    ("-(1.69 + 406*C**-0.15)", "meek", True),         # Chinchilla-style negative loss
])
def test_boundary_cases(expr, verdict, bounded):
    v = classify_expression(expr)
    assert v.normal and v.verdict == verdict and v.bounded is bounded


def test_loglog_constant_gap_value():
    v = classify_expression("3*log(log(C))")
    assert v.verdict == "mighty-constant-gap"
    assert v.g_limit == pytest.approx(3.0)
    assert v.gap_limit == pytest.approx(3 * LN_RATIO, rel=1e-9)
    # the direct gap under exponential growth reaches the same constant (evidence string)
    v2 = classify_expression("log(log(C))", a=2.0, b=8.0)
    assert v2.gap_limit == pytest.approx(math.log(3.0), rel=1e-9)  # ln(ln 8 / ln 2) = ln 3


def test_decreasing_is_not_normal():
    v = classify_expression("-log(C)")
    assert not v.normal and v.verdict == "not-normal"


@pytest.mark.parametrize("expr", ["1/C", "-C", "log(C)/C", "-exp(C)"])
def test_decreasing_past_float_range_is_not_normal(expr):
    # in floats exp(-C) underflows to 0 (a flat, "not decreasing" tail) and exp(C) overflows to inf;
    # the sign of dF/d ln ln C is taken in arbitrary precision instead
    v = classify_expression(expr)
    assert not v.normal and v.verdict == "not-normal", v


@pytest.mark.parametrize("expr", ["exp(C)", "2**C"])
def test_faster_than_any_power_is_mighty_divergent(expr):
    v = classify_expression(expr)
    assert v.normal and v.verdict == "mighty-divergent" and v.bounded is False


@pytest.mark.parametrize("expr", ["9**9**9**9*C", "C**2**2**2**2**2"])
def test_huge_constants_are_refused_before_sympy_evaluates_them(expr):
    with pytest.raises(ExpressionError, match="larger than 1e300"):
        parse_expression(expr)


def test_numeric_fallback_agrees_with_symbolic():
    v = classify_expression("log(log(log(C)))", symbolic=False)
    assert v.method == "numeric" and v.verdict == "meek"
    v = classify_expression("C**0.3", symbolic=False)
    assert v.method == "numeric" and v.verdict == "mighty-divergent"
    v = classify_expression("log(log(C))", symbolic=False)
    assert v.method == "numeric" and v.verdict == "mighty-constant-gap" and v.g_limit == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("text, token", [
    ("__import__('os').system('touch /tmp/pwned')", "__import__"),
    ("C.real", "."),
    ("lambda C: C", "lambda"),
    ("x + C", "x"),
    ("'C'", "'"),
    ("log(C, 2)", ","),
    ("", "empty"),
    ("exp(3)", "does not involve C"),
])
def test_refused(text, token):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert token in str(info.value)
    assert isinstance(info.value, ScalegapError)


def test_injection_never_executes(tmp_path):
    target = tmp_path / "pwned"
    with pytest.raises(ExpressionError):
        classify_expression(f'__import__("os").system("touch {target}")')
    assert not target.exists()


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="C()+-*/^ .,_'\"[]{}:;=abcdefgilmnoprstx0123456789", max_size=30))
def test_random_strings_never_crash(text):
    # only ScalegapError may escape; anything else (SyntaxError, TypeError, ...) fails the test
    try:
        parse_expression(text)
    except ScalegapError:
        pass


# The forms the docs and the CLI help show for --expr (benchmarks/bench_expr.py times them).
@pytest.mark.parametrize("expr, verdict, bounded", [
    ("log(log(C))", "mighty-constant-gap", False),
    ("log(C)", "mighty-divergent", False),
    ("C**0.1", "mighty-divergent", False),
    ("1-1/log(C)", "meek", True),
    ("log(log(log(C)))", "meek", False),
    ("sqrt(log(C))", "mighty-divergent", False),
    ("exp(-1/log(C))", "meek", True),
    ("log(C)/(1+log(C))", "meek", True),
])
def test_documented_forms(expr, verdict, bounded):
    v = classify_expression(expr)
    assert v.normal and v.verdict == verdict and v.bounded is bounded, v


# Audit of 76 forms: these were answered wrongly (the old answer in the comment). Each is checked with and
# without sympy's limits, so the numeric tail test has to get them right on its own.
@pytest.mark.parametrize("symbolic", [True, False], ids=["symbolic", "numeric"])
@pytest.mark.parametrize("expr, verdict, bounded", [
    ("sqrt(C)/(1+sqrt(C))", "meek", True),             # was not-normal: sign of g at 15 digits
    ("log(C)/(1+log(C))", "meek", True),               # was not-normal: sign of g at 15 digits
    ("exp(C)/(1+exp(C))", "meek", True),               # was not-normal: float overflow
    ("exp(exp(C))", "mighty-divergent", False),        # was not-normal: float overflow
    ("exp(exp(exp(C)))", "mighty-divergent", False),   # was not-normal: float overflow
    ("exp(exp(exp(exp(C))))", "mighty-divergent", False),
    ("5 + 0*C", "not-normal", None),                   # was a KeyError traceback
    ("log(C)*exp(-C)", "not-normal", None),            # was meek: it decreases
    ("log(log(C))*exp(-C)", "not-normal", None),       # was meek: it decreases
])
def test_audited_forms(expr, verdict, bounded, symbolic):
    v = classify_expression(expr, symbolic=symbolic)
    assert v.verdict == verdict and v.bounded is bounded, v
    assert v.normal is (verdict != "not-normal")


def test_constant_is_not_normal():
    v = classify_expression("5 + 0*C")
    assert not v.normal and v.verdict == "not-normal" and "constant" in v.evidence


@pytest.mark.parametrize("expr, verdict, bounded", [
    ("tanh(C)", "meek", True),           # tanh' = 1 - tanh² would cancel to 0 at large C
    ("atan(C)", "meek", True),
    ("erf(log(C))", "meek", True),
    ("1 - exp(-exp(C))", "meek", True),
    ("-exp(-exp(C))", "meek", True),      # bounded by 0, its values below e^(-2^1000) at the end
    ("exp(-exp(C))", "not-normal", None),
    ("exp(C)*exp(exp(C))", "mighty-divergent", False),
])
def test_saturating_and_tower_forms_without_sympy_limits(expr, verdict, bounded):
    v = classify_expression(expr, symbolic=False)
    assert v.verdict == verdict and v.bounded is bounded, v


def test_sign_of_g_needs_more_digits_than_floats():
    # g of log(C)/(1+log(C)) as sympy differentiates it: x/(1+x) - x²/(1+x)² = x/(1+x)², x = ln C
    expr, C = parse_expression("log(C)/(1+log(C))")
    g = expressions._compile(sympy.diff(expr, C) * C * sympy.log(C), C)
    assert expressions._at(g, 1e250, 15) <= 0  # the two terms agree to 250 digits
    kind, value, _ = expressions._settled(g, 1e250, 0, len(expressions._DIGITS) - 1)
    assert kind == "value" and float(value) == pytest.approx(1e-250, rel=1e-6)


@pytest.mark.parametrize("text", [
    "sqrt(-1)*C",
    "C + sqrt(-1)",
    "log(-C)",
    "(-1)**C",
    "(-8)**(1/3)*C",
    "(-C)**0.5",
    # sin(ln ln C) built from complex exponentials: an oscillating g with no limit
    "log(log(C)) + 0.5*(exp(sqrt(-1)*log(log(C))) - exp(-sqrt(-1)*log(log(C))))/(2*sqrt(-1))",
])
def test_complex_values_refused(text):
    with pytest.raises(ExpressionError, match="not real.*Fix: "):
        parse_expression(text)


@pytest.mark.parametrize("text", ["1/0*C", "C + log(0)"])
def test_division_by_zero_refused(text):
    with pytest.raises(ExpressionError, match="divides by zero.*Fix: "):
        parse_expression(text)


def test_oscillating_g_has_no_limit():
    # g = 1 + cos(3u)/2 with u = ln ln C: F increases, g swings between 0.5 and 1.5 for ever. The parser cannot
    # build this (sin is not allowed, complex values are refused), so the classifier gets the sympy form.
    C = sympy.Symbol("C", positive=True)
    u = sympy.log(sympy.log(C))
    for symbolic in (True, False):
        v = expressions._classify("u + sin(3u)/6", u + sympy.sin(3 * u) / 6, C, DEFAULT_A, DEFAULT_B, 5.0, symbolic)
        assert v.normal and v.verdict == "indeterminate", v
        assert v.g_limit is None and v.gap_limit is None and "g has no limit" in v.evidence
    # a swing that dies out has a limit: g -> 1, a constant gap
    v = expressions._classify("u + cos(3u)/(6u)", u + sympy.cos(3 * u) / (6 * u), C, DEFAULT_A, DEFAULT_B, 5.0, False)
    assert v.verdict == "mighty-constant-gap" and v.g_limit == pytest.approx(1.0, abs=0.01)


def test_sympy_stops_at_the_timeout():
    # expanding (1+C)**99999 in g would keep sympy busy for minutes: it runs in a child process that is killed
    v = classify_expression("(1+C)**100000 + exp(C)", timeout_s=0.5)
    assert v.verdict == "mighty-divergent" and v.method == "numeric"
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("text", ["C*sqrt(-1)", "1/0*C", "5 +* C"])
def test_cli_refusal_is_one_line(text):
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "classify", "--expr", text],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "Fix:" in lines[0] and "Traceback" not in lines[0]
