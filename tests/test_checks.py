"""Plausibility rules of nanopk.data.checks: each rule firing and not firing, with its rows and severity."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanopk
from nanopk.cli import main
from nanopk.data import CheckReport, check_dataset, read_dataset
from nanopk.data.checks import (BODY_WEIGHT_G, RULES, _days_labelled_hours, _hours_labelled_days,
                                check_fit_arguments)
from nanopk.errors import DataError, FitError
from nanopk.fit import FitWarning
from nanopk.spec import load_model

META = {
    "name": "toy", "source": {"citation": "synthetic test data", "doi": None}, "species": "mouse",
    "body_weight_g": 20, "route": "iv", "dose": {"value": 20, "unit": "ug"}, "time_unit": "h", "value_unit": "%ID",
}


def write(tmp_path, rows, name="toy", **meta):
    """A long CSV (time, tissue, value) and its sidecar in tmp_path; data row i is file row i + 2."""
    path = tmp_path / f"{name}.csv"
    path.write_text("time,tissue,value\n" + "".join(f"{t},{tissue},{v}\n" for t, tissue, v in rows))
    side = {**META, "name": name, **meta}
    side = {k: v for k, v in side.items() if v is not None}
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


GOOD = [(1, "blood", 40), (1, "liver", 30), (24, "blood", 5), (24, "liver", 50), (168, "liver", 40)]


def rule(report, rid):
    return report[rid]


# ---------------------------------------------------------------------- report object
def test_report_lists_every_rule_in_order(tmp_path):
    """A report has one result per rule, in RULES order, printable and as a frame."""
    report = check_dataset(write(tmp_path, GOOD), "mouse_pbpk", vary=["Kmax_liver"], fixed={})
    assert isinstance(report, CheckReport)
    assert [r.id for r in report] == list(RULES)
    text = str(report)
    for rid, (name, _) in RULES.items():
        assert f"{rid} {name}:" in text
    assert text.splitlines()[-1] == "0 FAIL, 0 WARN, 10 rules"
    frame = report.to_frame()
    assert list(frame.columns) == ["id", "name", "severity", "description", "message", "rows", "column"]
    assert list(frame["severity"]) == ["OK"] * 8 + ["SKIP", "OK"]  # M4: mouse_pbpk has no particle
    assert report.failed == () and report.warnings == () and report.ok
    with pytest.raises(KeyError, match="no rule 'X9'; rules: D1, D2"):
        report["X9"]


def test_exported_from_nanopk():
    """check_dataset is reachable as nanopk.check_dataset and nanopk.data.check_dataset."""
    assert nanopk.check_dataset is check_dataset


# ---------------------------------------------------------------------- D1 organ_max
def test_d1_fails_above_105(tmp_path):
    """A liver at 120 %ID is FAIL on its row (file row 3)."""
    report = check_dataset(write(tmp_path, [(1, "blood", 10), (1, "liver", 120), (24, "liver", 60)]))
    r = report["D1"]
    assert (r.severity, r.rows, r.column) == ("FAIL", (3,), "value")
    assert "liver 120 %ID at 1 h (row 3)" in r.message
    assert report.failed == (r,) + ((report["D2"],) if report["D2"].severity == "FAIL" else ())


def test_d1_warns_between_100_and_105(tmp_path):
    """102 %ID is within the 5 %ID tolerance: WARN, not FAIL."""
    r = check_dataset(write(tmp_path, [(1, "liver", 102), (24, "liver", 60)]))["D1"]
    assert (r.severity, r.rows) == ("WARN", (2,))


def test_d1_uses_the_datasets_conversion(tmp_path):
    """%ID/g is converted with the organ mass: 1000 %ID/g × (0.055 × 20 g) = 1100 %ID is FAIL (Brown 1997 liver 5.5 % BW)."""
    r = check_dataset(write(tmp_path, [(1, "liver", 1000), (24, "liver", 10)], value_unit="%ID/g"))["D1"]
    assert r.severity == "FAIL" and r.rows == (2,)
    assert "liver 1100 %ID" in r.message and "physiology:mouse" in r.message


def test_d1_ok(tmp_path):
    """Values below 100 %ID pass and the largest is reported."""
    r = check_dataset(write(tmp_path, GOOD))["D1"]
    assert r.severity == "OK" and r.message == "largest value 50 %ID (5 rows)"


# ---------------------------------------------------------------------- D2 organ_sum
def test_d2_organs_without_blood_fail(tmp_path):
    """Liver 60 + spleen 50 = 110 %ID at one time is FAIL on both rows."""
    r = check_dataset(write(tmp_path, [(1, "liver", 60), (1, "spleen", 50), (24, "liver", 60)]))["D2"]
    assert (r.severity, r.rows) == ("FAIL", (2, 3))
    assert "1 h: organs 110 %ID without blood (liver, spleen)" in r.message


def test_d2_blood_overlap_allowance(tmp_path):
    """Blood 80 + liver 30 = 110 %ID is within the liver's capillary blood share (0.055·0.31/0.06 of 80 = 22.7 %ID): OK."""
    r = check_dataset(write(tmp_path, [(1, "blood", 80), (1, "liver", 30)]))["D2"]
    assert r.severity == "OK"
    assert r.message.startswith("largest sum 110 %ID at 1 h")


