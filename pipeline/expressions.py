"""Meek or mighty for any closed-form metric F(C) (`scalegap classify --expr`).

The numeric tail test of meek-math §10 runs on g = F'(C)·C·ln C for ln C from 10 to 1e300, in mpmath:
a value too far from 1 for an mpf exponent (exp(exp(C)) there) is carried through its logarithm, and
the digits are raised until the sign of g is stable. sympy brings g to one fraction first (so
sqrt(C)/(1+sqrt(C)) does not differentiate into a difference of nearly equal terms) and takes the
limits, which are exact when they resolve; it runs in a child process killed at the timeout.
"""

from __future__ import annotations

import math
import multiprocessing
import re
import time
from dataclasses import asdict, dataclass
from functools import reduce

import mpmath
import numpy as np

from pipeline.errors import ScalegapError
from pipeline.taxonomy import DEFAULT_A, DEFAULT_B, gap_limit_constant

ALLOWED_FUNCTIONS = ("log", "ln", "exp", "sqrt", "atan", "tanh", "erf")
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z_0-9]*)|(\*\*|[-+*/^(),]))")

# u = ln ln C on ln C in [10, 1e300] (§10), 0.8 points per decade of ln C: each point is an mpmath
# evaluation at two or more precisions
_GRID = np.linspace(math.log(10.0), math.log(1e300), 240)
_DIGITS = (20, 40, 80, 160, 320, 640, 1280)  # enough for the ~300-digit cancellation in log(C)/(1+log(C))' at the end
_LOG_LIMIT = mpmath.mpf(2) ** 1000  # exp of more would need an mpf exponent of over 2^1000 bits
_NUMERIC_BUDGET_S = 10.0  # grid points the digit escalation has not reached by then stay unresolved


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
    verdict: str          # meek | mighty-constant-gap | mighty-divergent | not-normal | indeterminate (g has no limit)
    method: str           # symbolic | numeric
    evidence: str

    def as_dict(self) -> dict:
        return asdict(self)


def parse_expression(text: str):
    """Whitelisted tokens only (C, numbers, + - * / ** ^ ( ), log/ln/exp/sqrt/atan/tanh/erf); the
    validated string is then built by sympy's parser with no builtins available. Values that are not
    real (sqrt(-1), log(-C), (-1)**C) and 1/0 are refused."""
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
        _check_real(expr)
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


def _check_real(expr) -> None:
    """A metric is real: complex parts (sqrt(-1) = I, (-1)**C = e^(iπC)) could build an oscillating g."""
    import sympy

    if expr.has(sympy.zoo, sympy.nan, sympy.oo):
        raise ExpressionError("the expression divides by zero or takes log(0). Fix: keep denominators and log "
                              "arguments non-zero, e.g. 1/(1+C) rather than 1/0")
    for node in sympy.preorder_traversal(expr):
        complex_part = (node == sympy.I
                        or (isinstance(node, sympy.Pow) and node.base.is_negative and not node.exp.is_integer)
                        or (isinstance(node, sympy.log) and node.args[0].is_negative))
        if complex_part:
            shown = "sqrt(-1)" if node == sympy.I else node
            raise ExpressionError(f"the expression is not real ({shown} is complex: a square root, fractional or "
                                  "symbolic power, or log of a negative number). Fix: write a real metric, "
                                  "e.g. sqrt(C) rather than sqrt(-C) or sqrt(-1)")


# Extended-range arithmetic: an mpf while |ln v| <= 2^1000, else a _Huge carried through its logarithm.

class _Undefined(ArithmeticError):
    """F or g is not real here: log or fractional power of a negative value, 0 to a negative power."""


class _Huge:
    """sign · e^log_abs with |log_abs| > 2^1000 (an mpf, or itself a _Huge for exp towers)."""

    __slots__ = ("sign", "log_abs")

    def __init__(self, sign: int, log_abs):
        self.sign, self.log_abs = sign, log_abs

    def is_large(self) -> bool:
        return _sign(self.log_abs) > 0


