"""The controlled tissue vocabulary of nanopk datasets, and the spellings mapped to it.

Every dataset names its tissues with one word from :data:`TISSUES`.  Labs write the same
organ many ways ("Kidneys", "tumor", "Intestine_small", "feces"), so :func:`canonical_tissue`
maps common spellings to the controlled name: it lower-cases, turns spaces and hyphens
into underscores, then looks the result up in :data:`ALIASES`.  A name that is neither a
tissue nor an alias is unknown, and readers report it with the nearest valid names.

``serum`` is mapped to ``plasma``: for a nanoparticle the two differ only by the clotting
proteins, and the models have one ``plasma`` observable.  ``skeleton`` and ``bones`` map
to ``bone``; ``remainder``/``remaining`` (the rest of the body after the listed organs) map
to ``rest``, which is distinct from ``carcass`` (what is left after dissection, as a
study defines it).
"""
from __future__ import annotations

import difflib

__all__ = ["TISSUES", "ALIASES", "OBSERVABLES", "EXCRETA", "canonical_tissue", "tissue_names", "suggest_tissue"]

#: Controlled tissue names, each with what it means.
TISSUES: dict[str, str] = {
    "blood": "whole blood",
    "plasma": "plasma (serum is mapped here)",
    "liver": "liver",
    "spleen": "spleen",
    "kidney": "both kidneys",
    "lung": "both lungs",
    "heart": "heart",
    "brain": "brain",
    "muscle": "skeletal muscle",
    "tumour": "tumour",
    "skin": "skin",
    "bone": "bone / skeleton",
    "bone_marrow": "bone marrow",
    "adipose": "adipose tissue (fat)",
    "gi": "gastrointestinal tract as a whole (with contents unless the study says otherwise)",
    "stomach": "stomach",
    "intestine": "intestine, small and large together",
    "small_intestine": "small intestine",
    "large_intestine": "large intestine (colon)",
    "pancreas": "pancreas",
    "lymph_node": "lymph node(s)",
    "thymus": "thymus",
    "thyroid": "thyroid",
    "testis": "testes",
    "uterus": "uterus",
    "ovary": "ovaries",
    "bladder": "urinary bladder",
    "tail": "tail (injection site for tail-vein dosing)",
    "soft_tissue": "soft tissue (as a study defines it)",
    "carcass": "carcass: what remains after dissection (as a study defines it)",
    "rest": "rest of the body: every tissue not listed separately",
    "urine": "urine, cumulative amount excreted",
    "faeces": "faeces, cumulative amount excreted",
    "bile": "bile, cumulative amount excreted",
}

#: Observables shared by nanopk's models (DESIGN.md, "Public interface").
OBSERVABLES: tuple[str, ...] = (
    "blood", "plasma", "lung", "liver", "spleen", "kidney", "heart", "brain", "muscle",
    "tumour", "rest", "urine", "faeces",
)

#: Tissues that are cumulative excretions: they have no organ mass, so only amounts
#: (%ID, µg) can be converted to %ID.
EXCRETA: frozenset[str] = frozenset({"urine", "faeces", "bile"})

#: Spellings found in published tables and spreadsheets -> controlled name.
ALIASES: dict[str, str] = {
    "tumor": "tumour", "tumors": "tumour", "tumours": "tumour", "tumour_tissue": "tumour",
    "kidneys": "kidney", "lungs": "lung", "livers": "liver",
    "muscles": "muscle", "skeletal_muscle": "muscle",
    "bones": "bone", "skeleton": "bone", "femur": "bone",
    "marrow": "bone_marrow",
    "fat": "adipose", "adipose_tissue": "adipose",
    "whole_blood": "blood",
    "serum": "plasma",
    "feces": "faeces", "fecal": "faeces", "faecal": "faeces", "stool": "faeces",
    "urinary": "urine",
    "gut": "gi", "gi_tract": "gi", "gastrointestinal": "gi", "gastrointestinal_tract": "gi",
    "intestines": "intestine", "bowel": "intestine",
    "intestine_small": "small_intestine", "small_intestines": "small_intestine", "small_bowel": "small_intestine",
    "intestine_large": "large_intestine", "large_intestines": "large_intestine", "colon": "large_intestine",
    "lymph_nodes": "lymph_node", "lymphnode": "lymph_node", "lymphnodes": "lymph_node", "ln": "lymph_node",
    "testes": "testis", "testicle": "testis", "testicles": "testis",
    "ovaries": "ovary",
    "remainder": "rest", "remaining": "rest", "remaining_tissues": "rest", "rest_of_body": "rest",
    "soft": "soft_tissue", "soft_tissues": "soft_tissue",
    "hearts": "heart",
}


def _normalise(name: str) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").split())


def canonical_tissue(name: str) -> str | None:
    """The controlled name for ``name`` (``"Kidneys"`` -> ``"kidney"``), or ``None`` if unknown."""
    key = _normalise(name)
    if key in TISSUES:
        return key
    return ALIASES.get(key)


def tissue_names() -> list[str]:
    """Every spelling :func:`canonical_tissue` accepts (for "did you mean" suggestions)."""
    return list(TISSUES) + list(ALIASES)


def suggest_tissue(name: str) -> str:
    """``"; did you mean 'liver'?"`` -- nearest controlled names, through the spellings too."""
    close = difflib.get_close_matches(_normalise(name), tissue_names(), n=6, cutoff=0.6)
    names = list(dict.fromkeys(canonical_tissue(c) for c in close))[:3]
    if not names:
        return "; valid tissues: " + ", ".join(TISSUES)
    return "; did you mean " + " or ".join(repr(c) for c in names) + "?"