def test_d2_blood_beyond_allowance_warns(tmp_path):
    """Blood 80 + liver 50 = 130 %ID exceeds 105 + 22.73 %ID: WARN on both rows."""
    r = check_dataset(write(tmp_path, [(1, "blood", 80), (1, "liver", 50)]))["D2"]
    assert (r.severity, r.rows) == ("WARN", (2, 3))
    assert "1 h: 130 %ID with blood 80 %ID (the organs' capillary blood accounts for at most 22.7 %ID of it)" in r.message


def test_d2_counts_contained_tissues_once(tmp_path):
    """Plasma is inside blood and stomach inside gi: blood 60, plasma 50, gi 40, stomach 30, liver 5 sum to 105, not 185."""
    rows = [(1, "blood", 60), (1, "plasma", 50), (1, "gi", 40), (1, "stomach", 30), (1, "liver", 5)]
    r = check_dataset(write(tmp_path, rows))["D2"]
    assert r.severity == "OK" and r.message.startswith("largest sum 105 %ID at 1 h")


def test_d2_per_group(tmp_path):
    """Groups are summed separately: two groups of 60 %ID liver at one time do not add up."""
    path = tmp_path / "g.csv"
    path.write_text("time,tissue,value,group\n1,liver,60,a\n1,liver,60,b\n")
    path.with_suffix(".json").write_text(json.dumps({**META, "name": "g"}))
    assert check_dataset(path)["D2"].severity == "OK"


# ---------------------------------------------------------------------- D3 percent_id
def test_d3_unconvertible_rows(tmp_path):
    """%ID/g of a tissue without an organ mass cannot become %ID: WARN on its rows, OK if the model has no such observable."""
    path = write(tmp_path, [(1, "liver", 10), (1, "lymph_node", 5), (24, "lymph_node", 3)], value_unit="%ID/g")
    r = check_dataset(path)["D3"]
    assert (r.severity, r.rows) == ("WARN", (3, 4))
    assert "no organ mass for tissue 'lymph_node'" in r.message
    with_model = check_dataset(path, "mouse_pbpk")["D3"]
    assert with_model.severity == "OK" and "model 'mouse_pbpk' has no such observable" in with_model.message


# ---------------------------------------------------------------------- D4 body_weight
@pytest.mark.parametrize("species, bw, severity", [
    ("mouse", 0.02, "FAIL"), ("mouse", 20000, "FAIL"), ("mouse", 12, "WARN"), ("mouse", 25, "OK"),
    ("rat", 250, "OK"), ("rat", 0.25, "FAIL"), ("rat", 1000, "WARN"),
    ("human", 70000, "OK"), ("human", 70, "FAIL"),
])
def test_d4_body_weight(tmp_path, species, bw, severity):
    """Body weight against the species' typical (WARN) and possible (FAIL) ranges of BODY_WEIGHT_G."""
    r = check_dataset(write(tmp_path, GOOD, species=species, body_weight_g=bw))["D4"]
    assert r.severity == severity and r.column == "body_weight_g"


def test_d4_messages(tmp_path):
    """A kg value in the gram field is named, with the grams it would be."""
    r = check_dataset(write(tmp_path, GOOD, body_weight_g=0.02))["D4"]
    assert r.message.startswith("body_weight_g 0.02 g is not a possible mouse weight (possible 2-150 g, typical 15-60 g;")
    assert r.message.endswith("body_weight_g is in grams (20 g if the value is in kg)")
    assert check_dataset(write(tmp_path, GOOD, body_weight_g=None))["D4"].severity == "SKIP"
    assert BODY_WEIGHT_G["mouse"]["possible"] == (2.0, 150.0)


# ---------------------------------------------------------------------- D5 time_unit
def test_d5_days_labelled_hours(tmp_path):
    """Times 1, 3, 7 labelled h look like days: WARN on every row."""
    r = check_dataset(write(tmp_path, [(1, "liver", 30), (3, "liver", 40), (7, "liver", 35)]))["D5"]
    assert (r.severity, r.rows, r.column) == ("WARN", (2, 3, 4), "time")
    assert r.message.startswith("times 1, 3, 7 are labelled 'h' but look like days")


