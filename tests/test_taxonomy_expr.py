"""Closed-form metrics: the boundary cases of meek-math §5 and the expression whitelist."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
