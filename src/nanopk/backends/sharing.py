"""Which subexpressions generated code should compute once.

``sympy.cse`` answers this by rebuilding every expression, which made it half the cost
of code generation; here the expressions are only read, and the C printer
(:mod:`.ccode`) names what is shared as it prints.

Two kinds of sharing:

- a subtree that occurs more than once (tree matching, as cse does), including a
  reciprocal ``1/V``, computed once and multiplied by: a division costs several
  multiplications;
- the parts of products.  Rate laws are numbers times constants times amounts,
  ``0.52·coag·A_i·A_j/V``; split as ``number · (constant factors · varying factors)``,
  the rates of a mechanism share their constant part (``coag/V``), the two directions
  of a flux pair their amounts (``A_i·A_j``), and Jacobian entries the products of
  the two (``coag/V·A_i``).
"""
from __future__ import annotations

import sympy as sp

__all__ = ["Products", "repeated"]


class Products:
    """Products split as ``coefficient · core`` and ``core = constant · varying``.

    ``varying`` are the symbols that change during integration (states, time, and
    what depends on them).  Calling returns ``(coefficient, core, constant, varying)``;
    each is a product of the original factors (SymPy's canonical order kept), or 1.
    """

    def __init__(self, varying: set):
        self._varying = varying
        self._memo: dict = {}
        self._varies: dict = {}

    def __call__(self, product: sp.Mul) -> tuple:
        if product not in self._memo:
            coefficient, factors = product.as_coeff_mul(rational=False)
            fixed = [f for f in factors if not self.varies(f)]
            moving = [f for f in factors if self.varies(f)]
            self._memo[product] = coefficient, _product(factors), _product(fixed), _product(moving)
        return self._memo[product]

    def varies(self, e) -> bool:
        """Whether ``e`` depends on a varying symbol; each distinct subtree is looked at
        once (``free_symbols`` walks the whole tree on every call)."""
        found = self._varies.get(e)
        if found is None:
            found = e in self._varying if e.is_Symbol else any(self.varies(a) for a in e.args)
            self._varies[e] = found
        return found

    def parts(self, product: sp.Mul) -> tuple:
        """What ``product`` is printed from: ``(core,)`` after a coefficient, else the
        constant and varying parts, else (one kind of factor only) its factors."""
        coefficient, core, fixed, moving = self(product)
        if coefficient != 1:
            return (core,)
        return (fixed, moving) if fixed != 1 and moving != 1 else product.args


def _product(factors) -> sp.Expr:
    if not factors:
        return sp.S.One
    return factors[0] if len(factors) == 1 else sp.Mul._from_args(factors)


def repeated(exprs, products: Products) -> set:
    """The subexpressions (including parts of products) that occur more than once.

    Subtrees of a repeat count once.  Products are counted by the parts they are
    printed from (:meth:`Products.parts`); negative powers other than reciprocals
    (``b**-2``) are not counted, only their base: they are printed as divisions.
    """
    seen: set = set()
    found: set = set()

    def visit(e):
        if e.is_Atom:
            return
        if isinstance(e, sp.Expr) and not (e.is_Pow and e.exp.is_negative and e.exp != -1):
            if e in seen:
                found.add(e)
                return
            seen.add(e)
        for part in products.parts(e) if e.is_Mul else e.args:
            visit(part)

    for expr in exprs:
        visit(expr)
    return found