def test_d5_hours_labelled_days(tmp_path):
    """Times 1, 4, 24, 168 labelled d look like hours: WARN."""
    rows = [(1, "liver", 30), (4, "liver", 40), (24, "liver", 35), (168, "liver", 30)]
    r = check_dataset(write(tmp_path, rows, time_unit="d"))["D5"]
    assert r.severity == "WARN" and "look like hours" in r.message


@pytest.mark.parametrize("times", [[0.5, 4, 24, 168], [1, 2, 4, 8], [1, 4, 24], [1, 2, 4, 6]])
def test_d5_hour_schedules_pass(tmp_path, times):
    """Usual hour schedules are not taken for days."""
    r = check_dataset(write(tmp_path, [(t, "liver", 30) for t in times]))["D5"]
    assert r.severity == "OK"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28]), min_size=1, max_size=6),
       st.sampled_from([7, 14, 21, 28]))
def test_d5_heuristic_days(schedule, weekly):
    """Any whole-day schedule with a weekly mark is flagged; adding a fraction or a time above 31 unflags it."""
    times = sorted(set(schedule) | {weekly, 1})
    assert _days_labelled_hours(times)
    assert not _days_labelled_hours(times + [0.5])
    assert not _days_labelled_hours(times + [48])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 5000, allow_nan=False), min_size=1, max_size=8))
def test_d5_hours_marks_need_two(times):
    """Times labelled d are flagged only with at least two hour marks (24, 48, 72, 96, 168)."""
    marks = {24.0, 48.0, 72.0, 96.0, 168.0}
    assert _hours_labelled_days(times) == (len(marks & set(times)) >= 2)


# ---------------------------------------------------------------------- M1 species, M2 route
def test_m1_species(tmp_path):
    """A rat dataset with a mouse model is FAIL; without a model the rule is SKIP."""
    path = write(tmp_path, GOOD, species="rat", body_weight_g=250)
    r = check_dataset(path, "mouse_pbpk")["M1"]
    assert r.severity == "FAIL"
    assert r.message.startswith("the dataset is 'rat' (sidecar species) but model 'mouse_pbpk' is 'mouse'")
    assert check_dataset(path)["M1"].severity == "SKIP"
    assert check_dataset(path, "rat_pbpk")["M1"].severity == "OK"


@pytest.mark.parametrize("route, severity", [
    ("iv", "OK"), ("Intravenous", "OK"), ("tail vein", "OK"), ("oral", "FAIL"), ("i.p.", "FAIL"),
    ("inhalation", "FAIL"), ("intravitreal", "WARN"),
])
def test_m2_route(tmp_path, route, severity):
    """The bundled models are dosed IV into blood: other routes FAIL, unknown spellings WARN."""
    r = check_dataset(write(tmp_path, GOOD, route=route), "mouse_pbpk")["M2"]
    assert r.severity == severity and r.column == "route"


def test_m2_message(tmp_path):
    """The FAIL names the route and the model's dose target."""
    r = check_dataset(write(tmp_path, GOOD, route="oral"), "mouse_pbpk")["M2"]
    assert r.message.startswith("the dataset's route is 'oral' (oral) but model 'mouse_pbpk' is dosed iv into 'venous_blood'")


# ---------------------------------------------------------------------- M3/M4 particle
def test_m3_particle_on_mouse_pbpk(tmp_path):
    """mouse_pbpk reads no particle field: --particle on it is WARN naming the fields given."""
    text = "material=Au,core_diameter_nm=13,zeta_mV=-20"
    model = load_model("mouse_pbpk", particle=text)
    r = check_dataset(write(tmp_path, GOOD), model, particle=text)["M3"]
    assert r.severity == "WARN"
    assert r.message.startswith("model 'mouse_pbpk' reads no particle field, so material, core_diameter_nm, zeta_mV change nothing")
    # without particle= the fields are those that differ from the defaults
    assert "core_diameter_nm, zeta_mV change nothing" in check_dataset(write(tmp_path, GOOD), model)["M3"].message