def _sign(v) -> int:
    return v.sign if isinstance(v, _Huge) else int(mpmath.sign(v))


def _log_abs(v):
    if isinstance(v, _Huge):
        return v.log_abs
    if not v:
        raise _Undefined("log of 0")
    return mpmath.log(abs(v))


def _from_log(sign: int, log_abs):
    if isinstance(log_abs, _Huge):
        # e^(±tiny) is 1 at any precision used here
        return _Huge(sign, log_abs) if log_abs.is_large() else mpmath.mpf(sign)
    if abs(log_abs) <= _LOG_LIMIT:
        return sign * mpmath.exp(log_abs)
    return _Huge(sign, log_abs)


def _neg(v):
    return _Huge(-v.sign, v.log_abs) if isinstance(v, _Huge) else -v


def _add(a, b):
    if not isinstance(a, _Huge) and not isinstance(b, _Huge):
        return a + b
    if _sign(b) == 0:
        return a
    if _sign(a) == 0:
        return b
    log_a, log_b = _log_abs(a), _log_abs(b)
    d = _add(log_b, _neg(log_a))  # ln|b/a|
    if _sign(d) > 0:
        a, b, log_a, d = b, a, log_b, _neg(d)
    if isinstance(d, _Huge):
        if d.is_large():
            return a  # |b| < |a|·e^(-2^1000)
        ratio = mpmath.mpf(1)
    elif d < -(mpmath.mp.prec + 8) * mpmath.ln2:
        return a  # b is below a's last digit
    else:
        ratio = mpmath.exp(d)
    if _sign(a) == _sign(b):
        return _from_log(_sign(a), _add(log_a, mpmath.log1p(ratio)))
    if ratio == 1:
        return mpmath.mpf(0)
    return _from_log(_sign(a), _add(log_a, mpmath.log1p(-ratio)))


def _mul(a, b):
    if not isinstance(a, _Huge) and not isinstance(b, _Huge):
        return a * b
    sign = _sign(a) * _sign(b)
    return _from_log(sign, _add(_log_abs(a), _log_abs(b))) if sign else mpmath.mpf(0)


def _exp(v):
    return _from_log(1, v)


def _log(v):
    if _sign(v) <= 0:
        raise _Undefined("log of a value <= 0")
    return _log_abs(v)


def _pow(base, exponent, integer: int | None):
    if integer is not None:
        if not isinstance(base, _Huge):
            if base == 0 and integer < 0:
                raise _Undefined("0 to a negative power")
            return base ** integer
        return _from_log(base.sign if integer % 2 else 1, _mul(mpmath.mpf(integer), base.log_abs))
    sign = _sign(base)
    if sign < 0:
        raise _Undefined("fractional power of a negative value")
    if sign == 0:
        if _sign(exponent) <= 0:
            raise _Undefined("0 to a power <= 0")
        return mpmath.mpf(0)
    return _exp(_mul(exponent, _log(base)))


def _atan(v):
    if isinstance(v, _Huge):
        return v.sign * mpmath.pi / 2 if v.is_large() else v
    return mpmath.atan(v)


def _erf(v):
    if isinstance(v, _Huge):
        return mpmath.mpf(v.sign) if v.is_large() else _mul(v, 2 / mpmath.sqrt(mpmath.pi))
    # erfc(v) < e^(-v²) is below the last digit: mpmath would otherwise compute e^(-v²) for v = C
    if v * v > (mpmath.mp.prec + 8) * mpmath.ln2:
        return mpmath.mpf(_sign(v))
    return mpmath.erf(v)


def _abs(v):
    return _Huge(1, v.log_abs) if isinstance(v, _Huge) else abs(v)


