"""The model's equations in SymPy, in the two forms the backends need.

The *layered* form is how the generated code evaluates the model: each assignment
(``Q_liver = Q_C·f_Q_liver``) is computed once, then each rate law once (``r_k``), and

    dy_i/dt = Σ_k S_ik · r_k

from the stoichiometry (a flux takes from its source, gives to its target).  Derivatives
follow the same structure: each rate law is differentiated once, through the
assignments by the chain rule,

    dr_k/dv = ∂r_k/∂v + Σ_a ∂r_k/∂a · da/dv,      ∂f_i/∂v = Σ_k S_ik · dr_k/dv,

so no assignment is ever expanded inside a rate law.  Differentiating the substituted
right-hand side instead took 3.6 s on mouse_tumour_full; this takes 0.15 s.  Stopping
the same chain rule at the *hubs*, assignments over many states such as the moments of a
size distribution, splits J into a sparse direct part and a low-rank term
(:attr:`SymbolicSystem.low_rank_split`), which the Newton solve exploits.

The *flat* form has everything substituted, for ``lambdify`` and the fits.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import sympy as sp
from sympy.core.function import ArgumentIndexError

from ..parts import TIME

__all__ = ["Layered", "SymbolicSystem", "LowRankSplit", "HUB_MIN_STATES"]

#: A state-dependent assignment that depends on at least this many states (a moment of
#: a size distribution, a total) is a *hub*: every rate law that uses it couples to all
#: of those states, and the Jacobian is kept as its direct part plus a low-rank term.
HUB_MIN_STATES = 8


@dataclass(frozen=True)
class Layered:
    """Outputs written in named intermediates.

    ``definitions`` are ``(symbol, expression)`` in evaluation order; an expression may
    use the model's assignments and earlier definitions.  ``outputs`` maps a state index
    to an expression in them.
    """

    definitions: tuple[tuple[sp.Symbol, sp.Expr], ...]
    outputs: dict


@dataclass(frozen=True)
class LowRankSplit:
    """J = J_d + F·E, with the hubs h (state-dependent assignments) held fixed in J_d.

    ``direct[(i, j)] = ∂f_i/∂y_j`` with the hubs fixed, ``F[(i, k)] = ∂f_i/∂h_k``,
    ``E[(k, j)] = ∂h_k/∂y_j``: the chain rule, stopped at the hubs.  A moment
    μ = Σ_j w_j y_j used by every rate law makes J dense; J_d stays sparse and F·E has
    rank len(hubs).
    """

    hubs: tuple[sp.Symbol, ...]
    direct: dict
    F: dict
    E: dict


class SymbolicSystem:
    """``dy/dt = f(t, y, p)``, its Jacobian ``∂f/∂y`` and the observables, in SymPy.

    Built once per model structure; backends turn it into code.  Everything symbolic is
    derived on first use: a backend that finds its compiled artifact in the cache never
    needs it.
    """

    def __init__(self, model):
        self.state_names = model.state_names
        self.parameter_names = model.parameter_names
        self.y = model.state_symbols
        self.p = model.parameter_symbols
        self.t = TIME
        self.observable_names = model.observable_names
        self.hash = model.structure_hash
        self._model = model

    @property
    def n_states(self) -> int:
        return len(self.y)

    @property
    def n_params(self) -> int:
        return len(self.p)

    # ------------------------------------------------------------------ layered form
    @functools.cached_property
    def assignments(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """``(symbol, expression)`` in dependency order; expressions use earlier symbols."""
        return [(a.symbol, sp.sympify(a.expr)) for a in self._model.ordered_assignments()]

    @functools.cached_property
    def layered_rhs(self) -> Layered:
        """``dy_i/dt`` by state index, as signed sums of the rates ``r_k``."""
        rates = []
        parts: dict = defaultdict(list)
        for k, (rate, changes) in enumerate(self._model.rate_terms()):
            r = sp.Dummy(f"r{k}")
            rates.append((r, rate))
            for i, sign in changes:
                parts[i].append(sign * r)
        return Layered(tuple(rates), {i: sp.Add(*parts[i]) for i in range(self.n_states)})

    @functools.cached_property
    def layered_jacobian(self) -> dict[tuple[int, int], sp.Expr]:
        """Non-zero ``∂f_i/∂y_j`` by ``(i, j)``, in the states, parameters and assignments."""
        return self._derivative(self.y)

    @functools.cached_property
    def structural_pattern(self) -> frozenset:
        """``(i, j)`` where a rate law that changes state i reads state j, directly or
        through assignments: a superset of :attr:`layered_jacobian`'s keys (an entry may
        still cancel to zero), found from free symbols alone, without differentiating.
        At 101 aggregation states the Jacobian took ~100 s to differentiate only to find
        it dense; this takes milliseconds."""
        states = set(self.y)
        column = {v: j for j, v in enumerate(self.y)}
        reads: dict = {}  # the states each assignment reads, through earlier assignments
        for a, expr in self.assignments:
            symbols = expr.free_symbols
            reads[a] = frozenset((symbols & states).union(*(reads[b] for b in symbols & reads.keys())))
        pattern = set()
        for rate, changes in self._model.rate_terms():
            symbols = rate.free_symbols
            columns = [column[v] for v in (symbols & states).union(*(reads[b] for b in symbols & reads.keys()))]
            pattern.update((i, j) for i, _ in changes for j in columns)
        return frozenset(pattern)

    @functools.cached_property
    def low_rank_split(self) -> LowRankSplit | None:
        """The Jacobian as a direct part and a low-rank term through the hubs, or ``None``
        if no assignment depends on :data:`HUB_MIN_STATES` states or more.

        A hub may not depend on another hub, so that F·E is the whole chain rule.
        """
        states = set(self.y)
        through: dict = {}
        hubs, uses_hub = [], set()
        for a, expr in self.assignments:
            through[a] = _gradient(expr, states, through)
            if expr.free_symbols & uses_hub:
                uses_hub.add(a)
            elif len(through[a]) >= HUB_MIN_STATES:
                hubs.append(a)
                uses_hub.add(a)
        if not hubs:
            return None
        column = {v: j for j, v in enumerate(self.y)}
        hub_index = {h: k for k, h in enumerate(hubs)}
        E = {(hub_index[h], column[v]): d for h in hubs for v, d in through[h].items()}
        wrt = states | set(hubs)
        through = {}
        for a, expr in self.assignments:
            through[a] = {} if a in hub_index else _gradient(expr, wrt, through)
        direct, F = defaultdict(list), defaultdict(list)
        for rate, changes in self._model.rate_terms():
            for v, d in _gradient(rate, wrt, through).items():
                for i, sign in changes:
                    if v in hub_index:
                        F[i, hub_index[v]].append(_signed(sign, d))
                    else:
                        direct[i, column[v]].append(_signed(sign, d))
        return LowRankSplit(tuple(hubs), _nonzero_sums(direct), _nonzero_sums(F), {ij: E[ij] for ij in sorted(E)})

    def layered_dfdp(self, indices) -> dict[tuple[int, int], sp.Expr]:
        """Non-zero ``∂f_i/∂p_{indices[j]}`` by ``(i, j)``."""
        return self._derivative([self.p[k] for k in indices])

    @functools.cached_property
    def layered_observables(self) -> list[sp.Expr]:
        return list(self._model.observable_expressions(substitute=False).values())

    @functools.cached_property
    def layered_initial(self) -> list[sp.Expr]:
        return self._model.initial_state_expressions(substitute=False)

    def _derivative(self, wrt) -> dict[tuple[int, int], sp.Expr]:
        column = {v: j for j, v in enumerate(wrt)}
        wrt = set(wrt)
        through: dict = {}  # da/dv for each assignment a, in dependency order
        for a, expr in self.assignments:
            through[a] = _gradient(expr, wrt, through)
        parts: dict = defaultdict(list)
        for rate, changes in self._model.rate_terms():
            for v, d in _gradient(rate, wrt, through).items():
                for i, sign in changes:
                    parts[i, column[v]].append(_signed(sign, d))
        return _nonzero_sums(parts)

    # ------------------------------------------------------------------ flat form
    @functools.cached_property
    def rhs(self) -> sp.Matrix:
        return sp.Matrix(self._model.rhs_expressions())

    @functools.cached_property
    def jacobian(self) -> sp.Matrix:
        subs = self._model.assignment_substitutions()
        J = sp.zeros(self.n_states, self.n_states)
        for (i, j), entry in self.layered_jacobian.items():
            J[i, j] = entry.xreplace(subs)
        return J

    @functools.cached_property
    def observables(self) -> list:
        return list(self._model.observable_expressions().values())

    @functools.cached_property
    def initial(self) -> list:
        return self._model.initial_state_expressions()


def _signed(sign: int, d):
    """``sign · d``, the same expression, without a product for ±1 (``1·d`` is ``d``;
    ``-d`` negates a product's coefficient where ``-1·d`` re-canonicalises it)."""
    return d if sign == 1 else -d if sign == -1 else sign * d


def _nonzero_sums(parts: dict) -> dict:
    """``{(i, j): Σ terms}`` in index order, the entries that do not cancel to zero."""
    entries = {ij: sp.Add(*terms) for ij, terms in parts.items()}
    return {ij: entries[ij] for ij in sorted(entries) if entries[ij] != 0}


def _gradient(expr, wrt: set, through: dict) -> dict:
    """Non-zero ``{v: d expr/d v}`` for ``v`` in ``wrt``; ``through[a]`` holds ``{v: da/dv}``."""
    symbols = expr.free_symbols
    inner_of = {a: through[a] for a in symbols & through.keys() if through[a]}
    partials = _partials(expr, (symbols & wrt) | inner_of.keys(), {})
    parts: dict = defaultdict(list)
    for v in symbols & wrt:
        parts[v].append(partials.get(v, sp.S.Zero))
    for a, inner in inner_of.items():
        outer = partials.get(a, sp.S.Zero)
        for v, d in inner.items():
            parts[v].append(outer * d)
    total = {v: sp.Add(*ds) for v, ds in parts.items()}
    return {v: d for v, d in total.items() if d != 0}


def _partials(expr, wrt: set, memo: dict) -> dict:
    """``{s: _diff(expr, s)}`` for every ``s`` of ``wrt`` in ``expr``, the same expressions
    built in one walk of ``expr``.

    :func:`_diff` walks the whole expression once per symbol: a coagulation gain, a sum
    of ~K/2 products of the amounts, cost O(K) per amount and O(K²) per flux, and most
    of the symbolic time at 101 states.  Here a sum or product is walked once and the
    partials of each term are combined only for the symbols the term contains; a power
    with a constant exponent is differentiated once (``n·b**(n-1)``) for all symbols of
    its base.  Everything else goes to :func:`_diff`, symbol by symbol.
    """
    found = memo.get(expr)
    if found is not None:
        return found
    if expr.is_Symbol:
        found = {expr: sp.S.One} if expr in wrt else {}
    elif expr.is_Atom:
        found = {}
    elif expr.is_Add or expr.is_Mul:
        f = expr.args
        parts: dict = defaultdict(list)
        for k, fk in enumerate(f):
            for s, d in _partials(fk, wrt, memo).items():
                parts[s].append(d if expr.is_Add else sp.Mul(*f[:k], d, *f[k + 1:]))
        found = {s: sp.Add(*ds) for s, ds in parts.items()}
    elif expr.is_Pow and not (expr.exp.free_symbols & wrt):
        base, n = expr.args
        inner = _partials(base, wrt, memo)
        outer = n * base ** (n - 1) if inner else None
        found = {s: outer * d for s, d in inner.items()}
    else:
        found = {s: _diff(expr, s) for s in expr.free_symbols & wrt}
    memo[expr] = found
    return found


def _diff(expr, s):
    """``∂expr/∂s``, the derivative ``expr.diff(s)`` gives, built five times faster.

    SymPy differentiates a product by multiplying the factors pairwise, re-simplifying
    each partial product; here each term of the product rule is built once, and only
    the factors that contain ``s`` are differentiated.
    """
    if s not in expr.free_symbols:
        return sp.S.Zero
    if expr == s:
        return sp.S.One
    if expr.is_Add:
        return sp.Add(*[_diff(term, s) for term in expr.args])
    if expr.is_Mul:
        f = expr.args
        return sp.Add(*[sp.Mul(*f[:k], _diff(fk, s), *f[k + 1:]) for k, fk in enumerate(f) if s in fk.free_symbols])
    if expr.is_Pow and s not in expr.exp.free_symbols:
        base, n = expr.args
        return n * base ** (n - 1) * _diff(base, s)
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*[(_diff(value, s), condition) for value, condition in expr.args])
    if isinstance(expr, sp.Function):
        try:  # chain rule through exp, log, tanh, Max, ...
            return sp.Add(*[expr.fdiff(k + 1) * _diff(arg, s) for k, arg in enumerate(expr.args) if s in arg.free_symbols])
        except ArgumentIndexError:
            pass
    return expr.diff(s)