def test_m3_unread_fields_of_full_model(tmp_path):
    """mouse_tumour_full reads size, coating, material and targeting but not zeta_mV or shape; the model's
    note names the same fields (one record: model.metadata["particle_fields_read"])."""
    text = "material=Au,core_diameter_nm=30,coating=PEG,coating_mw_da=5000,zeta_mV=-20,shape=rod,targeting=active"
    model = load_model("mouse_tumour_full", particle=text)
    r = check_dataset(write(tmp_path, GOOD), model, particle=text)["M3"]
    assert r.severity == "WARN"
    assert r.message == ("model 'mouse_tumour_full' does not read particle field(s) zeta_mV, shape: they change "
                         "no parameter; it reads coating, coating_mw_da, core_diameter_nm, material, targeting")
    assert ("particle: model 'mouse_tumour_full' ignores shape='rod', zeta_mV=-20.0: none of its mechanisms reads them, "
            "so they change nothing") in model.notes


def test_m3_ok_when_every_field_is_read(tmp_path):
    """Size and coating on mouse_tumour_full are read: OK."""
    text = "material=Au,core_diameter_nm=30,coating=PEG,coating_mw_da=5000"
    r = check_dataset(write(tmp_path, GOOD), load_model("mouse_tumour_full", particle=text), particle=text)["M3"]
    assert r.severity == "OK"


def test_m4_particle_mismatch():
    """mouse_tumour_full with its 15 nm default against the 50 nm Arnida 2010 data is WARN, with the --particle to use."""
    report = check_dataset("arnida2010_peg_au_sphere_50nm", "mouse_tumour_full")
    r = report["M4"]
    assert r.severity == "WARN"
    assert "core_diameter_nm 15.0 (dataset 50)" in r.message
    assert r.message.endswith("--particle material=Au,core_diameter_nm=50,hydrodynamic_diameter_nm=88.85,coating=PEG,"
                              "coating_mw_da=5000,targeting=passive")
    fixed = load_model("mouse_tumour_full", particle=r.message.split("--particle ")[1])
    assert check_dataset("arnida2010_peg_au_sphere_50nm", fixed)["M4"].severity == "OK"


# ---------------------------------------------------------------------- F1 fixed_and_varied
def test_f1(tmp_path):
    """A parameter both held and varied is FAIL; disjoint sets are OK; none given is SKIP."""
    path = write(tmp_path, GOOD)
    r = check_dataset(path, vary=["Kmax_liver", "K50_liver"], fixed={"Kmax_liver": 2.0})["F1"]
    assert r.severity == "FAIL"
    assert r.message.startswith("'Kmax_liver' is both held (--param Kmax_liver=2) and varied (--vary)")
    assert check_dataset(path, vary=["K50_liver"], fixed={"Kmax_liver": 2.0})["F1"].severity == "OK"
    assert check_dataset(path)["F1"].severity == "SKIP"
    with pytest.raises(FitError, match=r"\[F1 fixed_and_varied\] 'Kmax_liver' is both held"):
        check_fit_arguments(["Kmax_liver"], {"Kmax_liver": 2.0})


# ---------------------------------------------------------------------- accepted_checks
def test_accepted_check_turns_fail_into_warn(tmp_path):
    """A sidecar's accepted_checks reason demotes that data rule's FAIL to WARN and leads its message."""
    path = write(tmp_path, [(1, "liver", 120)], accepted_checks={"D1": "digitised as published"})
    r = check_dataset(path)["D1"]
    assert r.severity == "WARN" and r.message.startswith("accepted by the sidecar (digitised as published): 1 value(s)")


def test_accepted_checks_must_name_data_rules(tmp_path):
    """Model rules cannot be accepted by a dataset, and a reason is required."""
    path = write(tmp_path, GOOD, accepted_checks={"M1": "x", "D1": ""})
    with pytest.raises(DataError, match=r"accepted_checks names 'M1', which is not a data rule; valid: D1, D2, D3, D4, D5"):
        check_dataset(path)
    with pytest.raises(DataError, match=r"accepted_checks\['D1'\] must give the reason as text"):
        check_dataset(path)


def test_bundled_cho_is_accepted():
    """Cho 2010 13 nm liver exceeds 100 %ID (the sidecar's mass-balance caveat): WARN by acceptance, rows 12-15."""
    r = check_dataset("cho2010_peg_au_13nm", "mouse_pbpk")["D1"]
    assert r.severity == "WARN" and r.rows == (12, 13, 14, 15)
    assert "liver 246.8 %ID at 168 h (row 12)" in r.message


