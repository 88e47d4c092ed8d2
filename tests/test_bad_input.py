"""The bad-input catalogue (issue 17): inputs to the command line, ``simulate``, dosing,
model specs and workbooks, each with the message a user gets.

Every case is a distinct wrong input a user can type; each must end in one clear error
(a :class:`nanopk.NanopkError` in Python, one line and exit status 2 on the command
line) that names what was wrong and what would be right, before anything is solved.
Nothing here may return a number.
"""
import math
import re
from pathlib import Path

import numpy as np
import pytest

import nanopk
from nanopk import Bolus, Infusion, ModelError, SpecError
from nanopk.batch import simulate_many
from nanopk.cli import main
from nanopk.errors import DataError, NanopkError

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def mouse():
    return nanopk.load_model("mouse_pbpk")


# --------------------------------------------------------------------- command line
def test_help_lists_every_command_and_says_percent_id(capsys):
    """`nanopk --help` prints the commands (it once crashed on an unescaped %ID)."""
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "observables in %ID" in out
    for command in ("models", "datasets", "simulate", "fit", "compare", "export", "delivery", "meta"):
        assert command in out


def test_every_subcommand_has_help(capsys):
    """`nanopk CMD --help` works for every command."""
    for command in ("models", "datasets", "simulate", "fit", "compare", "export", "delivery", "meta"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0, command
    assert "usage: nanopk meta" in capsys.readouterr().out


def test_version_prints_the_package_version(capsys):
    """`nanopk --version` prints nanopk's version."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"nanopk {nanopk.__version__}"


def _broken_json(tmp: Path) -> str:
    (tmp / "broken.json").write_text("{not json")
    return str(tmp / "broken.json")


def _list_json(tmp: Path) -> str:
    (tmp / "list.json").write_text("[1, 2]")
    return str(tmp / "list.json")


def _a_folder(tmp: Path) -> str:
    (tmp / "folder").mkdir(exist_ok=True)
    return str(tmp / "folder")


CLI_CASES = [
    (["simulate", "mouse_pbpk", "--param", "Kmax_liver=-2", "--times", "1,24,168,1000"],
     r"parameter 'Kmax_liver' value -2\.0 lies outside its bounds \[0, 100\] 1/h"),
    (["simulate", "mouse_pbpk", "--param", "n_liver=50,K50_liver=1e5"],
     r"2 parameter value\(s\) outside what the model admits:\n  - parameter 'n_liver' value 50\.0 lies outside its bounds "
     r"\[0\.1, 10\] dimensionless\n  - parameter 'K50_liver' value 100000\.0 lies outside its bounds \[0\.1, 1000\] h"),
    (["simulate", "mouse_pbpk", "--param", "Kmax_liver=nan"], r"parameter 'Kmax_liver' has a non-finite value nan"),
    (["simulate", "mouse_pbpk", "--param", "Kmax_livr=1"], r"no parameter\(s\) 'Kmax_livr'\n  - 'Kmax_livr'; did you mean 'Kmax_liver'"),
    (["simulate", "mouse_pbpk", "--param", "Kmax_liver=fast"], r"--param Kmax_liver: 'fast' is not a number"),
    (["simulate", "mouse_pbpk", "--param", "dose=0"], r"parameter 'dose' value 0\.0 lies outside its bounds"),
    (["simulate", "mouse_pbpk", "--times=-1,2"], r"`times_h` must be finite and ≥ 0"),
    (["simulate", "mouse_pbpk", "--times", "24,1"], r"`times_h` must be increasing"),
    (["simulate", "mouse_pbpk", "--times", "0:168"], r"--times '0:168': give comma-separated hours"),
    (["simulate", "mouse_pbpk", "--out", "/nonexistent-folder/sim.csv"],
     r"--out /nonexistent-folder/sim\.csv: the folder '/nonexistent-folder' does not exist"),
    (["simulate", "mouse_pbpk", "--json", "/nonexistent-folder/sim.json"],
     r"--json /nonexistent-folder/sim\.json: the folder '/nonexistent-folder' does not exist"),
    (["simulate", "mouse_pbpk", "--out", "{folder}"], r"--out .*folder: is a folder; give a file name"),
    (["export", "mouse_pbpk", "--sbml", "/nonexistent-folder/m.xml"], r"--sbml /nonexistent-folder/m\.xml: the folder"),
    (["export", "mouse_pbpk", "--c", "/nonexistent-folder/c"], r"--c /nonexistent-folder/c: the folder '/nonexistent-folder'"),
    (["delivery", "{broken}"], r"broken\.json is not a fit JSON that nanopk wrote \(Expecting property name"),
    (["delivery", "{list}"], r"list\.json holds no 'delivery' entry"),
    (["fit", "cho2010_peg_au_13nm", "--model", "mouse_pbpk", "--json", "/nonexistent-folder/fit.json"],
     r"--json /nonexistent-folder/fit\.json: the folder '/nonexistent-folder' does not exist"),
]


@pytest.mark.parametrize("argv, message", CLI_CASES, ids=[" ".join(a)[:60] for a, _ in CLI_CASES])
def test_command_line_refuses_with_one_line_and_exit_2(argv, message, tmp_path, capsys):
    """Each bad command line ends in `nanopk CMD: error: ...` with exit status 2, no traceback, nothing printed to stdout."""
    argv = [a.format(broken=_broken_json(tmp_path), list=_list_json(tmp_path), folder=_a_folder(tmp_path)) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert re.search(message, captured.err), captured.err
    assert captured.err.startswith(f"nanopk {argv[0]}: ")
    assert "Traceback" not in captured.err
    assert "%ID]" not in captured.out  # no table of numbers was printed


def test_an_io_error_while_writing_is_one_line(tmp_path, capsys):
    """A write the folder check cannot foresee (a path under /proc) fails with the path and the reason, exit 2."""
    assert main(["simulate", "mouse_pbpk", "--out", "/proc/nanopk-sim.csv"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"nanopk simulate: error: cannot read or write '/proc/nanopk-sim\.csv': \w+", err), err


# --------------------------------------------------------------------- dosing
DOSES = [
    ("0 ug", r"dose must be a finite positive amount \(got 0 ug\)"),
    ("-5 ug", r"dose must be a finite positive amount \(got -5 ug\)"),
    ("nan ug", r"dose must be a finite positive amount \(got nan ug\)"),
    ("inf mg/kg", r"dose must be a finite positive amount \(got inf mg/kg\)"),
    ("x ug", r"dose 'x ug' must read 'VALUE UNIT'"),
    ("5 furlongs", r"cannot use dose 5 furlongs"),
    (0, r"dose amount must be a finite positive number of µg \(got 0\)"),
    (-1.0, r"dose amount must be a finite positive number of µg \(got -1\.0\)"),
    (math.nan, r"dose amount must be a finite positive number of µg \(got nan\)"),
    (math.inf, r"dose amount must be a finite positive number of µg \(got inf\)"),
    (Infusion(20, duration_h=math.inf), r"infusion: duration_h must be finite and > 0 h \(got inf\)"),
    (Infusion(20, duration_h=0), r"infusion: duration_h must be finite and > 0 h \(got 0\)"),
    (Infusion(20, duration_h=2, start_h=math.nan), r"infusion: start_h must be finite and ≥ 0 h \(got nan\)"),
    (Infusion(-20, duration_h=2), r"dose amount must be a finite positive number of µg \(got -20\)"),
    (Bolus(20, time_h=math.nan), r"bolus: time_h must be finite and ≥ 0 h \(got nan\)"),
    (Bolus(20, time_h=-1), r"bolus: time_h must be finite and ≥ 0 h \(got -1\)"),
    (Bolus(20, time_h=math.inf), r"bolus: time_h must be finite and ≥ 0 h \(got inf\)"),
    ([Bolus(20), Bolus(20, time_h="noon")], r"dosing event 2 \(Bolus\): time_h must be a number of hours \(got 'noon'\)"),
    ([Bolus(20), "20 ug"], r"dosing events must be Bolus or Infusion \(got str\)"),
    ([], r"a dosing regimen needs at least one bolus or infusion"),
    (Bolus([20]), r"dose amount must be a positive number of µg or a string such as '20 ug' \(got \[20\]\)"),
]


@pytest.mark.parametrize("dose, message", DOSES, ids=[repr(d)[:40] for d, _ in DOSES])
def test_a_dose_that_is_not_a_finite_positive_regimen_is_refused_before_solving(mouse, dose, message):
    """Zero, negative, NaN and infinite doses, times and durations are named (they once ended in CVODE flag -22 or were counted but never given)."""
    with pytest.raises(ModelError, match=message):
        mouse.simulate([1.0, 24.0], dose=dose)


def test_a_bolus_never_given_is_not_counted(mouse):
    """Regression: Bolus(20, time_h=nan) was never given yet counted in %ID; two valid boluses keep total at 100 %ID."""
    sim = mouse.simulate([1.0, 30.0], dose=[Bolus(20), Bolus(20, time_h=24)])
    np.testing.assert_allclose(sim["total"], 100.0, rtol=1e-6)
    assert sim.attrs["dose_ug"] == pytest.approx(40.0, rel=1e-12)


# --------------------------------------------------------------------- parameters, every path
def test_simulate_many_names_the_parameter_set(mouse):
    """A bad set among many is named by its index before any simulation runs."""
    with pytest.raises(ModelError, match=r"(?s)param_sets\[1\]: .*parameter 'Kmax_liver' value -1\.0 lies outside its bounds"):
        simulate_many(mouse, [1.0, 24.0], [{"Kmax_liver": 0.5}, {"Kmax_liver": -1.0}], workers=1)


def test_the_stepping_api_checks_parameters_like_simulate(mouse):
    """Integrator(params=...) refuses the values simulate refuses."""
    with pytest.raises(ModelError, match=r"parameter 'n_liver' value 50\.0 lies outside its bounds \[0\.1, 10\]"):
        mouse.integrator(params={"n_liver": 50.0})


def test_with_parameters_and_simulate_refuse_the_same_value(mouse):
    """One validation: with_parameters (the fit path) and simulate(params=) refuse Kmax_liver = -2 alike."""
    with pytest.raises(ModelError, match=r"'Kmax_liver'.*-2\.0 lies outside its bounds \[0, 100\] 1/h"):
        mouse.with_parameters(Kmax_liver=-2.0).validate()
    with pytest.raises(ModelError, match=r"'Kmax_liver' value -2\.0 lies outside its bounds \[0, 100\] 1/h"):
        mouse.simulate([1.0], params={"Kmax_liver": -2.0})


def test_a_parameter_value_that_is_not_a_number_is_named(mouse):
    """A string where a number belongs is named, not a numpy ValueError."""
    with pytest.raises(ModelError, match=r"parameter 'Kmax_liver' value 'fast' is not a number"):
        mouse.simulate([1.0], params={"Kmax_liver": "fast"})


# --------------------------------------------------------------------- model specs
def _spec(tmp_path: Path, override: str) -> Path:
    text = (MODELS / "mouse_pbpk.toml").read_text() + "\n" + override
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_a_spec_override_in_another_unit_is_converted(tmp_path):
    """`Kmax_liver = 1 1/min` becomes 60 1/h: the model's unit, in the simulation and in every export."""
    path = _spec(tmp_path, '[parameters.Kmax_liver]\nvalue = 1\nunit = "1/min"\nsource = "test"\n')
    model = nanopk.load_model(path)
    param = model.parameters["Kmax_liver"]
    assert param.unit == "1/h"
    assert param.value == pytest.approx(60.0, rel=1e-12)
    reference = nanopk.load_model("mouse_pbpk").simulate([24.0], params={"Kmax_liver": 60.0})
    np.testing.assert_allclose(model.simulate([24.0]).to_numpy(), reference.to_numpy(), rtol=1e-12)


def test_the_exported_sbml_declares_the_value_the_simulation_uses(tmp_path):
    """The SBML export of a spec with a 1/min override carries 60 per hour, as the simulation does (it once declared per_min with 1: a 60x error)."""
    libsbml = pytest.importorskip("libsbml")
    model = nanopk.load_model(_spec(tmp_path, '[parameters.Kmax_liver]\nvalue = 1\nunit = "1/min"\nsource = "test"\n'))
    out = tmp_path / "m.xml"
    nanopk.to_sbml(model, out)
    sbml = libsbml.readSBMLFromFile(str(out)).getModel()
    p = sbml.getParameter("Kmax_liver")
    assert p.getValue() == pytest.approx(60.0, rel=1e-12)
    unit = sbml.getUnitDefinition(p.getUnits())
    (u,) = [unit.getUnit(i) for i in range(unit.getNumUnits())]
    # one unit of time with exponent -1, in hours (3600 s)
    assert u.getKind() == libsbml.UNIT_KIND_SECOND and u.getExponent() == -1
    assert u.getMultiplier() * 10 ** u.getScale() == pytest.approx(3600.0)


SPEC_CASES = [
    ('[parameters.Kmax_liver]\nvalue = 5\nunit = "mg"\nsource = "test"\n',
     r"parameters\.Kmax_liver: unit 'mg' is not convertible to the model's unit '1/h'"),
    ('[parameters.Kmax_liver]\nvalue = 5\nunit = "per_fortnight_x"\nsource = "test"\n',
     r"parameters\.Kmax_liver: unknown unit 'per_fortnight_x'"),
    ('[parameters.Kmax_liver]\nvalue = -5\nsource = "test"\n',
     r"parameters\.Kmax_liver: parameter 'Kmax_liver' value -5\.0 lies outside its bounds \[0, 100\] 1/h"),
    ('[parameters.Kmax_liver]\nvalue = "fast"\nsource = "test"\n', r"parameters\.Kmax_liver: could not convert string to float"),
]


@pytest.mark.parametrize("override, message", SPEC_CASES, ids=["dimension", "unknown unit", "negative", "text"])
def test_a_bad_spec_override_is_refused_with_its_key(tmp_path, override, message):
    """Overrides with a unit of another dimension, an unknown unit, or a value outside bounds are refused naming the key."""
    with pytest.raises(SpecError, match=message):
        nanopk.load_model(_spec(tmp_path, override))


def test_a_spec_with_a_zero_dose_is_refused(tmp_path):
    """A spec's default dose of 0 would make every %ID a division by zero."""
    text = (MODELS / "mouse_pbpk.toml").read_text().replace("value = 0.85", "value = 0", 1)
    path = tmp_path / "zero.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=r"dose: dose must be a finite positive amount \(got 0 mg/kg\)"):
        nanopk.load_model(path)


# --------------------------------------------------------------------- workbooks
@pytest.fixture
def workbook(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "notes"
    ws.append(["this sheet has notes, not data"])
    data = wb.create_sheet("biodistribution")
    data.append(["time", "tissue", "value"])
    for t, v in ((1, 40.0), (24, 20.0)):
        data.append([t, "blood", v])
    path = tmp_path / "study.xlsx"
    wb.save(path)
    (tmp_path / "study.json").write_text('{"name": "study", "source": {"citation": "test workbook", "doi": "10.0000/test"}, "species": "mouse", "value_unit": "%ID", "time_unit": "h", '
                                         '"dose": {"value": 1, "unit": "mg/kg"}, "body_weight_g": 20, "route": "iv"}')
    return path


SHEETS = [
    (None, r"study\.xlsx has 2 sheets \('notes', 'biodistribution'\); choose one with sheet=NAME \(--sheet NAME"),
    ("biodistributon", r"study\.xlsx has no sheet 'biodistributon'; did you mean 'biodistribution'\?"),
    (5, r"sheet index 5 is out of range: study\.xlsx has 2 sheet\(s\)"),
]


@pytest.mark.parametrize("sheet, message", SHEETS, ids=["several", "misspelt", "index"])
def test_a_workbook_sheet_must_be_named_when_ambiguous_or_missing(workbook, sheet, message):
    """Several sheets and no choice, an unknown sheet name, an index past the end: each named, never the first sheet silently."""
    with pytest.raises(DataError, match=message):
        nanopk.read_dataset(workbook, sheet=sheet)


def test_the_sheet_can_be_chosen_by_name_or_index_text(workbook):
    """--sheet 1 (text) and sheet='biodistribution' read the same two blood points."""
    by_name = nanopk.read_dataset(workbook, sheet="biodistribution")
    by_index = nanopk.read_dataset(workbook, sheet="1")
    assert list(by_name.table["value"]) == list(by_index.table["value"]) == [40.0, 20.0]


def test_a_file_that_is_not_a_workbook_is_named(tmp_path):
    """A CSV renamed .xlsx is reported as not a workbook, with what to do."""
    path = tmp_path / "fake.xlsx"
    path.write_text("time,tissue,value\n1,blood,40\n")
    with pytest.raises(DataError, match=r"cannot read fake\.xlsx as an \.xlsx workbook \(BadZipFile"):
        nanopk.read_dataset(path)


def test_the_command_line_passes_the_sheet(workbook, capsys):
    """`nanopk fit study.xlsx` without --sheet stops with the sheet names, exit 2."""
    assert main(["fit", str(workbook), "--model", "one_compartment_iv"]) == 2
    assert "choose one with sheet=NAME (--sheet NAME" in capsys.readouterr().err


def test_every_error_here_is_a_nanopk_error():
    """The catalogue's errors are all catchable as NanopkError (and ValueError for bad input)."""
    assert issubclass(ModelError, NanopkError) and issubclass(ModelError, ValueError)
    assert issubclass(DataError, NanopkError) and issubclass(SpecError, ModelError)


def test_a_value_a_few_ulps_past_a_bound_is_the_bound(mouse):
    """10**log10(hi) lands one ulp past hi: accepted (1e-12 relative slack), while 1e-9 past it is refused."""
    hi = mouse.parameters["n_liver"].bounds[1]
    mouse.simulate([1.0], params={"n_liver": hi * (1 + 2e-16)})
    with pytest.raises(ModelError, match=r"parameter 'n_liver' value 10\.00000001 lies outside its bounds"):
        mouse.simulate([1.0], params={"n_liver": hi * (1 + 1e-9)})