def _compile(expr, C):
    """A function of C (an mpf) evaluating expr at mpmath's current precision in the extended range;
    raises _Undefined where the value is not real."""
    import sympy

    if expr == C:
        return lambda c: c
    if expr.is_Rational:
        p, q = int(expr.p), int(expr.q)
        return lambda c: mpmath.mpf(p) / q
    if expr.is_Float:
        bits = expr._mpf_
        return lambda c: mpmath.mpf(bits)
    if expr.is_NumberSymbol:
        return lambda c: mpmath.mpf(expr.evalf(mpmath.mp.dps + 5)._mpf_)
    args = [_compile(arg, C) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        return lambda c: reduce(_add, (f(c) for f in args))
    if isinstance(expr, sympy.Mul):
        return lambda c: reduce(_mul, (f(c) for f in args))
    if isinstance(expr, sympy.Pow):
        base, exponent = args
        integer = int(expr.exp) if expr.exp.is_Integer else None
        return lambda c: _pow(base(c), exponent(c), integer)
    unary = {sympy.exp: _exp, sympy.log: _log, sympy.atan: _atan, sympy.erf: _erf, sympy.Abs: _abs,
             sympy.sign: lambda v: mpmath.mpf(_sign(v))}
    if type(expr) in unary and len(args) == 1:
        fn, (arg,) = unary[type(expr)], args
        return lambda c: fn(arg(c))
    # any other function mpmath knows (sympy derivatives may bring new ones): ordinary arguments only
    fn = getattr(mpmath, type(expr).__name__.lower(), None)
    if fn is None:
        raise ExpressionError(f"cannot evaluate {type(expr).__name__} numerically. Fix: use only "
                              f"{', '.join(ALLOWED_FUNCTIONS)}")

    def generic(c):
        values = [f(c) for f in args]
        if any(isinstance(v, _Huge) or abs(v) > 2 ** 64 for v in values):
            raise _Undefined(f"{type(expr).__name__} of a huge argument")
        return fn(*values)

    return generic


def _at(fn, log_c: float, dps: int):
    """fn at C = e^log_c with dps digits; None where not real."""
    with mpmath.workdps(dps):
        try:
            return fn(mpmath.exp(mpmath.mpf(log_c)))
        except (ArithmeticError, ValueError):
            return None


def _agree(a, b, dps: int) -> bool:
    """Same non-zero sign and the same magnitude within the rounding of dps digits (an exact 0 is what a
    total cancellation gives, so it never settles a sign). A logarithm too large to show rounding noise
    (exp(C) at C = e^178: 20 digits of C leave its mantissa arbitrary) is compared one logarithm deeper."""
    if _sign(a) != _sign(b) or _sign(a) == 0:
        return False
    log_a, log_b = _log_abs(a), _log_abs(b)
    if isinstance(log_a, _Huge) or isinstance(log_b, _Huge) or abs(log_a) >= mpmath.mpf(10) ** (dps // 2):
        return _agree(log_a, log_b, dps)
    return abs(log_a - log_b) <= 1e-6 + abs(log_a) * mpmath.mpf(10) ** (5 - dps)


def _settled(fn, log_c: float, first: int, last: int) -> tuple[str, object, int]:
    """g at ln C = log_c with digits _DIGITS[first], [first + 1], ... up to [last]: ("value", g, level) once
    two successive precisions agree, ("undefined", None, level) if both say not real, else
    ("unresolved", None, last)."""
    previous = _at(fn, log_c, _DIGITS[first])
    for level in range(first + 1, last + 1):
        value = _at(fn, log_c, _DIGITS[level])
        if previous is None and value is None:
            return "undefined", None, level
        if previous is not None and value is not None:
            with mpmath.workdps(_DIGITS[level]):
                if _agree(previous, value, _DIGITS[level - 1]):
                    return "value", value, level
        previous = value
    return "unresolved", None, last


def _to_float(v) -> float:
    if isinstance(v, _Huge):
        return v.sign * (math.inf if v.is_large() else 0.0)
    try:
        return float(v)
    except OverflowError:
        return _sign(v) * math.inf


def _float_log_abs(v) -> float:
    """ln|v| as a float: ±inf beyond float range (an exp tower), -inf for 0."""
    return -math.inf if _sign(v) == 0 else _to_float(_log_abs(v))


# sympy in a child process: killed at the timeout, so no limit keeps running after its answer is dropped.

def _as_float(value) -> float | None:
    import sympy

    if value is None or value.has(sympy.nan, sympy.zoo, sympy.I) or isinstance(value, sympy.AccumBounds):
        return None
    if value == sympy.oo:
        return math.inf
    if value == -sympy.oo:
        return -math.inf
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sympy_child(conn, expr, C, g, limits: bool) -> None:
    import sympy

    def send(key, compute):
        try:
            conn.send((key, compute()))
        except Exception:  # noqa: BLE001 - sympy may raise anything; the parent then goes without this result
            conn.send((key, None))

    def one_fraction():
        numerator, denominator = sympy.fraction(sympy.together(g))
        return sympy.expand(numerator) / denominator

    send("g", one_fraction)
    if limits:
        send("sup", lambda: _as_float(sympy.limit(expr, C, sympy.oo)))
        send("g_limit", lambda: _as_float(sympy.limit(g, C, sympy.oo)))
    conn.close()


class _Symbolic:
    """sympy's one-fraction g, then lim F and lim g, computed in a child process while the parent works."""

    def __init__(self, expr, C, g, limits: bool, timeout_s: float):
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        self.deadline = time.monotonic() + timeout_s
        self.results: dict = {}
        self._conn, child_conn = context.Pipe(duplex=False)
        self._process = context.Process(target=_sympy_child, args=(child_conn, expr, C, g, limits), daemon=True)
        self._process.start()
        child_conn.close()

    def get(self, key: str):
        """The result for key, waiting at most until the deadline; None if sympy gave up or ran out of time."""
        try:
            while key not in self.results and self._conn.poll(max(0.0, self.deadline - time.monotonic())):
                name, value = self._conn.recv()
                self.results[name] = value
        except (EOFError, OSError):
            pass  # the child ended without sending everything
        return self.results.get(key)

    def stop(self) -> None:
        self._process.kill()
        self._process.join()
        self._conn.close()


def classify_expression(text: str, a: float = DEFAULT_A, b: float = DEFAULT_B, timeout_s: float = 5.0,
                        symbolic: bool = True) -> ExprVerdict:
    """Normality, boundedness and meekness of a closed-form metric F(C).

    F is normal when g = F'(C)·C·ln C is >= 0 on the tail ln C -> 1e300 (signs in mpmath, digits raised
    until stable; a constant F is not normal). sympy limits (each within `timeout_s`, in a child
    process; skipped with symbolic=False) give lim F and lim g exactly when they resolve; otherwise the
    numeric tail test of meek-math §10 decides. When that test sees g oscillate on the tail (turning
    back and forth, no limit) and sympy found no limit, the verdict is "indeterminate: g has no limit"
    (Thm 2.5 needs g eventually monotone) unless F is bounded (then meek, Thm 2.4). Parsed formulas
    are real exp-log functions, whose g is eventually monotone, so this is a guard."""
    if not (1 < a < b):
        raise ExpressionError(f"growth factors must satisfy 1 < a < b (got a = {a}, b = {b}). "
                              "Fix: the frontier must grow faster than the meek actor")
    expr, C = parse_expression(text)
    return _classify(text, expr, C, a, b, timeout_s, symbolic)


def _classify(text: str, expr, C, a: float, b: float, timeout_s: float, symbolic: bool) -> ExprVerdict:
    import sympy

    if not expr.has(C):
        return _not_normal(text, f"F = {expr} is constant: it does not increase with compute", "symbolic")
    # tanh' = 1 - tanh² cancels to 0 in any precision at large C; the exp form differentiates without cancelling
    expr = expr.replace(sympy.tanh, lambda z: 1 - 2 / (sympy.exp(2 * z) + 1))
    g = sympy.diff(expr, C) * C * sympy.log(C)
    if g == 0:
        return _not_normal(text, f"F = {text} is constant: it does not increase with compute", "symbolic")
    sym = _Symbolic(expr, C, g, symbolic, timeout_s)
    try:
        g_fraction = sym.get("g")
        if g_fraction == 0:
            return _not_normal(text, f"F = {text} is constant: it does not increase with compute", "symbolic")
        return _classify_tail(text, _compile(expr, C), _compile(g if g_fraction is None else g_fraction, C),
                              sym, a, b, time.monotonic() + _NUMERIC_BUDGET_S)
    finally:
        sym.stop()


def _not_normal(text: str, why: str, method: str) -> ExprVerdict:
    return ExprVerdict(text, False, None, None, None, None, None, None, "not-normal", method, why)


def _classify_tail(text, f_fn, g_fn, sym: _Symbolic, a: float, b: float, deadline: float) -> ExprVerdict:
    status, g_values = [], []
    level, misses, top = 0, 0, len(_DIGITS) - 1
    for u in _GRID:
        if time.monotonic() > deadline:
            kind, value = "unresolved", None
        else:
            # cancellation deepens with C: start near the digits the last settled point needed, and only
            # compare the first two precisions after three points in a row that the most digits did not settle
            first, last = (max(0, level - 1), top) if misses < 3 else (0, 1)
            kind, value, needed = _settled(g_fn, math.exp(u), first, last)
            misses = misses + 1 if kind == "unresolved" else 0
            level = level if kind == "unresolved" else needed
        status.append(kind if kind != "value" else ("+" if _sign(value) > 0 else "-"))
        g_values.append(value)
    bad = [i for i, s in enumerate(status) if s in ("-", "undefined")]
    start = bad[-1] + 1 if bad else 0
    settled = sum(s == "+" for s in status[start:])
    if start >= len(_GRID) - 10 or settled == 0:
        last = status[bad[-1]] if bad else "unresolved"
        why = {"-": "dF/d ln ln C < 0", "undefined": "F is not real (or not computable)",
               "unresolved": "the sign of dF/d ln ln C is not resolved at 1280 digits"}[last]
        where = f" at ln C = {math.exp(_GRID[bad[-1]]):.3g}" if bad else " on the tail"
        return _not_normal(text, f"the metric does not increase with compute on the tail: {why}{where} "
                                 f"(ln C up to 1e300)", "numeric")
    normal_from = float(math.exp(_GRID[start]) / math.log(10))  # log10 C = ln C / ln 10

    # Numeric tail test (§10): slope of ln g against ln ln ln C over the last third of the grid
    tail = [i for i in range(start, len(_GRID)) if status[i] == "+"]
    ln_g = np.array([_float_log_abs(g_values[i]) for i in tail])
    window = [k for k, i in enumerate(tail) if i >= len(_GRID) * 2 // 3] or list(range(len(tail)))
    g_end = math.exp(ln_g[-1]) if ln_g[-1] < 709 else math.inf
    finite = [k for k in window if np.isfinite(ln_g[k])]
    if ln_g[-1] == math.inf:
        slope = math.inf   # §10: g beyond float range on the tail -> divergent
    elif ln_g[-1] == -math.inf or len(finite) < 10:
        slope = -math.inf if g_end < 1e-12 else 0.0
    else:
        slope = float(np.polyfit(np.log(_GRID[[tail[k] for k in finite]]), ln_g[finite], 1)[0])
    if slope < -0.1 or g_end < 1e-12:
        numeric_g, numeric_verdict = 0.0, "meek"
    elif slope > 0.1:
        numeric_g, numeric_verdict = math.inf, "mighty-divergent"
    else:
        numeric_g, numeric_verdict = g_end, "mighty-constant-gap"
    # g with no limit: it keeps turning on the last third and swings by more than 2% there
    swings = ln_g[finite] if finite else np.zeros(1)
    moves = np.diff(swings)
    moves = np.sign(moves[np.abs(moves) > 1e-4])
    turns = int(np.sum(moves[1:] != moves[:-1]))
    no_limit = numeric_verdict == "mighty-constant-gap" and turns >= 3 and np.ptp(swings) > 0.02

    # Direct gap at large t, as evidence (Def 2.2 with x0 = ln C0 = 10): exponential growth a^t, b^t
    # (Thm 2.5) and power-law growth t^a, t^b (Thm 2.6: x = ln C grows like a·ln t).
    def f_at(log_c: float):
        return _at(f_fn, log_c, 30)

    def gap(hi: float, lo: float) -> float:
        f_hi, f_lo = f_at(hi), f_at(lo)
        if f_hi is None or f_lo is None:
            return math.nan
        with mpmath.workdps(30):
            return _to_float(_add(f_hi, _neg(f_lo)))

    gaps_exp = [gap(10 + t * math.log(b), 10 + t * math.log(a)) for t in (1e2, 1e20, 1e200)]
    gaps_pow = [gap(10 + b * math.log(t), 10 + a * math.log(t)) for t in (1e2, 1e20, 1e200)]

    sup, g_sym = sym.get("sup"), sym.get("g_limit")
    method, g_limit = ("symbolic", g_sym) if g_sym is not None else ("numeric", numeric_g)
    if sup is None:
        far, farther = f_at(1e200), f_at(1e300)
        bounded = (numeric_verdict == "meek" and far is not None and farther is not None
                   and abs(_to_float(_add(farther, _neg(far)))) < 1e-6 * max(1.0, abs(_to_float(farther))))
        sup_value = _to_float(farther) if bounded else math.inf
        method = "numeric"
    else:
        bounded, sup_value = math.isfinite(sup), sup
    oscillates = g_sym is None and no_limit
    if bounded:
        verdict, g_limit = "meek", 0.0
    elif oscillates:
        verdict, g_limit = "indeterminate", None
    elif g_limit == 0:
        verdict = "meek"
    elif math.isinf(g_limit):
        verdict = "mighty-divergent"
    else:
        verdict = "mighty-constant-gap"
    gap_limit = gap_limit_constant(g_limit, a, b) if g_limit is not None else None
    evidence = ((f"indeterminate: g has no limit (g = dF/d ln ln C turns {turns} times on the last third of the "
                 f"tail, between {math.exp(swings.min()):.3g} and {math.exp(swings.max()):.3g}; Thm 2.5 needs g "
                 "eventually monotone, so no gap limit is stated); " if verdict == "indeterminate" else "")
                + f"lim f = {sup if sup is not None else 'unresolved symbolically'}; "
                f"lim f'(C)·C·ln C = {g_sym if g_sym is not None else 'unresolved symbolically'}; numeric slope of "
                f"ln g vs ln ln ln C = {slope:.3g} (g at ln C = {math.exp(_GRID[tail[-1]]):.3g}: {g_end:.3g}, numeric verdict "
                f"{numeric_verdict}; "
                f"sign of g settled at {settled} of {len(_GRID) - start} tail points); "
                "direct gap, exponential growth, t = 1e2, 1e20, 1e200: " + ", ".join(f"{v:.3g}" for v in gaps_exp)
                + "; power-law growth: " + ", ".join(f"{v:.3g}" for v in gaps_pow))
    normal_from_C = 10 ** normal_from if normal_from < 300 else None
    return ExprVerdict(text, True, normal_from_C, normal_from, bool(bounded), sup_value, g_limit, gap_limit, verdict,
                       method, evidence)
