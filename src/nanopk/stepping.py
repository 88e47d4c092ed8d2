"""Stepping API for co-simulation: advance a model in time, change it between steps.

A tumour-growth, agent-based or whole-body simulator owns the clock and calls
nanopk step by step::

    integ = model.integrator()              # the model's dose given at t = 0
    for day in range(7):
        integ.set_parameter("f_Q_tumour", flow_from_my_tumour_model(integ.t))
        integ.advance(24.0)                 # hours
        print(integ.t, integ.observe()["tumour"])
    integ.add_dose(20.0)                    # a second bolus, µg, into the dose target

Each :meth:`Integrator.advance` integrates ``dy/dt = f(t, y, p)`` from ``t`` to
``t + dt`` with the compiled backend's solver (restarted at every step, so
parameters may change discontinuously between steps, exactly like dosing events in
:func:`nanopk.simulate`).

Mass accounting convention: the ``dose`` parameter of the integrator is the total
administered *so far*.  :meth:`~Integrator.add_dose` adds the amount to the target
state and to ``dose``; an infusion (:meth:`~Integrator.set_infusion`) puts each
step's infused amount into the ``depot`` at the start of the step and adds it to
``dose``, and the zero-order ``infusion`` flux empties the depot during the step.
So ``observe()["total"]`` is 100 %ID of everything administered so far, at every
step, and %ID observables are relative to that running total (a
:func:`~nanopk.simulate` regimen is relative to the whole regimen from t = 0; the two
agree once every dose has been given).  Rate laws of the bundled models do not use
``dose``; a model whose rates did would see the running total.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .errors import ModelError, suggest
from .parts import DOSE, INFUSION_RATE
from .run import Runner

__all__ = ["Integrator"]


class Integrator:
    """Advance a model step by step, with dosing and parameter changes between steps.

    Parameters
    ----------
    model : nanopk.Model
    params : dict, optional
        Parameter values overriding the model's defaults.
    backend : {"auto", "cvode", "reference"}
    rtol : float
        Relative tolerance of each step.
    atol : float
        Absolute tolerance, as a fraction of the administered total for mass states
        (of the model's default dose before anything is given) and absolute for the
        others -- the convention of :func:`nanopk.simulate`.
    dose : float, optional
        µg given as a bolus into the dose target at t = 0.  Default: the model's
        ``dose`` parameter (so an uninterrupted run matches ``model.simulate``);
        ``0`` starts with nothing administered.
    max_steps : int
        Solver step limit per :meth:`advance`.

    Attributes
    ----------
    t : float
        Current time (h).
    state : dict
        Current state, ``{name: value}`` (mass states in µg).
    administered_ug : float
        Everything administered so far (µg): the ``dose`` of the %ID observables.
    """

    def __init__(self, model, params: Mapping[str, float] | None = None, backend: str = "auto",
                 rtol: float = 1e-8, atol: float = 1e-12, dose: float | None = None, max_steps: int = 200_000):
        for name, value in (("rtol", rtol), ("atol", atol)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ModelError(f"`{name}` must be a positive number (got {value!r})")
        self.model = model
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self._runner = Runner(model, backend)  # validates the model once, compiles it
        self._compiled = self._runner.compiled
        self._names = model.parameter_names
        if params:
            model.check_parameter_values(params)
        self._p = self._runner.parameters(params)
        layout = self._runner.layout
        self._i_dose, self._i_inf, self._i_depot = layout.i_dose, layout.i_infusion, layout.i_depot
        self._scale = float(self._p[self._i_dose])  # tolerance scale before anything is given
        self._p[self._i_dose] = 0.0
        self._p[self._i_inf] = 0.0
        self._infusion = 0.0
        self._y = np.asarray(self._compiled.initial_state(self._p), dtype=float).copy()
        self._t = 0.0
        first = self._scale if dose is None else float(dose)
        if not math.isfinite(first) or first < 0:
            raise ModelError(f"`dose` must be a finite amount ≥ 0 µg (got {dose!r})")
        if first > 0:
            self.add_dose(first)

    # ------------------------------------------------------------------ reading
    @property
    def t(self) -> float:
        """Current time (h)."""
        return self._t

    @property
    def state(self) -> dict[str, float]:
        """Current state ``{name: value}``: mass states in µg, others in their own unit."""
        return {name: float(v) for name, v in zip(self.model.state_names, self._y)}

    @property
    def parameters(self) -> dict[str, float]:
        """Current parameter values ``{name: value}`` (``dose`` = administered so far)."""
        return {name: float(v) for name, v in zip(self._names, self._p)}

    @property
    def administered_ug(self) -> float:
        """Total administered so far (µg)."""
        return float(self._p[self._i_dose])

    @property
    def infusion_rate(self) -> float:
        """Current infusion rate (µg/h); see :meth:`set_infusion`."""
        return self._infusion

    def observe(self) -> dict[str, float]:
        """Observables at the current time, ``{name: value}`` (%ID of the administered total).

        Raises
        ------
        ModelError
            If nothing has been administered yet (%ID is undefined).
        """
        if self.administered_ug <= 0:
            raise ModelError("nothing has been administered yet, so %ID is undefined; call add_dose(amount_ug) or set_infusion(rate) first")
        values = self._compiled.observe(np.array([self._t]), self._y[None, :], self._p)[0]
        return {name: float(v) for name, v in zip(self._compiled.observable_names, values)}

    def __repr__(self) -> str:
        return (f"<nanopk.Integrator {self.model.name!r} at t = {self._t:g} h, "
                f"{self.administered_ug:g} µg administered, backend {self._compiled.backend}>")

    # ------------------------------------------------------------------ changing
    def add_dose(self, amount_ug: float, state: str | None = None) -> "Integrator":
        """Give ``amount_ug`` µg as a bolus into ``state`` (default: the dose target) now.

        The administered total (``dose``) grows by the same amount, so ``total``
        stays 100 %ID.

        Raises
        ------
        ModelError
            For a non-positive amount, or a state that is unknown or not a particle
            state (sinks, the depot and non-mass states cannot receive a dose).
        """
        amount = float(amount_ug)
        if not (math.isfinite(amount) and amount > 0):
            raise ModelError(f"dose amount must be a positive number of µg (got {amount_ug!r})")
        name = self.model.dose_target if state is None else state
        states = {s.name: s for s in self.model.states}
        if name not in states:
            raise ModelError(f"model {self.model.name!r} has no state {name!r}{suggest(name, states)}")
        if states[name].kind not in ("particle", "dissolved"):
            raise ModelError(f"cannot dose into {name!r}: it is a {states[name].kind} state; give a particle state such as {self.model.dose_target!r}")
        self._y[self.model.state_names.index(name)] += amount
        self._p[self._i_dose] += amount
        return self

    def set_infusion(self, rate_ug_per_h: float) -> "Integrator":
        """Infuse at ``rate_ug_per_h`` (µg/h) into the dose target from now on (0 stops it).

        Each :meth:`advance` adds ``rate · dt`` to the administered total at its start.
        """
        rate = float(rate_ug_per_h)
        if not (math.isfinite(rate) and rate >= 0):
            raise ModelError(f"infusion rate must be a finite number ≥ 0 µg/h (got {rate_ug_per_h!r})")
        self._infusion = rate
        return self

    def set_parameter(self, name: str, value: float) -> "Integrator":
        """Change parameter ``name`` to ``value`` from now on (between steps).

        ``infusion_rate`` is the same as :meth:`set_infusion`; ``dose`` cannot be set
        (it is the administered total: use :meth:`add_dose`).

        Raises
        ------
        ModelError
            For an unknown name (with the nearest valid names), ``dose``, or a
            non-finite value.
        """
        self.model.check_parameter_names([name])
        value = float(value)
        if not math.isfinite(value):
            raise ModelError(f"parameter {name!r} must be finite (got {value!r})")
        if name == DOSE:
            raise ModelError("`dose` is the total administered so far and changes only by dosing; use add_dose(amount_ug)")
        if name == INFUSION_RATE:
            return self.set_infusion(value)
        self._p[self._names.index(name)] = value
        return self

    def set_parameters(self, values: Mapping[str, float] | None = None, **kwargs) -> "Integrator":
        """Several :meth:`set_parameter` calls at once; every unknown name is reported together."""
        values = dict(values or {}, **kwargs)
        self.model.check_parameter_names(values)
        for name, value in values.items():
            self.set_parameter(name, value)
        return self

    # ------------------------------------------------------------------ stepping
    def advance(self, dt: float) -> "Integrator":
        """Integrate ``dt`` hours from the current time; returns the integrator.

        Raises
        ------
        ModelError
            If ``dt`` is not a positive finite number.
        SolverError
            If the solver fails; the message names the time reached, the mechanism
            whose rate failed with its parameters, and the parameters that differ
            from the model's defaults (:func:`nanopk.run.solver_error`).
        """
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ModelError(f"`dt` must be a positive number of hours (got {dt!r})")
        y, p = self._y.copy(), self._p.copy()
        if self._infusion > 0:
            y[self._i_depot] += self._infusion * dt
            p[self._i_dose] += self._infusion * dt
        p[self._i_inf] = self._infusion
        scale = p[self._i_dose] if p[self._i_dose] > 0 else self._scale
        t1 = self._t + dt
        y = self._runner.step(self._t, y, p, t1, self.rtol, self.atol, scale, self.max_steps)
        p[self._i_inf] = 0.0
        self._y, self._p, self._t = y, p, t1
        return self
