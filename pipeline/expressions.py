"""Meek or mighty for any closed-form metric F(C): sympy limits first, the numeric tail test of
meek-math §10 when they do not resolve (`scalegap classify --expr`)."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.schema import ScalegapError
from pipeline.taxonomy import DEFAULT_A, DEFAULT_B, gap_limit_constant

ALLOWED_FUNCTIONS = ("log", "ln", "exp", "sqrt", "atan", "tanh", "erf")
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z_0-9]*)|(\*\*|[-+*/^(),]))")


class ExpressionError(ScalegapError):
    pass


@dataclass
class ExprVerdict:
    expression: str
    normal: bool
    normal_from_C: float | None        # the tail on which F increases starts here (None if beyond 1e300)
    normal_from_log10_C: float | None
    bounded: bool | None
    sup: float | None
    g_limit: float | None
    gap_limit: float | None
    verdict: str          # meek | mighty-constant-gap | mighty-divergent | not-normal
    method: str           # symbolic | numeric
    evidence: str

    def as_dict(self) -> dict:
        return asdict(self)


def parse_expression(text: str):
    """Whitelisted tokens only (C, numbers, + - * / ** ^ ( ), log/ln/exp/sqrt/atan/tanh/erf); the
    validated string is then built by sympy's parser with no builtins available."""
    import sympy

    if not text or not text.strip():
        raise ExpressionError("empty expression. Fix: give a formula in C, e.g. 'log(log(C))'")
    if len(text) > 500:
        raise ExpressionError("expression longer than 500 characters. Fix: shorten it")
    pos, names = 0, set()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            bad = text[pos:].strip()[:1] or text[pos]
            raise ExpressionError(f"character {bad!r} at position {pos} is not allowed. Fix: use only C, numbers, "
                                  f"+ - * / ** ( ) and {', '.join(ALLOWED_FUNCTIONS)}")
        name = match.group(2)
        if name is not None:
            if name != "C" and name not in ALLOWED_FUNCTIONS:
                raise ExpressionError(f"name {name!r} is not allowed. Fix: the only variable is C; functions: "
                                      f"{', '.join(ALLOWED_FUNCTIONS)}")
            names.add(name)
        if match.group(3) == ",":
            raise ExpressionError("',' is not allowed (log takes one argument). Fix: use log(x)/log(base)")
        pos = match.end()
    if text.count("(") != text.count(")"):
        raise ExpressionError("unbalanced parentheses. Fix: close every '('")
    if "C" not in names:
        raise ExpressionError("the expression does not involve C. Fix: write the metric as a function of compute C")
    C = sympy.Symbol("C", positive=True)
    local = {"C": C, "log": sympy.log, "ln": sympy.log, "exp": sympy.exp, "sqrt": sympy.sqrt,
             "atan": sympy.atan, "tanh": sympy.tanh, "erf": sympy.erf}
    from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations

    names_only = {"Integer": sympy.Integer, "Float": sympy.Float, "Rational": sympy.Rational, "Symbol": sympy.Symbol}
    transformations = standard_transformations + (convert_xor,)
    try:
        # unevaluated first: constants such as 9**9**9**9 would take sympy forever to evaluate
        unevaluated = {**names_only, "Add": sympy.Add, "Mul": sympy.Mul, "Pow": sympy.Pow}
        _check_constants(parse_expr(text, local_dict=local, global_dict=unevaluated, transformations=transformations,
                                    evaluate=False))
        expr = parse_expr(text, local_dict=local, global_dict=names_only, transformations=transformations,
                          evaluate=True)
    except ExpressionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's syntax
        raise ExpressionError(f"cannot parse {text!r} ({type(exc).__name__}). Fix: check the syntax") from None
    return expr, C


def _check_constants(node) -> float | None:
    """log10 of the magnitude of a constant subexpression (None if it involves C); refuses constants beyond 1e300."""
    import sympy

    if node.is_Number:
        value = abs(float(node))
        return math.log10(value) if value > 0 else -math.inf
    if isinstance(node, sympy.Symbol):
        return None
    if node.free_symbols:
        for arg in node.args:
            _check_constants(arg)
        return None
    sizes = [_check_constants(arg) for arg in node.args]
    if isinstance(node, sympy.Pow) and len(sizes) == 2 and None not in sizes:
        base, exponent = sizes
        exp_value = 10 ** min(exponent, 300.0) if math.isfinite(exponent) else 0.0
        size = base * exp_value if math.isfinite(base) else 0.0
        if size > 300:
            raise ExpressionError(f"the constant {node} is larger than 1e300. Fix: use a smaller number "
                                  "(only the shape of F in C matters for the verdict)")
        return size
    finite = [v for v in sizes if v is not None and math.isfinite(v)]
    return max(finite) if finite else None


def _with_timeout(fn, seconds: float):
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - sympy may raise anything on hard limits
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    return box.get("value") if "value" in box else None


