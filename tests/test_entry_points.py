"""A lab's own package adds a mechanism and an export format without touching nanopk.

Each test writes, into ``tmp_path`` only, a tiny installed package: two modules and a
``labplugin-0.1.dist-info`` directory whose ``entry_points.txt`` declares

    [nanopk.mechanisms]   labbind = labbind            (receptor binding)
    [nanopk.exporters]    mermaid = labexport:to_mermaid

then puts ``tmp_path`` on ``sys.path`` and clears the registries' caches, exactly what
``pip install`` of such a package does.  Files of nanopk touched: none (the fixture
writes the four files listed in ``PLUGIN_FILES`` and nothing else).

The closed form used: the receptor-binding mechanism on the one-compartment model is
Gibaldi & Perrier's two-compartment system (Pharmacokinetics, 2nd ed. 1982, ch. 2)
with k12 = k_on, k21 = k_off, k10 the elimination:

    α, β = ½[(k10 + k_on + k_off) ± √((k10 + k_on + k_off)² − 4·k10·k_off)],
    bound(t) = D·k_on·(e^(−βt) − e^(−αt)) / (α − β),
    net binding flux = d bound/dt = D·k_on·(α e^(−αt) − β e^(−βt)) / (α − β).
"""
import math
import sys
import textwrap

import numpy as np
import pytest

import nanopk
from nanopk.cli import main

LABBIND = '''
"""A lab's receptor-binding mechanism, outside nanopk."""
from nanopk.mechanisms import declare
from nanopk.parts import Flux, Parameter, Part, State, symbol


@declare(provides=("receptor_binding",))
def receptor_binding(ctx, site="liver_tissue", organ=None, k_on=0.5, k_off=0.05):
    """Particles at ``site`` bind a cell receptor at k_on·A and unbind at k_off·A_bound (1/h)."""
    organ = organ or site.split("_")[0]
    bound = f"{site}_bound"
    kon, koff = f"k_on_{site}", f"k_off_{site}"
    src = "lab measurement (illustrative)"
    return Part(
        "labbind.receptor_binding",
        states=(State(bound, "particle", organ=organ, description="receptor-bound particles"),),
        parameters=(Parameter(kon, k_on, "1/h", src, (0.0, 100.0)), Parameter(koff, k_off, "1/h", src, (0.0, 100.0))),
        fluxes=(Flux(f"binding_{site}", site, bound, symbol(kon) * symbol(site)),
                Flux(f"unbinding_{site}", bound, site, symbol(koff) * symbol(bound))),
        requires=(f"state:{site}",),
    )
'''

LABEXPORT = '''
"""A lab's exporter: the model's flux graph as a Mermaid flowchart."""
from pathlib import Path


def to_mermaid(model, path):
    lines = ["flowchart LR"] + [f"  {f.source} -->|{f.name}| {f.target}" for f in model.fluxes]
    Path(path).write_text("\\n".join(lines) + "\\n")
'''

ENTRY_POINTS = """
[nanopk.mechanisms]
labbind = labbind

[nanopk.exporters]
mermaid = labexport:to_mermaid
"""

PLUGIN_FILES = ("labbind/__init__.py", "labexport.py", "labplugin-0.1.dist-info/METADATA",
                "labplugin-0.1.dist-info/entry_points.txt")


def _clear_registries():
    from nanopk import export, mechanisms

    mechanisms.clear_registry_cache()
    export.clear_registry_cache()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The lab's package, installed into tmp_path (the only place anything is written)."""
    (tmp_path / "labbind").mkdir()
    (tmp_path / "labbind" / "__init__.py").write_text(LABBIND)
    (tmp_path / "labexport.py").write_text(LABEXPORT)
    info = tmp_path / "labplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(PLUGIN_FILES)
    monkeypatch.syspath_prepend(str(tmp_path))
    _clear_registries()
    yield tmp_path
    for name in ("labbind", "labexport"):
        sys.modules.pop(name, None)
    monkeypatch.undo()  # sys.path first, so the caches are rebuilt without the plugin
    _clear_registries()


def _spec(tmp_path, name, text):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_families_and_formats_list_the_plugin(plugin):
    """Discovery finds the entry points: the family beside nanopk's, the format after sbml, c, json, petab."""
    from nanopk.export import exporters
    from nanopk.mechanisms import families, providers_of

    assert families()["labbind"] == "labbind"
    assert "circulation" in families()
    assert list(exporters()) == ["sbml", "c", "json", "petab", "mermaid"]
    assert providers_of("receptor_binding") == ["labbind.receptor_binding"]


def test_binding_flux_matches_the_closed_form(plugin):
    """One compartment + the lab's binding: bound amount and net binding flux equal the
    two-compartment closed form (Gibaldi & Perrier 1982) to 1e-6 of the dose."""
    path = _spec(plugin, "bind1", """
        name = "bind1"
        species = "mouse"
        dose_target = "central"
        [dose]
        value = 100.0
        unit = "ug"
        source = "nominal"
        [[mechanisms]]
        use = "classic.one_compartment"
        k10 = 0.2
        [[mechanisms]]
        use = "labbind.receptor_binding"
        site = "central"
        organ = "bound"
        k_on = 0.5
        k_off = 0.05
    """)
    model = nanopk.load_model(path)
    part = next(p for p in model.parts if p.name == "labbind.receptor_binding")
    assert {"labbind", "labbind.receptor_binding", "receptor_binding"} <= set(part.provides)
    t = np.array([0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 24.0, 48.0])
    sim = model.simulate(t, states=True, rtol=1e-10, atol=1e-12)
    dose = 100.0
    k10, kon, koff = 0.2, 0.5, 0.05
    s = k10 + kon + koff
    alpha, beta = (s + math.sqrt(s * s - 4 * k10 * koff)) / 2, (s - math.sqrt(s * s - 4 * k10 * koff)) / 2
    bound = dose * kon * (np.exp(-beta * t) - np.exp(-alpha * t)) / (alpha - beta)
    flux = dose * kon * (alpha * np.exp(-alpha * t) - beta * np.exp(-beta * t)) / (alpha - beta)
    a_central, a_bound = sim["state:central"].to_numpy(), sim["state:central_bound"].to_numpy()
    np.testing.assert_allclose(a_bound, bound, atol=1e-6 * dose)
    np.testing.assert_allclose(kon * a_central - koff * a_bound, flux, atol=1e-6 * dose)
    mass = sim[[f"state:{st.name}" for st in model.states if st.is_mass]].sum(axis=1).to_numpy()
    np.testing.assert_allclose(mass, dose, atol=1e-6 * dose)


