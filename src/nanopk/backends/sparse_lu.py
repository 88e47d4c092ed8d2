"""Sparse LU of CVODE's Newton matrix, planned for one model when it is compiled.

At every Newton iteration CVODE solves

    M x = b,        M = I − γ J,        J = ∂f/∂y,

and refactors M whenever γ or J changes.  J of a compartment model is sparse: an organ
exchanges with the blood and its own sub-compartments, not with the other organs
(mouse_pbpk: 58 non-zeros of 23² = 529).  SUNDIALS' dense LU spends N³/3 operations per
factorisation and 2N² per solve on it regardless: a fifth of a
mouse_pbpk simulation in a perf profile.

Here the pattern of M (J's structural non-zeros and the diagonal) is known when the
model is compiled, so the elimination is planned once, symbolically:

1. the **elimination order** is minimum degree on the symmetric pattern of M (Tinney &
   Walker 1967): the organs, which touch only the blood, are eliminated before the blood
   pools they all touch, which leaves (almost) no fill-in;
2. the **fill-in** of that order is found by symbolic elimination, so L and U occupy a
   fixed set of entries;
3. factorisation and solve visit those entries only, through index tables printed
   into the model's C (``cvode_driver.c`` holds the loops), the elimination the Kinetic
   PreProcessor generates for atmospheric chemistry (Damian et al. 2002).

mouse_pbpk's factorisation becomes 40 multiply-adds instead of ~4000.

Pivots are taken on the diagonal, where M = I − γJ holds 1 + γ·(the state's loss
rate), without row exchanges, as KPP does.  That is stable when M is diagonally
dominant, as it is for linear transfer between mass states, but not guaranteed for
nonlinear rate laws or states in other units (a corona's coverage, a diameter).  So the
factorisation is checked where it is used: the first solve after each factorisation
computes its componentwise backward error (Oettli & Prager 1964)

    ω = max_i |b − M x|_i / (|M| |x| + |b|)_i,

which does not depend on the units of the states, and if ω exceeds √ε ≈ 1.5e-8 the
driver refactors that Newton matrix with SUNDIALS' dense LU with partial pivoting, for
that setup only, and counts the fallback.  A zero or non-finite pivot declines at once.
Newton's method needs only an approximate M⁻¹ (CVODE reuses M across steps), so the
check guards the cost of the iteration; the accuracy of the solution is CVODE's error
test's, whichever LU solved the Newton systems.

A model whose planned elimination saves less than three quarters of the dense work
gets ``None`` from :func:`plan_newton_lu`.  Most often J is dense because rate laws
share a *hub*, an assignment over many states: coagulation's losses all use three
moments μ of the size distribution.  Stopping the chain rule at the hubs
(:attr:`nanopk.backends.symbolic.SymbolicSystem.low_rank_split`) gives

    J = J_d + F E,     F = ∂f/∂μ (N × H),     E = ∂μ/∂y (H × N),

with J_d sparse (for coagulation, lower triangular: a class gains from smaller ones).
Then M = M_d − γF E, M_d = I − γJ_d, and the Sherman–Morrison–Woodbury formula

    M⁻¹ = M_d⁻¹ + Z S⁻¹ E M_d⁻¹,      Z = M_d⁻¹(γF),     S = I_H − E Z,

needs the sparse LU of M_d, H solves and an H × H LU per factorisation, and ~2HN
operations per solve beyond M_d's (``cvode_driver.c``, ``low_rank_setup``).  At 50
size classes (51 states) that replaces a dense LU of 51³/3 operations per factorisation.
The backward-error check covers the updated solve; a fallback gives SUNDIALS' dense LU
the whole M.  The driver uses the split only where J itself has no sparse plan.

Sources
-------
1. Tinney WF, Walker JW. Direct solutions of sparse network equations by optimally
   ordered triangular factorization. Proc IEEE 1967;55:1801 (minimum degree).
2. Duff IS, Erisman AM, Reid JK. Direct Methods for Sparse Matrices. Oxford University
   Press 1986 (fill-in, symbolic factorisation).
3. Damian V, Sandu A, Damian M, Potra F, Carmichael GR. The kinetic preprocessor KPP —
   a software environment for solving chemical kinetics. Comput Chem Eng 2002;26:1567
   (sparse LU of the Newton matrix planned for one mechanism).
4. Oettli W, Prager W. Compatibility of approximate solution of linear equations with
   given error bounds for coefficients and right-hand sides. Numer Math 1964;6:405
   (componentwise backward error).
5. Hager WW. Updating the inverse of a matrix. SIAM Rev 1989;31:221
   (Sherman–Morrison–Woodbury formula).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NewtonLU", "elimination_order", "plan_newton_lu", "c_newton_lu", "MAX_BACKWARD_ERROR"]

#: √ε of double precision: a factorisation whose solve has a larger componentwise
#: backward error has lost more than half its digits to growth, and is redone densely.
MAX_BACKWARD_ERROR = 1.4901161193847656e-08
#: The sparse elimination is used only when it costs at most this fraction of the dense
#: N³/3: below it the generated code is small and the saving certain.
MAX_WORK_FRACTION = 0.25
#: The solve is printed straight-line, one statement per entry of L and U: above this
#: many it would compile slowly for little gain.
MAX_STATEMENTS = 60_000


def elimination_order(n: int, pattern) -> list[int]:
    """Minimum-degree order of the symmetric pattern of M (ties by index).

    ``pattern`` holds ``(i, j)`` with M[i, j] structurally non-zero.  Eliminating a
    vertex joins its neighbours into a clique (the fill-in); the vertex of fewest
    neighbours goes next (Tinney & Walker 1967, scheme 2).
    """
    adjacent = {v: set() for v in range(n)}
    for i, j in pattern:
        if i != j:
            adjacent[i].add(j)
            adjacent[j].add(i)
    order = []
    while adjacent:
        v = min(adjacent, key=lambda u: (len(adjacent[u]), u))
        order.append(v)
        neighbours = adjacent.pop(v)
        for u in neighbours:
            adjacent[u] |= neighbours
            adjacent[u] -= {u, v}
    return order


@dataclass(frozen=True)
class NewtonLU:
    """A planned elimination of M: the order, and where L and U live.

    ``order[k]`` is the state eliminated k-th; ``slots[(i, k)]`` is the position in the
    compact array of entry (i, k) of the permuted matrix (L below the diagonal, U on and
    above it); ``sources[(i, k)]`` is its index in CVODE's column-major M (absent for
    fill-in, which starts at zero).
    """

    n: int
    order: tuple[int, ...]
    slots: dict
    sources: dict
    below: tuple[tuple[int, ...], ...]  # rows i > k of L's column k
    right: tuple[tuple[int, ...], ...]  # columns j > k of U's row k
    factor_operations: int

    @property
    def dense_operations(self) -> int:
        return self.n ** 3 // 3


def _eliminate(n: int, pattern, order) -> NewtonLU:
    position = {state: k for k, state in enumerate(order)}
    entries = {(position[i], position[j]) for i, j in pattern} | {(k, k) for k in range(n)}
    sources = {(position[i], position[j]): i + j * n for i, j in pattern}
    sources.update({(position[k], position[k]): k + k * n for k in range(n)})
    below = [set() for _ in range(n)]
    right = [set() for _ in range(n)]
    for i, j in entries:
        if i > j:
            below[j].add(i)
        elif j > i:
            right[i].add(j)
    operations = 0
    for k in range(n):
        operations += len(below[k])
        for i in below[k]:
            for j in right[k]:
                operations += 1
                if (i, j) not in entries:  # fill-in
                    entries.add((i, j))
                    (below[j] if i > j else right[i]).add(j if i < j else i)
    slots = {ij: q for q, ij in enumerate(sorted(entries, key=lambda ij: (ij[1], ij[0])))}
    return NewtonLU(n, tuple(order), slots, sources, tuple(tuple(sorted(b)) for b in below),
                    tuple(tuple(sorted(r)) for r in right), operations)


def plan_newton_lu(n: int, jacobian_pattern) -> NewtonLU | None:
    """The sparse elimination of M = I − γJ, or ``None`` where the dense LU is as good.

    ``jacobian_pattern`` holds the ``(i, j)`` of J's structural non-zeros.
    """
    pattern = set(jacobian_pattern)
    plan = _eliminate(n, pattern, elimination_order(n, pattern))
    if plan.factor_operations > MAX_WORK_FRACTION * plan.dense_operations or len(plan.slots) > MAX_STATEMENTS:
        return None
    return plan


def _table(name: str, values) -> str:
    values = list(values) or [0]  # C has no empty arrays; the loops that read it run 0 times
    return f"static const int {name}[{len(values)}] = {{{', '.join(map(str, values))}}};"


def _starts(groups) -> list[int]:
    """CSR offsets of consecutive groups: group k is entries starts[k] .. starts[k+1]-1."""
    starts = [0]
    for group in groups:
        starts.append(starts[-1] + len(group))
    return starts


def c_newton_lu(plan: NewtonLU | None, hubs: int = 0) -> str:
    """The C tables the sparse LU's loops read (``sparse_lu.c``), and its solve.

    ``NANOPK_SPARSE_LU`` is 1 with a plan, 0 without (the driver then compiles no
    sparse code); ``NANOPK_LU_MAX_BACKWARD_ERROR`` is :data:`MAX_BACKWARD_ERROR`;
    ``NANOPK_HUBS`` is ``hubs``, the rank of the low-rank update (0: none; then ``plan``
    is of J itself, else of J's direct part).
    Tables, in the permuted order of elimination except where noted:

    - M's structural non-zeros by (original) row, ``m_start``: ``m_col`` (original
      column), ``m_source`` (index in CVODE's column-major matrix), ``m_slot`` (its
      place among L and U);
    - ``lu_diag[k]``: the slot of pivot k;
    - column k of L, ``l_start``: ``l_slot``;
    - the updates of step k, ``update_start``: ``lu[update_target] -= lu[update_left] *
      lu[update_right]``;

    and ``nanopk_lu_solve(lu, x)``, x = M⁻¹x, as straight-line code.  Tables for the
    factorisation: printed straight-line it took a second to compile on
    mouse_tumour_full, longer than the rest of the model.
    """
    bound = f"#define NANOPK_LU_MAX_BACKWARD_ERROR {MAX_BACKWARD_ERROR!r}\n#define NANOPK_HUBS {hubs}\n"
    if plan is None:
        return bound + "#define NANOPK_SPARSE_LU 0\n"
    slots, n, order = plan.slots, plan.n, plan.order
    entries = sorted(plan.sources, key=lambda ij: (order[ij[0]], order[ij[1]]))  # by original row, column
    rows = [[ij for ij in entries if order[ij[0]] == state] for state in range(n)]
    columns_of_l = [[(i, k) for i in plan.below[k]] for k in range(n)]
    updates = [[(i, j, k) for i in plan.below[k] for j in plan.right[k]] for k in range(n)]
    tables = [
        f"/* Sparse LU of M = I - gamma*J: {len(slots)} entries of {n * n} (fill-in included), "
        f"{plan.factor_operations} operations per factorisation instead of {plan.dense_operations}. */",
        "#define NANOPK_SPARSE_LU 1",
        f"#define NANOPK_LU_NNZ {len(slots)}",
        f"#define NANOPK_M_NNZ {len(entries)}",
        _table("m_start", _starts(rows)),
        _table("m_col", [order[j] for _, j in entries]),
        _table("m_source", [plan.sources[ij] for ij in entries]),
        _table("m_slot", [slots[ij] for ij in entries]),
        _table("lu_diag", [slots[k, k] for k in range(n)]),
        _table("l_start", _starts(columns_of_l)),
        _table("l_slot", [slots[ik] for col in columns_of_l for ik in col]),
        _table("update_start", _starts(updates)),
        _table("update_target", [slots[i, j] for step in updates for i, j, _ in step]),
        _table("update_left", [slots[i, k] for step in updates for i, _, k in step]),
        _table("update_right", [slots[k, j] for step in updates for _, j, k in step]),
    ]
    # The solve runs at every Newton iteration, the factorisation once per setup: the
    # solve is printed straight-line (a loop over one or two entries per state cost
    # ~10 % of a mouse_pbpk simulation more), the factorisation loops over tables.
    solve = [f"    double z[{n}];"]
    solve += [f"    z[{k}] = x[{order[k]}];" for k in range(n)]
    for k in range(n):  # L z = Pb, L unit lower triangular
        solve += [f"    z[{i}] -= lu[{slots[i, k]}] * z[{k}];" for i in plan.below[k]]
    for k in reversed(range(n)):  # U z = z
        solve += [f"    z[{k}] -= lu[{slots[k, j]}] * z[{j}];" for j in plan.right[k]]
        solve.append(f"    z[{k}] *= lu[{slots[k, k]}];")
    solve += [f"    x[{order[k]}] = z[{k}];" for k in range(n)]
    tables += ["", "/* x = M^-1 x with the factors: P^T U^-1 L^-1 P x. */",
               "static void nanopk_lu_solve(const double *lu, double *x)", "{", *solve, "}"]
    return bound + "\n".join(tables) + "\n"
