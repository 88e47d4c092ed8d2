"""SymPy → C: the right-hand side and the dense Jacobian as plain C99 functions.

Shared by the CVODE backend (compiled at run time) and the C export
(:func:`nanopk.to_c`).  States become ``y[i]`` and parameters ``p[j]``; the code follows
the layered form of :mod:`.symbolic`: the assignments as constants ``a_<name>``, each
rate law once (``r<k>``, in the order of the model's fluxes, then its rate rules), and
``dydt`` as signed sums of the rates; what a function computes more than once is
computed once (``x<n>``, see :mod:`.sharing`).  Only non-zero Jacobian entries are written,
column-major (``J[i + j*N] = ∂f_i/∂y_j``), the layout CVODE's dense matrix uses.

For the solver, the right-hand side, the Jacobian (and its split form) and ∂f/∂p are
also printed split (:func:`c_hoisted_function`, :func:`c_rhs_code`): what depends on
parameters only is computed once per solve into ``c[k]``, and powers with a varying base
as ``exp(n·log v + n·log c)`` sharing ``log v``; for the right-hand side on mouse_pbpk
and mouse_tumour this took 15–17 % off the C solve's time, for trajectories equal to
1e-10 (benchmarks/c_speed.py, tests/test_speed_correctness.py).
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from ..errors import ExportError
from .sharing import Products, repeated

__all__ = [
    "c_function_bodies", "c_rhs_body", "c_rhs_code", "c_hoisted_function", "c_jacobian_code", "c_dfdp_code", "c_jacobian_body", "c_jacobian_split_body", "c_observe_body", "c_initial_body", "c_dfdp_body",
    "c_identifier",
]


class _Printer(C99CodePrinter):
    """C99 printer for one function body.

    Names model symbols as the generated code does (``y[i]``, ``p[j]``,
    ``a_<assignment>``, the layered form's ``r<k>``) and writes small integer powers as
    products.  A subexpression in ``shared`` (see :mod:`.sharing`) is computed once, as
    a ``const double x<n>`` emitted (into :attr:`lines`) just before the first
    statement that uses it.
    """

    def __init__(self, names: dict, products: Products, shared: set, indent: str, hoisted: dict | None = None):
        # order="none": terms in SymPy's own (canonical) order; sorting them for
        # display took a fifth of the printing.  strict=False: a function C lacks is
        # collected (_not_supported) so that statement() can name all of them.
        super().__init__({"order": "none", "strict": False})
        # No M_LN10/M_PI macros: -std=c99 does not define them (POSIX does), and ∂/∂p of a
        # log10 rate law brings in 1/log(10); log(10) is C99 and folds to a constant.
        self.math_macros = {}
        # Printing names directly costs nothing; substituting them first (xreplace)
        # rebuilt every expression and took a third of the code generation.
        self._names = names
        self._products = products
        self._shared = dict.fromkeys(shared)
        self._indent = indent
        self._count = 0
        self.lines: list[str] = []
        # Hoisting (c_rhs_code): every subexpression that depends on parameters only is
        # printed as c[k], computed once per solve; ``hoisted`` maps it to that name.
        self._hoisted = hoisted
        self._logs: dict = {}

    def statement(self, target: str, expr) -> None:
        # _print, not doprint: doprint walks each expression again for SymPy's
        # UnevaluatedExpr and line formatting, which C does not need.
        self._not_supported = set()
        text = self._print(expr)  # first: it emits the shared subexpressions it uses
        if self._not_supported:
            names = ", ".join(sorted(map(str, self._not_supported)))
            raise ExportError(f"cannot write {target} as C: {names} has no C99 equivalent; write the rate law with "
                              "exp, log, pow, sqrt, Min/Max or Piecewise, or simulate with backend='reference'")
        self.lines.append(f"{self._indent}{target} = {text};")

    def _print(self, expr, **kwargs):
        if self._hoisted is not None and isinstance(expr, sp.Expr) and self._hoistable(expr):
            name = self._hoisted.get(expr)
            if name is None:
                name = self._hoisted[expr] = f"c[{len(self._hoisted)}]"
            return name
        name = self._shared.get(expr, "") if isinstance(expr, sp.Expr) else ""
        if name is None:  # first use: define it
            self._shared[expr] = ""  # while printed, it is its own text, not its name
            text = super()._print(expr, **kwargs)  # emits the temporaries it uses first
            self._shared[expr] = name = f"x{self._count}"
            self._count += 1
            self.lines.append(f"{self._indent}const double {name} = {text};")
        return name or super()._print(expr, **kwargs)

    # StrPrinter's parenthesize and _print_Add, with the precedence of a product found
    # without negating it: SymPy's precedence(Mul) asks could_extract_minus_sign, which
    # builds -m to compare it with m, a ninth of the profiled first compile at 101
    # aggregation states.  Same precedence, so the same text (_fast_precedence).
    def parenthesize(self, item, level, strict=False):
        p = _fast_precedence(item)
        if p < level or (not strict and p <= level):
            return "(%s)" % self._print(item)
        return self._print(item)

    def _print_Add(self, expr, order=None):
        terms = self._as_ordered_terms(expr, order=order)
        prec = _fast_precedence(expr)
        out = []
        for term in terms:
            t = self._print(term)
            if t.startswith("-") and not term.is_Add:
                sign = "-"
                t = t[1:]
            else:
                sign = "+"
            if _fast_precedence(term) < prec or term.is_Add:
                out.extend([sign, "(%s)" % t])
            else:
                out.extend([sign, t])
        sign = out.pop(0)
        return ("" if sign == "+" else sign) + " ".join(out)

    def _hoistable(self, expr) -> bool:
        """A parameter-only subexpression worth computing once: not a number and not a
        bare parameter (``p[j]`` is already a load)."""
        if expr.is_Number or self._products.varies(expr):
            return False
        return not (expr.is_Symbol and self._names.get(expr, "").startswith("p["))

    def _print_Symbol(self, expr):
        return self._names.get(expr) or super()._print_Symbol(expr)

    _print_Dummy = _print_Symbol  # the rates r<k>

    def _print_Mul(self, expr):
        parts = self._products.parts(expr)
        if parts is not expr.args:  # number · core, or constant · varying
            coefficient = self._products(expr)[0]
            factors = [self.parenthesize(part, PRECEDENCE["Mul"], strict=True) for part in parts]
            if abs(coefficient) != 1:
                factors.insert(0, self._print(abs(coefficient)))
            return ("-" if coefficient < 0 else "") + "*".join(factors)
        # A reciprocal computed once is a factor like any other: a*x3, not a/(V).
        named = [f for f in expr.args if f.is_Pow and f.exp == -1 and f in self._shared]
        if not named:
            return super()._print_Mul(expr)
        rest = expr.func(*[f for f in expr.args if f not in named])
        factors = [] if rest == 1 else [self.parenthesize(rest, PRECEDENCE["Mul"], strict=True)]
        return "*".join(factors + [self._print(f) for f in named])

    def _print_Pow(self, expr):
        base, exp = expr.args
        if exp.is_Integer and 1 < int(exp) <= 4:
            b = self._print(base)
            # Bracket the whole product: it may stand in a denominator (x/R**3).
            return "(" + "*".join([f"({b})"] * int(exp)) + ")"
        if exp == -1:
            return f"1.0/({self._print(base)})"
        if (self._hoisted is not None and not exp.is_Integer and exp not in _ROOTS
                and not self._products.varies(exp)):
            text = self._print_exp_log(base, exp)
            if text is not None:
                return text
        return super()._print_Pow(expr)

    def _print_exp_log(self, base, exp) -> str:
        """``base**exp`` (exp constant, base varying) as ``exp(n·log v + n·log c)``.

        ``base = c·v`` with ``c`` its constant factors: ``n·log c`` is computed once per
        solve and ``log v`` once per call, shared by all powers of ``v`` (the Hill terms
        ``(t/K_i)**n_i`` of a model share ``log t``).  A pow costs about two exp-or-log
        (glibc 2.36: 4 pow 470–550 ns, 1 log + 4 exp 180–270 ns, measured).  Where ``v`` or
        ``c`` is not > 0 (log undefined: pow(0, 0) = 1, pow(-2, 3.0) = -8) the original
        ``pow`` is used, so results differ from pow only by rounding: relative error
        ≤ (3·(|n·log v| + |n·log c|) + 2)·2⁻⁵³, below 1e-13 while those are < 150.
        """
        if base.is_Mul:
            coefficient, _, fixed, moving = self._products(base)
            constant = coefficient * fixed
        else:
            constant, moving = sp.S.One, base
        log_c = exp * sp.log(constant)
        if log_c.has(sp.I) or (constant.is_Number and not constant > 0):
            return None  # a negative constant factor: pow it is
        v = self._print(moving)
        log_v = self._logs.get(moving)
        if log_v is None:
            log_v = self._logs[moving] = f"l{len(self._logs)}"
            self.lines.append(f"{self._indent}const double {log_v} = log({v});")
        n = self.parenthesize(exp, PRECEDENCE["Mul"], strict=True)
        guard = f"{v} > 0"
        argument = f"{n}*{log_v}"
        if constant != 1:
            if not (constant.is_Number and constant > 0):
                guard += f" && {self._print(constant)} > 0"
            argument += f" + {self._print(log_c)}"
        fallback = f"pow({self._print(base)}, {self._print(exp)})"
        return f"({guard} ? exp({argument}) : {fallback})"


def _fast_precedence(item) -> int:
    """SymPy's ``precedence(item)``, for a product without building its negative.

    ``precedence_Mul`` returns Mul's precedence unless an argument is a function of lower
    precedence, or ``m.could_extract_minus_sign()``, which is ``m != -m`` and a negative
    number first.  ``m == -m`` only with ``zoo`` or ``nan`` among the factors (``-m``
    negates the numeric coefficient, or prepends -1): those go to SymPy.
    """
    if type(item) is not sp.Mul or any(a is sp.S.ComplexInfinity or a is sp.S.NaN for a in item.args):
        return precedence(item)
    from sympy.core.function import Function

    if any(hasattr(a, "precedence") and isinstance(a, Function) and a.precedence < PRECEDENCE["Mul"] for a in item.args):
        return PRECEDENCE["Mul"]
    c = item.args[0]
    return PRECEDENCE["Add"] if c.is_Number and c.is_extended_negative else PRECEDENCE["Mul"]


#: The unhoisted ``nanopk_rhs`` is printed beside the hoisted core only while the core has
#: at most this many characters (mouse_tumour_full's: 15 519; 101 aggregation states':
#: 118 000, printed twice and compiled twice for a comparison only the tests make).
PLAIN_MAX_CHARS = 20_000

#: Powers C prints as sqrt/cbrt, cheaper than exp·log.
_ROOTS = (sp.S.Half, -sp.S.Half, sp.Rational(1, 3))


def c_identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _c_names(system) -> dict:
    names = {s: f"y[{i}]" for i, s in enumerate(system.y)}
    names.update({s: f"p[{j}]" for j, s in enumerate(system.p)})
    # The prefix keeps assignments clear of C keywords, <math.h> names (y0, j1, gamma),
    # the rates r<k> and the shared subexpressions x<n>.
    names.update({a: f"a_{c_identifier(a.name)}" for a, _ in system.assignments})
    return names


def _block(system, outputs: list[tuple[str, sp.Expr]], definitions=(), indent: str = "    ") -> str:
    """C statements setting each ``(target, expression)`` of ``outputs``.

    Only what the outputs use is computed: the assignments, then the layered form's
    ``definitions``, each as a ``const double`` in evaluation order, then the outputs;
    what they share is computed once.
    """
    names, statements, varying = _needed_statements(system, outputs, definitions)
    products = Products(varying)
    exprs = [e for *_, e in statements] + [e for _, e in outputs]
    printer = _Printer(names, products, repeated(exprs, products), indent)
    for name, _, expr in statements:
        printer.statement(f"const double {name}", expr)
    for target, expr in outputs:
        printer.statement(target, expr)
    return "\n".join(printer.lines)


def _needed_statements(system, outputs, definitions):
    """``(names, statements, varying)`` shared by :func:`_block` and :func:`_hoisted_block`.

    ``statements``: ``(C name, symbol, expression)`` of the assignments and definitions
    the outputs use, in evaluation order; ``varying``: the states, ``t`` and every
    statement symbol that depends on them (the rest depend on parameters only).
    """
    names = _c_names(system) | {s: s.name for s, _ in definitions}
    needed = set().union(*(e.free_symbols for _, e in outputs))
    for symbol, expr in reversed(definitions):
        if symbol in needed:
            needed |= expr.free_symbols
    for a, expr in reversed(system.assignments):
        if a in needed:
            needed |= expr.free_symbols
    statements = [(names[a], a, e) for a, e in system.assignments if a in needed]
    statements += [(names[s], s, e) for s, e in definitions if s in needed]
    varying = {*system.y, system.t}
    for _, symbol, expr in statements:
        if expr.free_symbols & varying:
            varying.add(symbol)
    return names, statements, varying


def _hoisted_block(system, outputs, definitions=(), indent: str = "    ") -> tuple[str, str, int]:
    """Like :func:`_block`, split in two: ``(constants, body, count)``.

    ``body`` computes the outputs from ``y``, ``t``, ``p`` and ``c[0 .. count-1]``, the
    subexpressions that depend on parameters only (each assignment or rate law without
    a state or ``t``, and the constant factor of each product, ``p[8]*Q/V`` of
    ``p[8]*Q/V*y[2]``); ``constants`` is the C body that writes those ``c[k]`` from
    ``p``, run once per solve.  Powers with a varying base and a constant exponent are
    printed as ``exp(n*log(v) + n*log(c))`` (:meth:`_Printer._print_exp_log`).
    """
    names, statements, varying = _needed_statements(system, outputs, definitions)
    statements = [s for s in statements if s[1] in varying]  # the others are hoisted where used
    products = Products(varying)
    exprs = [e for *_, e in statements] + [e for _, e in outputs]
    hoisted: dict = {}
    printer = _Printer(names, products, repeated(exprs, products), indent, hoisted)
    for name, _, expr in statements:
        printer.statement(f"const double {name}", expr)
    for target, expr in outputs:
        printer.statement(target, expr)
    constants = [(name, expr) for expr, name in hoisted.items()]
    return _block(system, constants, definitions) if constants else f"{indent}(void)p; (void)c;", "\n".join(printer.lines), len(hoisted)


def _column_major_cells(entries) -> list[tuple[int, int]]:
    """The ``(i, j)`` of matrix entries in memory order (column-major, as CVODE stores J)."""
    return sorted(entries, key=lambda ij: (ij[1], ij[0]))


def _column_major(entries: dict, array: str, n: int) -> list[tuple[str, sp.Expr]]:
    """Matrix entries ``{(i, j): expression}`` as ``array[i + j*n]``, in memory order."""
    return [(f"{array}[{i + j * n}]", entries[i, j]) for i, j in _column_major_cells(entries)]


def c_rhs_body(system) -> str:
    """C body writing ``dydt``."""
    rhs = system.layered_rhs
    return _block(system, [(f"dydt[{i}]", e) for i, e in rhs.outputs.items()], rhs.definitions)


def c_hoisted_function(system, name: str, arrays: tuple[str, ...], outputs, plain=None,
                       definitions=()) -> str:
    """C definitions of the function ``name`` with its parameter-only work done once per solve.

    ``<name>_constants(p, c)`` writes the ``<NAME>_NC`` values ``c`` that depend on
    parameters only (also exported as ``const int <name>_nc``); ``<name>_core(t, y,
    <arrays>, p, c)`` writes ``outputs`` (``(target, expression)`` in the ``arrays``)
    from them (:func:`_hoisted_block`).  ``<name>(t, y, <arrays>, p)`` is for single calls
    (Python's ``rhs``/``jac``): with ``plain``, the unhoisted function with that body,
    printed as before, which the tests compare with the core in whole solves (``plain`` may
    be a function returning that body, called only if the core has at most
    :data:`PLAIN_MAX_CHARS` characters); without, the
    constants (on the stack) and the core, so the outputs are printed once -- printing them
    twice took the Jacobian's translation unit of the 21-state aggregation model from
    3.1 s to 5.9 s.  The core's values differ from the unhoisted printer's by rounding
    only: products keep their order, and the powers agree within ~1e-13 relative.
    """
    constants, core, count = _hoisted_block(system, outputs, definitions)
    if callable(plain):  # printed only for a core small enough (PLAIN_MAX_CHARS)
        plain = plain() if len(core) <= PLAIN_MAX_CHARS else None
    out = ", ".join(f"double *{a}" for a in arrays)
    unused = " ".join(f"(void){a};" for a in arrays)
    macro = f"{name.upper()}_NC"
    if plain is None:
        plain = (f"    double c[{macro} > 0 ? {macro} : 1];\n    {name}_constants(p, c);\n"
                 f"    {name}_core(t, y, {', '.join(arrays)}, p, c);")
    return (f"#define {macro} {count}\n"
            f"const int {name}_nc = {macro};\n"
            f"void {name}_constants(const double *p, double *c)\n{{\n{constants}\n}}\n\n"
            f"void {name}_core(double t, const double *y, {out}, const double *p, const double *c)\n{{\n"
            f"    (void)t; (void)y; (void)p; (void)c; {unused}\n{core}\n}}\n\n"
            f"void {name}(double t, const double *y, {out}, const double *p)\n{{\n{plain}\n}}\n")


def c_rhs_code(system) -> str:
    """C definitions of the right-hand side, with its parameter-only work done once per solve.

    :func:`c_hoisted_function` ``nanopk_rhs`` writing ``dydt``: on mouse_pbpk the constants
    (volumes, flows, ``BW**0.75``, rate constants over volumes) were a third of every
    call's arithmetic, and its four Hill terms ``(t/K)**n`` share one ``log t``
    (:meth:`_Printer._print_exp_log`).  ``nanopk_rhs`` itself is :func:`c_rhs_body`'s, kept
    for the tests that compare the two printers, where the core has at most
    :data:`PLAIN_MAX_CHARS` characters (every bundled model; not the aggregation model
    from ~35 size classes, whose f printed twice was a third of the C compiler's time at
    101 states): above, ``nanopk_rhs`` is the constants and the core, like J.
    """
    rhs = system.layered_rhs
    return c_hoisted_function(system, "nanopk_rhs", ("dydt",), [(f"dydt[{i}]", e) for i, e in rhs.outputs.items()],
                              lambda: c_rhs_body(system), rhs.definitions)


def c_jacobian_code(system, split: bool = False) -> str:
    """C definitions of ``nanopk_jac`` (the entries :func:`c_jacobian_body` writes) or, with
    ``split``, of ``nanopk_jac_split`` (J_d, F, E, as :func:`c_jacobian_split_body`),
    hoisted as :func:`c_hoisted_function` says (printed once: the single-call function is
    the constants and the core).  A linear model's Jacobian depends on parameters only:
    its core then copies ``c[k]`` into J, and its Hill terms are all that is left."""
    if split:
        low = system.low_rank_split
        n, h = system.n_states, len(low.hubs)
        outputs = _column_major(low.direct, "J", n) + _column_major(low.F, "F", n) + _column_major(low.E, "E", h)
        return c_hoisted_function(system, "nanopk_jac_split", ("J", "F", "E"), outputs)
    return c_hoisted_function(system, "nanopk_jac", ("J",), _column_major(system.layered_jacobian, "J", system.n_states))


def c_dfdp_code(system, indices) -> str:
    """C definitions of ``nanopk_dfdp`` (``D[i + j*N] = ∂f_i/∂p_{indices[j]}``, the entries
    :func:`c_dfdp_body` writes), hoisted and printed once as :func:`c_jacobian_code`."""
    return c_hoisted_function(system, "nanopk_dfdp", ("D",), _column_major(system.layered_dfdp(indices), "D", system.n_states))


def c_jacobian_body(system) -> str:
    """C body writing the non-zero entries of ``J`` (column-major; the caller zeroes J)."""
    jac = system.layered_jacobian
    return _block(system, _column_major(jac, "J", system.n_states)) if jac else "    (void)J;"


def c_jacobian_split_body(system) -> str:
    """C body writing J's direct part ``J``, ``F = ∂f/∂h`` (``F[i + k*N]``) and
    ``E = ∂h/∂y`` (``E[k + j*H]``) of :attr:`SymbolicSystem.low_rank_split`, non-zeros
    only (the caller zeroes all three)."""
    split = system.low_rank_split
    n, h = system.n_states, len(split.hubs)
    outputs = _column_major(split.direct, "J", n) + _column_major(split.F, "F", n) + _column_major(split.E, "E", h)
    return _block(system, outputs)


def c_observe_body(system) -> str:
    """C body writing the observables to ``out``."""
    return _block(system, [(f"out[{k}]", e) for k, e in enumerate(system.layered_observables)])


def c_initial_body(system) -> str:
    """C body writing the initial state to ``y0``."""
    return _block(system, [(f"y0[{i}]", sp.sympify(e)) for i, e in enumerate(system.layered_initial)])


def c_function_bodies(system) -> dict[str, str]:
    """C bodies of ``rhs`` (writes ``dydt``), ``jac`` (writes ``J``), ``observe`` (writes
    ``out``) and ``initial`` (writes ``y0``), with ``n``, ``n_obs`` and ``nnz``."""
    return {
        "rhs": c_rhs_body(system),
        "jac": c_jacobian_body(system),
        "observe": c_observe_body(system),
        "initial": c_initial_body(system),
        "n": system.n_states,
        "n_obs": len(system.layered_observables),
        "nnz": len(system.layered_jacobian),
    }


def c_jacobian_pattern(system) -> str:
    """C tables of J's structural non-zeros: ``nanopk_jnz_row/col`` (``NANOPK_JNZ`` entries),
    so that J·s costs one multiply-add per non-zero instead of N²."""
    cells = _column_major_cells(system.layered_jacobian)
    rows = ", ".join(str(i) for i, _ in cells) or "0"  # C has no empty arrays; the loop runs 0 times
    cols = ", ".join(str(j) for _, j in cells) or "0"
    return (f"#define NANOPK_JNZ {len(cells)}\n"
            f"static const int nanopk_jnz_row[] = {{{rows}}};\n"
            f"static const int nanopk_jnz_col[] = {{{cols}}};\n")


def c_dfdp_body(system, indices) -> str:
    """C body writing ``D[i + j*N] = ∂f_i/∂p_{indices[j]}`` (column-major, non-zeros only)."""
    dfdp = system.layered_dfdp(indices)
    return _block(system, _column_major(dfdp, "D", system.n_states)) if dfdp else "    (void)D;"
