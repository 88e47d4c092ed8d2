"""Built-in mechanisms declare what they require and provide; validate() names an unmet requirement."""
import re

import pytest

import nanopk
from nanopk import ModelError, SpecError
from nanopk.mechanisms import BuildContext, epr, providers_of, targeting
from nanopk.mechanisms.circulation import whole_body
from nanopk.model import Model
from nanopk.parts import unmet_requirements


@pytest.fixture(scope="module")
def full():
    """mouse_tumour_full: circulation, corona, aggregation, EPR, targeting, clearance, dissolution and MPS."""
    return nanopk.load_model("mouse_tumour_full")


def _without(model, removed: str) -> Model:
    return Model(model.name, [p for p in model.parts if p.name != removed], model.dose_target,
                 metadata=model.metadata)


def test_bundled_parts_carry_their_declarations(full):
    """Each built-in part of mouse_tumour_full carries the requirements its mechanism declares, and what it provides."""
    requires = {p.name: p.requires for p in full.parts}
    assert requires["epr.two_pore_tumour"] == ("circulation",)
    assert requires["aggregation.blood_aggregation"] == ("circulation",)
    assert requires["dissolution.phagolysosomal_dissolution+dissolution.ions"] == ("circulation",)
    assert requires["targeting.receptor_binding"] == ("epr",)
    assert requires["mps.opsonisation_uptake"] == ("circulation", "corona")
    provides = {p.name: p.provides for p in full.parts}
    assert "epr" in provides["epr.two_pore_tumour"] and "targeting" in provides["targeting.receptor_binding"]
    assert {"mps", "phagocytic_uptake"} <= set(provides["mps.opsonisation_uptake"])
    full.validate()  # every requirement met


@pytest.mark.parametrize("removed, part, need, providers", [
    ("circulation.whole_body", "epr.two_pore_tumour", "circulation", "circulation.whole_body"),
    ("circulation.whole_body", "aggregation.blood_aggregation", "circulation", "circulation.whole_body"),
    ("circulation.whole_body", "dissolution.phagolysosomal_dissolution+dissolution.ions", "circulation",
     "circulation.whole_body"),
    ("epr.two_pore_tumour", "targeting.receptor_binding", "epr", "epr.lin_tumour, epr.two_pore_tumour"),
    ("corona.blood_corona", "mps.opsonisation_uptake", "corona", "corona.blood_corona, corona.plasma_corona"),
])
def test_validate_names_the_unmet_requirement_and_its_providers(full, removed, part, need, providers):
    """A model assembled without the part a mechanism requires fails validate() with a sentence naming the part,
    the requirement and the mechanisms that provide it."""
    model = _without(full, removed)
    with pytest.raises(ModelError, match=re.escape(f"part '{part}' requires '{need}', which no part of the model "
                                                   f"provides; add one of: {providers}")) as info:
        model.validate()
    assert re.match(r"part '.+' requires '.+', which no part", info.value.problems[0])  # the cause comes first


def test_a_declared_variant_called_directly_checks_its_context():
    """Called without the registry, targeting.receptor_binding refuses a context without an EPR tumour and names both."""
    with pytest.raises(SpecError, match=r"^targeting.receptor_binding requires 'epr', which no mechanism listed before it "
                                        r"provides; list one of epr.lin_tumour, epr.two_pore_tumour before it$"):
        targeting.receptor_binding(BuildContext(species="mouse"))


def test_a_direct_call_records_what_it_provides():
    """whole_body called directly puts 'circulation' into the context, so an EPR tumour built after it carries the
    requirement, which the circulation part meets and whose absence names the provider."""
    ctx = BuildContext(species="mouse")
    circulation = whole_body(ctx)
    assert "circulation" in ctx.provided and circulation.provides == ("circulation",)
    tumour = epr.lin_tumour(ctx)
    assert tumour.requires == ("circulation",) and "epr" in ctx.provided
    assert unmet_requirements([circulation, tumour]) == []
    assert unmet_requirements([tumour], providers_of) == [
        "part 'epr.lin_tumour' requires 'circulation', which no part of the model provides; add one of: "
        "circulation.whole_body"]


def test_a_check_validate_cannot_express_stays(tmp_path):
    """EPR builds the tumour itself: a circulation that already lists 'tumour' is still refused, by the variant."""
    ctx = BuildContext(species="mouse")
    whole_body(ctx, organs=("lung", "liver", "spleen", "kidney", "tumour", "rest"))
    with pytest.raises(SpecError, match=r"epr.two_pore_tumour builds the tumour itself; remove 'tumour' from the organs"):
        epr.two_pore_tumour(ctx)