def test_binding_in_a_whole_body_model_keeps_mass_balance(plugin):
    """mouse_pbpk's mechanisms + the lab's liver binding: simulated 0-168 h, total mass = dose to 1e-6."""
    from nanopk.resources import models_dir

    text = (models_dir() / "mouse_pbpk.toml").read_text().replace('name = "mouse_pbpk"', 'name = "mouse_pbpk_bind"')
    text += '\n[[mechanisms]]\nuse = "labbind.receptor_binding"\nsite = "liver_tissue"\n'
    path = plugin / "mouse_pbpk_bind.toml"
    path.write_text(text)
    model = nanopk.load_model(path)
    sim = model.simulate(np.linspace(0.0, 168.0, 15), states=True)
    dose = sim.attrs["dose_ug"]
    mass = sim[[f"state:{st.name}" for st in model.states if st.is_mass]].sum(axis=1).to_numpy()
    np.testing.assert_allclose(mass, dose, atol=1e-6 * dose)
    assert sim["state:liver_tissue_bound"].iloc[-1] > 1e-3 * dose  # the binding did something
    # The bound particles are in the liver, so the liver observable counts them.
    assert model.observables["liver"].expr.has(nanopk.parts.symbol("liver_tissue_bound"))


def test_validate_names_the_unmet_requirement_of_the_plugin_part(plugin):
    """Binding at a site no part declares: validate() names the part, the need and says nothing provides it."""
    path = _spec(plugin, "bind_bad", """
        name = "bind_bad"
        species = "mouse"
        dose_target = "central"
        [dose]
        value = 1.0
        unit = "ug"
        source = "nominal"
        [[mechanisms]]
        use = "classic.one_compartment"
        [[mechanisms]]
        use = "labbind.receptor_binding"
        site = "spleen_tissue"
    """)
    with pytest.raises(nanopk.ModelError, match=r"part 'labbind.receptor_binding' requires 'state:spleen_tissue', which no "
                                                r"part of the model provides; no registered mechanism provides it"):
        nanopk.load_model(path)


def test_the_cli_lists_the_plugin_format_and_writes_its_file(plugin, capsys):
    """`nanopk export -h` offers --mermaid; `nanopk export MODEL --mermaid F` writes one line per flux."""
    with pytest.raises(SystemExit):
        main(["export", "-h"])
    assert "--mermaid PATH" in capsys.readouterr().out
    out = plugin / "model.mmd"
    assert main(["export", "one_compartment_iv", "--mermaid", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_text().splitlines() == ["flowchart LR", "  central -->|elimination| eliminated",
                                            "  depot -->|infusion| central"]
    again = plugin / "again.mmd"
    assert nanopk.export(nanopk.load_model("one_compartment_iv"), "mermaid", again) == [again]
    assert again.read_text() == out.read_text()


def test_without_the_plugin_nothing_of_it_remains(plugin):
    """After the package leaves sys.path (and the caches are cleared) its family and format are gone."""
    from nanopk.export import exporters
    from nanopk.mechanisms import families

    sys.path.remove(str(plugin))
    _clear_registries()
    assert "labbind" not in families() and "mermaid" not in exporters()
    sys.path.insert(0, str(plugin))  # monkeypatch.undo removes it again


def test_an_entry_point_that_reuses_a_builtin_name_is_refused_and_named(tmp_path, monkeypatch, capsys):
    """A package declaring family 'epr' or format 'json' is refused, not silently shadowed
    or dropped: using the name says which package declared it and what to do."""
    info = tmp_path / "clash-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[nanopk.mechanisms]\nepr = clash_epr\n\n[nanopk.exporters]\njson = clash:to_json\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _clear_registries()
    try:
        with pytest.raises(nanopk.SpecError, match=r"^mechanism family 'epr' is declared by nanopk \(nanopk\) and by the "
                                                   r"entry point epr = 'clash_epr' of clash; rename the entry point$"):
            nanopk.mechanisms.resolve_mechanism("epr.lin_tumour")
        assert main(["export", "one_compartment_iv"]) == 2
        assert ("--json FILE or --petab DIR; export format 'json' of the entry point json = 'clash:to_json' of clash clashes with "
                "nanopk's own; rename the entry point") in capsys.readouterr().err
        with pytest.raises(nanopk.ExportError, match=r"^export format 'json' of the entry point json = 'clash:to_json' "
                                                     r"of clash clashes with nanopk's own; rename the entry point$"):
            nanopk.export(nanopk.load_model("one_compartment_iv"), "json", tmp_path / "m.json")
    finally:
        monkeypatch.undo()
        _clear_registries()