# ---------------------------------------------------------------------- fit hook
def test_fit_refuses_on_fail(tmp_path):
    """fit() raises DataError listing the failed rules before fitting."""
    path = write(tmp_path, [(1, "blood", 20), (1, "liver", 120), (24, "liver", 60)], route="oral")
    with pytest.raises(DataError, match=r"(?s)3 problem\(s\) in .*toy.csv:\n  - \[D1 organ_max\] 1 value\(s\) above 100 %ID.*"
                                        r"\[D2 organ_sum\].*\[M2 route\] the dataset's route is 'oral'.*"
                                        r"`nanopk check .*toy.csv --model mouse_pbpk` lists every rule; "
                                        r"fit\(..., checks=False\) fits anyway"):
        nanopk.fit("mouse_pbpk", read_dataset(path), vary=["Kmax_liver"])


def test_fit_warns_and_checks_false(tmp_path):
    """A WARN rule is in the fit's warnings; checks=False leaves it out."""
    path = write(tmp_path, [(1, "blood", 30), (3, "blood", 10), (7, "blood", 2), (1, "liver", 30), (3, "liver", 40),
                            (7, "liver", 35)])
    ds = read_dataset(path)
    with pytest.warns(FitWarning, match=r"check D5 time_unit on dataset 'toy': times 1, 3, 7 are labelled 'h'"):
        result = nanopk.fit("mouse_pbpk", ds, vary=["Kmax_liver"], uncertainty=False)
    assert any(w.startswith("check D5 time_unit") for w in result.warnings)
    quiet = nanopk.fit("mouse_pbpk", ds, vary=["Kmax_liver"], uncertainty=False, checks=False, warn=False)
    assert not any(w.startswith("check ") for w in quiet.warnings)


# ---------------------------------------------------------------------- CLI
def test_cli_check_bundled(capsys, tmp_path):
    """`nanopk check` on a bundled dataset prints every rule and exits 0; --json holds the same rules."""
    out_json = tmp_path / "check.json"
    status = main(["check", "arnida2010_peg_au_sphere_50nm", "--model", "mouse_tumour", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[0] == "checks of dataset 'arnida2010_peg_au_sphere_50nm' with model 'mouse_tumour'"
    assert "OK    D1 organ_max: largest value 67.32 %ID (40 rows)" in out
    assert "0 FAIL, 0 WARN, 10 rules" in out
    payload = json.loads(out_json.read_text())
    assert [r["id"] for r in payload["rules"]] == list(RULES) and payload["n_fail"] == 0


def test_cli_check_broken(capsys, tmp_path):
    """A broken dataset: FAIL lines with their rows, exit status 1; `nanopk fit` refuses it with exit 2."""
    path = write(tmp_path, [(1, "liver", 120), (1, "spleen", 10), (24, "liver", 60)], name="broken",
                 species="rat", body_weight_g=0.25)
    status = main(["check", str(path), "--model", "mouse_pbpk"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL  D1 organ_max: 1 value(s) above 100 %ID after conversion: liver 120 %ID at 1 h (row 2)" in out
    assert "FAIL  D4 body_weight: body_weight_g 0.25 g is not a possible rat weight" in out
    assert "FAIL  M1 species: the dataset is 'rat' (sidecar species) but model 'mouse_pbpk' is 'mouse'" in out
    assert out.splitlines()[-1] == "4 FAIL, 0 WARN, 10 rules"
    status = main(["fit", str(path), "--model", "mouse_pbpk", "--vary", "Kmax_liver"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("nanopk fit: error: 4 problem(s) in ")
    assert "[M1 species]" in err


def test_cli_fit_refuses_param_and_vary(capsys):
    """`nanopk fit --param X=... --vary X` is refused with rule F1 and exit 2."""
    status = main(["fit", "cho2010_peg_au_13nm", "--model", "mouse_pbpk", "--vary", "Kmax_liver", "--param", "Kmax_liver=2"])
    assert status == 2
    assert capsys.readouterr().err.startswith("nanopk fit: error: [F1 fixed_and_varied] 'Kmax_liver' is both held")


def test_cli_compare_refuses_param_and_vary(capsys):
    """`nanopk compare --param X=... --vary X` is refused with rule F1 and exit 2, before any fit."""
    status = main(["compare", "cho2010_peg_au_13nm", "cho2010_peg_au_4nm", "--model", "mouse_pbpk",
                   "--vary", "Kmax_liver", "--param", "Kmax_liver=2"])
    assert status == 2
    assert capsys.readouterr().err.startswith("nanopk compare: error: [F1 fixed_and_varied] 'Kmax_liver' is both held")


def test_cli_check_particle_needs_model(capsys):
    """`nanopk check --particle` without --model is refused rather than ignored."""
    assert main(["check", "cho2010_peg_au_13nm", "--particle", "material=Au"]) == 2
    assert capsys.readouterr().err == ("nanopk check: error: --particle describes the model's particle: give --model too "
                                       "(e.g. --model mouse_tumour_full)\n")