def _as_float(value) -> float | None:
    import sympy

    if value is None or value.has(sympy.nan, sympy.zoo) or isinstance(value, sympy.AccumBounds):
        return None
    if value == sympy.oo:
        return math.inf
    if value == -sympy.oo:
        return -math.inf
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _numeric(fn, values: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = np.asarray(fn(values), dtype=complex) * np.ones_like(values)
    real = out.real.copy()
    real[np.abs(out.imag) > 1e-12 * np.maximum(np.abs(out.real), 1.0)] = np.nan
    return real


def classify_expression(text: str, a: float = DEFAULT_A, b: float = DEFAULT_B, timeout_s: float = 5.0,
                        symbolic: bool = True) -> ExprVerdict:
    """Normality, boundedness and meekness of a closed-form metric F(C); sympy limits first (each capped
    at `timeout_s`), the numeric tail test of meek-math §10 when they do not resolve (or symbolic=False)."""
    import sympy

    if not (1 < a < b):
        raise ExpressionError(f"growth factors must satisfy 1 < a < b (got a = {a}, b = {b}). "
                              "Fix: the frontier must grow faster than the meek actor")
    expr, C = parse_expression(text)
    u = sympy.Symbol("u", real=True)
    # F as a function of u = ln ln C keeps C = e^(e^u) out of floating point; ln g (expanded) keeps
    # double exponentials such as exp(-C^0.1) from underflowing to 0·inf.
    # no simplify: it rebuilds exp(exp(u)) terms that overflow; sympy already reduces log(exp(.))
    f_u = expr.subs(C, sympy.exp(sympy.exp(u)))
    g_u = sympy.diff(f_u, u)
    ln_g_u = _with_timeout(lambda: sympy.expand_log(sympy.log(g_u), force=True), timeout_s) or sympy.log(g_u)
    modules = [{"erf": _np_erf}, "numpy"]
    f_num = sympy.lambdify(u, f_u, modules)
    g_num = sympy.lambdify(u, g_u, modules)
    ln_g_num = sympy.lambdify(u, ln_g_u, modules)

    grid = np.linspace(math.log(10.0), math.log(1e300), 600)  # u = ln x, x = ln C in [10, 1e300] (§10)
    g_vals, ln_g = _numeric(g_num, grid), _numeric(ln_g_num, grid)
    # where the closed-form g is not computable in floats, central differences of F in ln x (§10)
    h = 1e-4
    with np.errstate(all="ignore"):
        g_cd = (_numeric(f_num, grid + h) - _numeric(f_num, grid - h)) / (2 * h)
    g_vals = np.where(np.isfinite(g_vals), g_vals, g_cd)
    # a point is on an increasing stretch when g >= 0, or when g over/underflows but ln g is real
    increasing = np.where(np.isfinite(g_vals), g_vals >= 0, ~np.isnan(ln_g) & (ln_g != np.inf))
    # The sign of g in arbitrary precision wins: floats turn exp(-C) into 0 (and so "not decreasing") and
    # exp(C) into inf. Past the last point mpmath can represent, the sign it saw last carries on.
    with np.errstate(all="ignore"):
        ln_g_c = np.asarray(ln_g_num(grid + 0j), dtype=complex) * np.ones_like(grid)
    ln_abs_g = np.real(ln_g_c)
    # ln g of a huge g: +inf in floats, with imaginary part pi when g < 0 (the sign survives the overflow)
    huge = (ln_abs_g == np.inf) & np.isfinite(np.imag(ln_g_c))
    increasing = np.where(huge, np.abs(np.remainder(np.imag(ln_g_c), 2 * np.pi) - np.pi) > 1.0, increasing)
    sign = _mp_signs(g_u, u, grid, np.isfinite(ln_abs_g), timeout_s)
    if np.isfinite(sign).any():
        increasing = np.where(np.isfinite(sign), sign >= 0, increasing)
        last = np.flatnonzero(np.isfinite(sign))[-1]
        increasing[last + 1:] = sign[last] >= 0
    bad = np.flatnonzero(~increasing)
    start = int(bad[-1] + 1) if len(bad) else 0
    normal = start < len(grid) - 10
    normal_from = float(math.exp(grid[start]) / math.log(10)) if normal else None  # log10 C = e^u / ln 10
    if not normal:
        return ExprVerdict(text, False, None, None, None, None, None, None, "not-normal", "numeric",
                           "the metric does not increase with compute on the tail (dF/d ln ln C < 0 or undefined "
                           "for ln C up to 1e300)")

    sup = g_sym = None
    if symbolic:
        sup = _as_float(_with_timeout(lambda: sympy.limit(expr, C, sympy.oo), timeout_s))
        g_sym = _as_float(_with_timeout(lambda: sympy.limit(sympy.diff(expr, C) * C * sympy.log(C), C, sympy.oo),
                                        timeout_s))

    # Numeric tail test (meek-math §10): slope of ln g against ln ln x over the last decades.
    lg = np.where(np.isnan(ln_g), np.log(np.where(g_vals > 0, g_vals, np.nan)), ln_g)[start:]
    us = grid[start:]
    keep = np.isfinite(lg)
    tail_u, tail_lg = us[keep][-200:], lg[keep][-200:]
    with np.errstate(over="ignore"):
        g_end = float(np.exp(lg[-1])) if not np.isnan(lg[-1]) else math.nan
    if g_end == math.inf or (len(lg) and np.isnan(lg[-1]) and np.isinf(_numeric(f_num, grid[-1:])[0])):
        slope = math.inf   # §10: g or F overflows on the tail -> divergent
    elif lg[-1] == -np.inf or len(tail_u) < 10:
        slope = -math.inf
    else:
        slope = float(np.polyfit(np.log(tail_u), tail_lg, 1)[0])
    if slope < -0.1 or g_end < 1e-12:
        numeric_g, numeric_verdict = 0.0, "meek"
    elif slope > 0.1:
        numeric_g, numeric_verdict = math.inf, "mighty-divergent"
    else:
        numeric_g, numeric_verdict = g_end, "mighty-constant-gap"

    # Direct gap at large t, as evidence (Def 2.2 with x0 = ln C0 = 10): exponential growth a^t, b^t
    # (Thm 2.5) and power-law growth t^a, t^b (Thm 2.6: x = ln C grows like a·ln t).
    def f_at_x(x: float) -> float:
        return float(_numeric(f_num, np.array([math.log(x)]))[0])

    gaps_exp = {t: f_at_x(10 + t * math.log(b)) - f_at_x(10 + t * math.log(a)) for t in (1e2, 1e20, 1e200)}
    gaps_pow = {t: f_at_x(10 + b * math.log(t)) - f_at_x(10 + a * math.log(t)) for t in (1e2, 1e20, 1e200)}

    if g_sym is not None:
        method, g_limit = "symbolic", g_sym
    else:
        method, g_limit = "numeric", numeric_g
    if sup is None:
        far, farther = f_at_x(1e200), f_at_x(1e300)
        bounded = numeric_verdict == "meek" and math.isfinite(farther) and abs(farther - far) < 1e-6
        sup_value = farther if bounded else math.inf
        method = "numeric"
    else:
        bounded, sup_value = math.isfinite(sup), sup
    if bounded:
        verdict, g_limit = "meek", 0.0
    elif g_limit == 0:
        verdict = "meek"
    elif math.isinf(g_limit):
        verdict = "mighty-divergent"
    else:
        verdict = "mighty-constant-gap"
    gap_limit = gap_limit_constant(g_limit, a, b) if g_limit is not None else None
    evidence = (f"lim f = {sup if sup is not None else 'unresolved symbolically'}; "
                f"lim f'(C)·C·ln C = {g_sym if g_sym is not None else 'unresolved symbolically'}; numeric slope of "
                f"ln g vs ln ln ln C = {slope:.3g} (g at ln C = 1e300: {g_end:.3g}, numeric verdict {numeric_verdict}); "
                "direct gap, exponential growth, t = 1e2, 1e20, 1e200: "
                + ", ".join(f"{v:.3g}" for v in gaps_exp.values())
                + "; power-law growth: " + ", ".join(f"{v:.3g}" for v in gaps_pow.values()))
    normal_from_C = 10 ** normal_from if normal_from is not None and normal_from < 300 else None
    return ExprVerdict(text, True, normal_from_C, normal_from, bool(bounded), sup_value, g_limit, gap_limit, verdict,
                       method, evidence)


def _mp_signs(g_u, u, grid: np.ndarray, safe: np.ndarray, timeout_s: float) -> np.ndarray:
    """Sign of g at each grid point in mpmath (+1, -1, 0; nan where not evaluated).

    Only where ln|g| is finite as a float (`safe`): beyond that, exp of the exponent needs millions of bits
    and one evaluation can run for hours."""
    import time

    import mpmath
    import sympy

    g_mp = sympy.lambdify(u, g_u, "mpmath")
    out = np.full(len(grid), np.nan)  # filled in place: points done before the timeout still count
    deadline = time.monotonic() + timeout_s

    def signs():
        for i, point in enumerate(grid):
            if not safe[i]:
                continue
            if time.monotonic() > deadline:
                return
            try:
                value = g_mp(mpmath.mpf(float(point)))
                if abs(mpmath.im(value)) <= 1e-12 * max(abs(mpmath.re(value)), 1):
                    out[i] = float(mpmath.sign(mpmath.re(value)))
            except (OverflowError, ValueError, ZeroDivisionError, TypeError):
                continue

    _with_timeout(signs, timeout_s)
    return out.copy()


def _np_erf(x):
    from scipy.special import erf

    return erf(x)


