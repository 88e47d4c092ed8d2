"""Numerical backends behind one small interface (:class:`CompiledModel`).

``reference``: NumPy functions from SymPy ``lambdify(cse=True)`` driven by LSODA
(scipy ``odeint``) with the analytic Jacobian; always available.
``cvode``: the right-hand side and Jacobian generated as C, compiled once per model
structure and linked against SUNDIALS CVODE (BDF, analytic Jacobian; the Newton
systems solved by the model's own generated sparse LU, :mod:`.sparse_lu`, or by
SUNDIALS' dense LU where the Jacobian is dense); the whole integration runs in C.  It is the default wherever the machine can
build it; otherwise nanopk falls back to ``reference`` and says why.
"""
from .base import CompiledModel, SolveResult

__all__ = ["CompiledModel", "SolveResult"]
