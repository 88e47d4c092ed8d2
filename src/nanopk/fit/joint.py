"""``JointObjective``: several objectives fitted together, some parameters tied across them.

Each part is an objective of its own (the protocol of :mod:`nanopk.fit.protocol`),
with its own model, data, error model, weighting, censoring and priors — exactly as
its separate fit would have them.  The joint residual vector stacks the parts':

    r(x) = [ r_data^(1)(x_1), …, r_data^(m)(x_m),  r_prior^(1)(x_1), …, r_prior^(m)(x_m) ]

so ``Σ r²`` is the sum of the parts' ``−2 ln(likelihood × prior)``: the joint
log-likelihood of independent datasets.  ``x`` holds the tied parameters first (one
value acting in every part), then each part's other parameters (one per part, named
``NAME__<part>``).  ``x_p`` is part p's vector taken out of ``x``.

A tied parameter's prior counts once (the parts' priors on it must agree): tying
makes one parameter, and it gets one prior, as a shared parameter in a
multi-dataset :func:`nanopk.fit` does.  With nothing tied the joint fit is the
parts' separate fits side by side (the same optimum and χ²); tying a group of
parameters gives the nested model of a likelihood-ratio test, whose two χ² are then
of the same likelihood by construction.

>>> from nanopk.fit import build_objective, JointObjective, fit             # doctest: +SKIP
>>> parts = {g: build_objective(model, data[g], vary=["Kmax_liver"]) for g in data}  # doctest: +SKIP
>>> full = fit(objective=JointObjective(parts))                            # doctest: +SKIP
>>> reduced = fit(objective=JointObjective(parts, tied=["Kmax_liver"]))    # doctest: +SKIP

An objective holds counters and its last evaluation, so give each fit its own parts
(build them again) rather than reusing one part in two fits run at the same time.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from ..errors import FitError, suggest
from .protocol import DerivedMembers, check_objective

__all__ = ["JointObjective"]


def _common(values: dict):
    """One value when every part has it, else ``{dataset: value}``."""
    vals = list(values.values())
    return vals[0] if all(v == vals[0] for v in vals) else dict(values)


class JointObjective(DerivedMembers):
    """Objectives stacked into one, ``tied`` parameters common to all of them.

    Parameters
    ----------
    objectives : dict or list
        ``{label: objective}`` (labels suffix the untied parameter names:
        ``Kmax_liver__PEG``), or a list (label: the part's dataset name when it has
        one dataset, else ``part<i>``).  Two or more; dataset names distinct across
        parts; the same loss.
    tied : list of str, optional
        Parameter names (as each part names them) that take one value in every part.
        Each must be fitted in every part, on the same scale; its bounds are the
        intersection of the parts' and its start the mean of theirs on the fitted
        (log) scale.

    Raises
    ------
    FitError
        Fewer than two parts, a part without the protocol, a tied name some part does
        not fit (named, with the nearest), tied parameters on different scales or with
        disjoint bounds or different priors, datasets of the same name, different losses.
    """

    def __init__(self, objectives: Mapping | Sequence, tied: Sequence[str] = ()):
        if isinstance(objectives, Mapping):
            labels, parts = [str(k) for k in objectives], list(objectives.values())
        else:
            parts = list(objectives)
            labels = [p.datasets[0].name if len(p.datasets) == 1 else f"part{i}" for i, p in enumerate(parts)]
        if len(parts) < 2:
            raise FitError(f"JointObjective needs two or more objectives (got {len(parts)})")
        if len(set(labels)) != len(labels):
            raise FitError(f"JointObjective labels must be distinct (got {', '.join(labels)}); pass a dict {{label: objective}}")
        for p in parts:
            check_objective(p)
        tied = [tied] if isinstance(tied, str) else list(tied)
        if len(set(tied)) != len(tied):
            raise FitError(f"`tied` names a parameter more than once: {', '.join(tied)}")
        self.labels, self.parts, self.tied = labels, parts, tied
        owner: dict[str, str] = {}
        for label, p in zip(labels, parts):
            for d in p.datasets:
                if d.name in owner:
                    raise FitError(f"dataset {d.name!r} is in parts {owner[d.name]!r} and {label!r}: the datasets of a "
                                   "joint objective need distinct names (name them in the data dict)")
                owner[d.name] = label
        losses = {(p.loss, p.f_scale) for p in parts}
        if len(losses) > 1:
            raise FitError(f"the parts of a JointObjective must share one loss (got {sorted(losses)}): "
                           "scipy applies one loss to the stacked residuals")
        self._build_layout()
        self._build_priors()
        self.datasets = [d for p in parts for d in p.datasets]
        self._part_of = {d.name: k for k, p in enumerate(parts) for d in p.datasets}
        self.model = parts[0].model
        self.loss, self.f_scale = parts[0].loss, parts[0].f_scale
        self.rtol, self.atol, self.backend = parts[0].rtol, parts[0].atol, parts[0].backend
        per_dataset = lambda attr: {d.name: getattr(p, attr) for p in parts for d in p.datasets}  # noqa: E731
        self.error_model = _common(per_dataset("error_model"))
        self.weighting = _common(per_dataset("weighting"))
        self.error_params = _common(per_dataset("error_params"))
        self.check_notes = [n for p in parts for n in getattr(p, "check_notes", [])]
        # Which priors the parts applied (nanopk.fit.priors): one kind when they agree.
        infos = [getattr(p, "prior_info", None) or {"kind": "given" if p.priors else "none"} for p in parts]
        kinds = {i["kind"] for i in infos}
        self.prior_info = {"kind": kinds.pop() if len(kinds) == 1 else "given",
                           "without": {n: w for i in infos for n, w in i.get("without", {}).items()},
                           "sources": {n: w for i in infos for n, w in i.get("sources", {}).items()}}
        self.n_data = sum(p.n_data for p in parts)
        self.n_residuals = self.n_data + self.n_priors
        self.n_calls = 0
        self._lock = threading.Lock()
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._last_failure = None

    # ------------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        """``specs`` (tied first, then each part's own) and each part's indices into ``x``."""
        parts, labels = self.parts, self.labels
        for name in self.tied:
            missing = [lab for lab, p in zip(labels, parts) if name not in p.names]
            if missing:
                known = sorted({n for p in parts for n in p.names})
                raise FitError(f"tied parameter {name!r} is not fitted in part(s) {', '.join(missing)}"
                               f"{suggest(name, known)}; fitted: {', '.join(known)}")
        specs, index = [], [np.empty(len(p.names), dtype=int) for p in parts]
        for j, name in enumerate(self.tied):
            own = [p.specs[p.names.index(name)] for p in parts]
            if len({s.log for s in own}) > 1:
                raise FitError(f"tied parameter {name!r} is fitted on the log scale in some parts and not in others: "
                               "give it the same bounds in every part")
            lower, upper = max(s.lower for s in own), min(s.upper for s in own)
            if not upper > lower:
                raise FitError(f"tied parameter {name!r} has disjoint bounds across the parts "
                               f"({'; '.join(f'{lab}: [{s.lower:g}, {s.upper:g}]' for lab, s in zip(labels, own))})")
            base = replace(own[0], lower=lower, upper=upper, dataset=None)
            x0 = float(np.clip(np.mean([s.x0 for s in own]), base.xmin, base.xmax))
            specs.append(replace(base, start=min(max(base.to_natural(x0), lower), upper)))
            for p, k in zip(parts, index):
                k[p.names.index(name)] = j
        for label, p, k in zip(labels, parts, index):
            for i, s in enumerate(p.specs):
                if s.name in self.tied:
                    continue
                dataset = s.dataset if s.dataset is not None else (p.datasets[0].name if len(p.datasets) == 1 else None)
                k[i] = len(specs)
                specs.append(replace(s, name=f"{s.name}__{label}", dataset=dataset))
        self.specs = specs
        self.names = [s.name for s in specs]
        self._index = index

    def _build_priors(self) -> None:
        """Which prior rows of each part stay (a tied parameter's prior counts once)."""
        self.priors: dict = {}
        keep, seen = [], {}
        for label, p, k in zip(self.labels, self.parts, self._index):
            rows = []
            for row, i in enumerate(np.asarray(p.prior_index, dtype=int)):
                name = p.names[i]
                prior = p.priors[name]
                j = int(k[i])
                if name in self.tied:
                    if j in seen:
                        if seen[j] != prior:
                            raise FitError(f"tied parameter {name!r} has different priors in the parts "
                                           f"({seen[j]} and {prior} in {label!r}): give it one prior")
                        continue
                    seen[j] = prior
                rows.append(row)
            keep.append(np.array(rows, dtype=int))
            for name, prior in p.priors.items():  # flat priors too (no row), as Objective.priors lists them
                j = int(k[p.names.index(name)])
                self.priors.setdefault(self.names[j], prior)
        self._keep = keep
        self.n_priors = int(sum(len(r) for r in keep))
        self._prior_index = np.concatenate([k[np.asarray(p.prior_index, dtype=int)][r]
                                            for p, k, r in zip(self.parts, self._index, keep)]).astype(int)
        P = [np.asarray(p.prior_jacobian(), dtype=float)[r] for p, r in zip(self.parts, keep)]
        J = np.zeros((self.n_priors, len(self.specs)))
        row = 0
        for Pp, k in zip(P, self._index):
            for i in range(Pp.shape[1]):
                J[row:row + Pp.shape[0], k[i]] += Pp[:, i]
            row += Pp.shape[0]
        self._prior_jac = J

    def part_x(self, x, k: int) -> np.ndarray:
        """Part ``k``'s own vector taken out of the joint ``x``."""
        return np.asarray(x, dtype=float)[self._index[k]]

    # ------------------------------------------------------------------ protocol: vector
    @property
    def prior_index(self) -> np.ndarray:
        return self._prior_index.copy()

    # ------------------------------------------------------------------ protocol: residuals
    def residual(self, x) -> np.ndarray:
        """Every part's data rows in order, then the prior rows that stay."""
        x = np.array(x, dtype=float)
        with self._lock:
            self.n_calls += 1
        data, prior = [], []
        for k, p in enumerate(self.parts):
            r_data, r_prior = p.split(p.residual(self.part_x(x, k)))
            data.append(r_data)
            prior.append(r_prior[self._keep[k]])
        r = np.concatenate(data + prior)
        self._last = (x, r)
        return r

    def split(self, r) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(r, dtype=float)
        return r[: self.n_data], r[self.n_data:]

    def chisqr(self, x) -> float:
        r = self.residual(x)
        return float(r @ r)

    def prior_jacobian(self) -> np.ndarray:
        return self._prior_jac.copy()

    def with_prior_rows(self, J) -> np.ndarray:
        J = np.asarray(J, dtype=float)
        if self.n_priors and J.shape[0] == self.n_data:
            return np.vstack([J, self._prior_jac])
        return J

    def loss_value(self, r) -> float:
        return self.parts[0].loss_value(r)  # the parts share the loss: the formula only reads loss and f_scale

    def loss_weights(self, r) -> np.ndarray:
        return self.parts[0].loss_weights(r)

    # ------------------------------------------------------------------ protocol: data
    def _part(self, d) -> int:
        try:
            return self._part_of[d.name]
        except KeyError:
            raise FitError(f"dataset {d.name!r} is not in this joint objective{suggest(d.name, list(self._part_of))}") from None

    def predict(self, x) -> list[np.ndarray]:
        return [pred for k, p in enumerate(self.parts) for pred in p.predict(self.part_x(x, k))]

    def residual_from(self, d, pred) -> np.ndarray:
        return self.parts[self._part(d)].residual_from(d, pred)

    def overrides(self, x, d) -> dict:
        k = self._part(d)
        return self.parts[k].overrides(self.part_x(x, k), d)

    def model_of(self, d):
        return self.parts[self._part(d)].model_of(d)

    def simulate(self, x, d, times=None):
        k = self._part(d)
        return self.parts[k].simulate(self.part_x(x, k), d, times)

    # ------------------------------------------------------------------ protocol: counters
    @property
    def n_simulations(self) -> int:
        return sum(p.n_simulations for p in self.parts)

    @property
    def n_solver_failures(self) -> int:
        return sum(p.n_solver_failures for p in self.parts)

    @property
    def last_solver_error(self) -> str | None:
        errors = [f"{lab}: {p.last_solver_error}" for lab, p in zip(self.labels, self.parts) if p.last_solver_error]
        return "; ".join(errors) or None

    def __repr__(self) -> str:
        return (f"<JointObjective of {', '.join(self.labels)}; tied {', '.join(self.tied) or 'nothing'}; "
                f"{len(self.specs)} parameters, {self.n_data} data rows, {self.n_priors} prior rows>")
