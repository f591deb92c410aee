"""Scenario files (good and bad), the CLI, and projections of series fitted from the bundled snapshot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import projection, store
from pipeline.cli import app
from pipeline.config import Draws, RunConfig
from pipeline.schema import InputError
from pipeline.stages import fit as fit_stage
from pipeline.stages import project as project_stage

GOOD = """
[growth]
hardware = 1.414
algorithms = 2.828
investment = 2.828
start = "2023-03-14"
until = "2040-01-01"

[[curve]]
name = "horizon_p50"
family = "exponential_in_time"
doubling_months = 7
anchor_date = "2025-02-24"
anchor_value = 60

[[curve]]
name = "p_success_60min"
family = "success_at_length"
horizon = "horizon_p50"
task_minutes = 60
ratio_50_80 = 5

[[curve]]
name = "mmlu"
metric = "mmlu"
"""


def _write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_issue_minimum_format_parses(tmp_path):
    scenario = projection.load_scenario(_write(tmp_path, GOOD))
    assert [c["name"] for c in scenario.curves] == ["horizon_p50", "p_success_60min", "mmlu"]
    assert scenario.rates(axis="date") == pytest.approx((1.414 * 2.828, 1.414 * 2.828 ** 2))
    assert scenario.rates() == pytest.approx((1.414, 1.414 * 2.828))   # raw FLOP for compute fits


@pytest.mark.parametrize("name", ["default", "fast_software", "paper_appendix_b"])
def test_shipped_scenarios_load_and_cite_sources(name):
    scenario = projection.load_scenario(projection.SCENARIO_DIR / f"{name}.toml")
    assert scenario.sources and scenario.description
    assert scenario.until > scenario.start


def test_distributions_sample_their_stated_quantiles():
    scenario = projection.load_scenario(projection.SCENARIO_DIR / "fast_software.toml")
    rng = np.random.default_rng(0)
    draws = scenario.growth["algorithms"].sample(rng, 200_000)      # lognormal, p10 = 2, p90 = 50, truncated at 1
    z90 = 1.2815515655446004
    below_one = 0.5 * math.erfc(math.log(10.0) / (math.log(25.0) / (2 * z90)) / math.sqrt(2))   # P(draw <= 1) untruncated
    expected = [(p - below_one) / (1 - below_one) for p in (0.1, 0.9)]
    assert [np.mean(draws <= 2.0), np.mean(draws <= 50.0)] == pytest.approx(expected, abs=0.003)
    assert draws.min() > 1.0
    inv = scenario.growth["investment"].sample(rng, 200_000)        # uniform 2..4
    assert inv.min() >= 2.0 and inv.max() <= 4.0 and inv.mean() == pytest.approx(3.0, abs=0.01)


BAD = [
    ("unknown family", GOOD.replace('family = "exponential_in_time"', 'family = "exponential_in_tme"'), "curve[0].family"),
    ("missing anchor", GOOD.replace('anchor_date = "2025-02-24"\n', ""), "curve[0].anchor_date"),
    ("investment <= 1", GOOD.replace("investment = 2.828", "investment = 1.0"), "growth.investment"),
    ("meek does not grow", GOOD.replace("algorithms = 2.828", "algorithms = 0.5"), "growth.hardware"),
    ("until before start", GOOD.replace('until = "2040-01-01"', 'until = "2020-01-01"'), "growth.until"),
    ("unknown growth key", GOOD.replace("hardware = 1.414", "hardware = 1.414\nsoftware = 3"), "growth.software"),
    ("unknown curve key", GOOD.replace("task_minutes = 60", "task_minutes = 60\ntask_min = 4"), "curve[1].task_min"),
    ("wrong type", GOOD.replace("doubling_months = 7", 'doubling_months = "seven"'), "curve[0].doubling_months"),
    ("lognormal without p90", GOOD.replace("algorithms = 2.828", 'algorithms = {dist = "lognormal", p10 = 2}'), "growth.algorithms"),
    ("horizon not defined", GOOD.replace('horizon = "horizon_p50"', 'horizon = "h50"'), "curve[1].horizon"),
    ("missing growth", GOOD.replace("investment = 2.828\n", ""), "growth.investment"),
    ("unknown fitted start", GOOD.replace("investment = 2.828", 'investment = 2.828\nfitted_start = "latest"'),
     "growth.fitted_start"),
]


@pytest.mark.parametrize("label,text,key", BAD, ids=[b[0] for b in BAD])
def test_bad_scenarios_name_file_and_key(tmp_path, label, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        projection.load_scenario(path)
    message = str(info.value)
    assert str(path) in message and key in message, message


def test_toml_syntax_error_and_missing_file(tmp_path):
    path = _write(tmp_path, GOOD.replace("hardware = 1.414", "hardware = = 1.414"))
    with pytest.raises(InputError, match="not valid TOML"):
        projection.load_scenario(path)
    with pytest.raises(InputError, match="not found"):
        projection.load_scenario(tmp_path / "nope.toml")


def test_cli_bad_scenario_is_a_clean_error(tmp_path):
    path = _write(tmp_path, GOOD.replace("investment = 2.828", "investment = 0.9"))
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "project", "--scenario", str(path),
                             "--db", str(tmp_path / "s.duckdb")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "growth.investment" in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_cli_json_on_an_empty_store(tmp_path):
    db = tmp_path / "empty.duckdb"
    scenario = projection.SCENARIO_DIR / "paper_appendix_b.toml"
    result = CliRunner().invoke(app, ["project", "--scenario", str(scenario), "--db", str(db), "--json", "--samples", "40"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["scenario"] == "paper_appendix_b"
    curves = {c["curve"]: c for c in payload["curves"]}
    assert set(curves) == {"horizon_p50", "p_success_4min", "p_success_60min", "p_success_240min"}
    traj = curves["p_success_60min"]["trajectory"]
    assert {"year", "frontier", "meek", "gap", "gap_lo", "gap_hi"} <= set(traj[0])
    assert traj[0]["year"] == pytest.approx(2023 + 72 / 365.25) and traj[0]["gap"] == pytest.approx(0.0, abs=1e-12)
    assert curves["p_success_60min"]["verdict"] == "meek"


@pytest.fixture(scope="module")
def fitted_db(tmp_path_factory):
    """The bundled snapshot's Chinchilla losses and MMLU scores, fitted against compute and date."""
    from pipeline import ingest

    raw_dir = Path(__file__).resolve().parents[1] / "data" / "raw"   # the bundled snapshot
    files = [raw_dir / "loss.csv", raw_dir / "benchmarks.csv"]
    if not all(f.is_file() for f in files):
        pytest.skip("bundled snapshot not present")
    db = tmp_path_factory.mktemp("proj") / "scalegap.duckdb"
    ingest.ingest([str(f) for f in files], db)
    run_id = store.start_run(db, "fit", {}, run_id="run-fit")
    fit_stage.run(db, run_id, RunConfig.build(draws=Draws(fit=40, backtest=10), metrics=["loss_frontier", "mmlu"],
                                              x_axes=("compute", "date")))
    store.finish_run(db, run_id, "succeeded")
    return db, run_id


def test_every_fitted_series_is_projected_and_missing_metric_is_recorded(tmp_path, fitted_db):
    db, run_id = fitted_db
    text = GOOD + '\n[[curve]]\nname = "gpqa"\nmetric = "gpqa_diamond"\n'
    summary = project_stage.run(db, run_id, RunConfig.build(_write(tmp_path, text), Draws(projection=60)))
    con = store.connect(db, read_only=True)
    rows = con.execute("SELECT * FROM projections WHERE run_id = ?", [run_id]).df().set_index("curve")
    n_series = con.execute("SELECT count(*) FROM selection WHERE run_id = ? AND best_family IS NOT NULL", [run_id]).fetchone()[0]
    con.close()
    assert summary["skipped"] == 1 and "no fit" in rows.loc["gpqa", "note"]
    loss = rows[(rows["metric"] == "loss_frontier") & (rows["family"] == "saturating_loss")]
    assert len(loss) >= 1
    named = rows[rows.index.str.startswith("mmlu [") & ~rows.index.str.contains(" vs ")]
    assert len(named) == 2 and set(named["x_axis"]) == {"compute"}     # mmlu from two sources, named apart
    assert rows["family"].notna().sum() == n_series + len(named) + 2   # + the two explicit curves of GOOD
    for _, row in loss.iterrows():
        # Chinchilla loss is meek: the gap (meek minus frontier loss) is positive, peaks once, goes to 0
        assert row["verdict"] == "meek" and row["limit_kind"] == "zero" and row["peak_gap"] > 0
        assert row["peak_gap_lo"] <= row["peak_gap"] * 1.5 and row["peak_gap_lo"] < row["peak_gap_hi"]
        assert math.isfinite(row["close_year"]) and row["close_year"] > row["peak_year"]
        # Chinchilla's runs have no release dates: the projection starts at the scenario's start, and says so
        assert 20 < row["x0"] < 26          # log10 FLOP of the largest Chinchilla run
        assert row["start_year"] == pytest.approx(2023 + 72 / 365.25) and "no release dates" in row["note"]


def test_fitted_series_start_where_their_data_end(tmp_path, fitted_db):
    """Each dated series starts at its latest release date (not the scenario's 2023 start); nothing calendar-based
    (peak, close, band, trajectory) precedes it, and the trajectory ends at until or where extrapolation stops."""
    db, run_id = fitted_db
    project_stage.run(db, run_id, RunConfig.build(_write(tmp_path, GOOD), Draws(projection=30)))
    con = store.connect(db, read_only=True)
    try:
        rows = con.execute("SELECT p.*, (SELECT max(CASE WHEN p.x_axis = 'date' THEN s.x ELSE s.release_year END) "
                           "FROM series_points s WHERE s.run_id = p.run_id AND s.metric = p.metric AND s.source = p.source "
                           "AND s.source_version = p.source_version AND s.x_axis = p.x_axis) AS data_end "
                           "FROM projections p WHERE run_id = ? AND metric IS NOT NULL AND family IS NOT NULL",
                           [run_id]).df()
        first = con.execute("SELECT curve, min(year) AS first, max(year) AS last FROM projection_trajectories "
                            "WHERE run_id = ? GROUP BY curve", [run_id]).df().set_index("curve")
    finally:
        con.close()
    dated = rows[rows["data_end"].notna()]
    assert len(dated) >= 2 and (dated["data_end"] > 2023.3).any()
    np.testing.assert_allclose(dated["start_year"], dated["data_end"])
    for _, row in rows.iterrows():
        assert first.loc[row["curve"], "first"] == pytest.approx(row["start_year"])
        assert first.loc[row["curve"], "last"] == pytest.approx(row["end_year"])
        assert row["end_year"] <= 2040.0 + 1e-9
        for col in ("peak_year", "peak_year_lo", "peak_year_hi", "close_year"):
            assert not row[col] < row["start_year"] - 1e-9, (row["curve"], col)


def test_sensitivity_moves_with_investment(tmp_path):
    scenario = projection.load_scenario(projection.SCENARIO_DIR / "paper_appendix_b.toml")
    sens = projection.sensitivity(projection.explicit_curves(scenario), scenario)
    inv = sens[(sens["factor"] == "investment") & (sens["curve"] == "p_success_60min")].sort_values("factor_value")
    assert len(inv) == 5
    assert np.all(np.diff(inv["peak_gap"].to_numpy()) > 0)    # a richer frontier opens a wider gap


PASS_AT_K = """
[growth]
hardware = 1.4
algorithms = 3.0
investment = 2.0
inference = 4.0
start = "2025-01-01"
until = "2035-01-01"

[[curve]]
name = "pass_at_k"
family = "exp_power_law"     # pass@k = exp(a * k^b), Brown et al. (2024)
params = {a = -2.0, b = -0.35}
start_budget = 1             # one sample per problem at the start
"""


def test_inference_curve_grows_on_the_inference_rate_and_closes(tmp_path):
    """Paper §4: the frontier out-spends on inference (x4/yr) instead of training; pass@k is bounded,
    so its gap starts at 0, rises, peaks once and falls toward 0."""
    scenario = projection.load_scenario(_write(tmp_path, PASS_AT_K))
    (curve,) = projection.explicit_curves(scenario)
    assert curve.extra["axis"] == "inference" and curve.x0 == 0.0
    summary, traj = projection.project([curve], scenario)
    row = summary.iloc[0]
    a, b = 1.4 * 3.0, 1.4 * 3.0 * 4.0  # the investment rate plays no part on this axis
    assert (row["growth_a"], row["growth_b"]) == pytest.approx((a, b))
    assert row["x_axis"] == "inference" and row["limit_kind"] == "zero" and bool(row["bounded"])
    one_year = traj.iloc[(traj["year"] - (traj["year"].iloc[0] + 1)).abs().argmin()]
    t = one_year["year"] - traj["year"].iloc[0]
    assert one_year["frontier"] == pytest.approx(math.exp(-2.0 * b ** (-0.35 * t)), rel=1e-9)
    assert one_year["meek"] == pytest.approx(math.exp(-2.0 * a ** (-0.35 * t)), rel=1e-9)
    gap = traj["gap"].to_numpy()
    assert gap[0] == pytest.approx(0.0, abs=1e-12)
    peak = int(np.argmax(gap))
    assert 0 < peak < len(gap) - 1
    assert np.all(np.diff(gap[: peak + 1]) >= -1e-12) and np.all(np.diff(gap[peak:]) <= 1e-12)
    assert gap[-1] < 0.5 * gap[peak]
    assert row["peak_year"] < row["close_year"] < math.inf  # closes below 1% of pass@k's remaining range


def test_inference_curve_without_an_inference_rate_names_the_key(tmp_path):
    text = PASS_AT_K.replace("inference = 4.0\n", "")
    with pytest.raises(InputError) as info:
        projection.load_scenario(_write(tmp_path, text))
    assert "growth.inference" in str(info.value)


@pytest.mark.parametrize("spec", ['{dist = "lognormal", p10 = 1.05, p90 = 3.0}', '{dist = "uniform", low = 0.5, high = 2.0}'])
def test_growth_draws_all_exceed_one(tmp_path, spec):
    """A draw <= 1 would make the frontier no faster than the meek actor: draws are truncated at 1."""
    text = GOOD.replace("investment = 2.828", f"investment = {spec}").replace("hardware = 1.414", f"hardware = {spec}")
    if "uniform" in spec:  # the loader rejects an investment range reaching down to 1; hardware may
        text = text.replace(f"investment = {spec}", "investment = 2.828")
    scenario = projection.load_scenario(_write(tmp_path, text))
    rng = np.random.default_rng(0)
    for key in ("hardware", "investment"):
        draws = scenario.growth[key].sample(rng, 100_000)
        assert draws.min() > 1.0, key


def test_growth_range_entirely_at_or_below_one_is_rejected(tmp_path):
    text = GOOD.replace("hardware = 1.414", 'hardware = {dist = "uniform", low = 0.5, high = 1.0}')
    with pytest.raises(InputError) as info:
        projection.load_scenario(_write(tmp_path, text))
    assert "growth.hardware" in str(info.value)


@pytest.fixture(scope="module")
def horizons_db(tmp_path_factory):
    """METR horizons from two versions of one source (METR-Horizon-v1 and v1.1), fitted against date."""
    from pipeline import ingest

    raw = Path(__file__).resolve().parents[1] / "data" / "raw" / "horizons.csv"
    if not raw.is_file():
        pytest.skip("bundled snapshot not present")
    db = tmp_path_factory.mktemp("hz") / "scalegap.duckdb"
    ingest.ingest([str(raw)], db)
    run_id = store.start_run(db, "fit", {}, run_id="run-hz")
    fit_stage.run(db, run_id, RunConfig.build(draws=Draws(fit=20, backtest=10), metrics=["metr_p50_minutes"],
                                              x_axes=("date",), families=["exponential_time"]))
    store.finish_run(db, run_id, "succeeded")
    return db, run_id


def test_every_source_version_gets_its_own_projection_row(tmp_path, horizons_db):
    db, run_id = horizons_db
    text = GOOD.split("[[curve]]")[0] + "[settings]\nproject_fitted = true\n"
    project_stage.run(db, run_id, RunConfig.build(_write(tmp_path, text), Draws(projection=20)))
    con = store.connect(db, read_only=True)
    rows = con.execute("SELECT curve, source_version FROM projections WHERE run_id = ? AND source = 'metr_time_horizon'",
                       [run_id]).df()
    n_traj = con.execute("SELECT count(DISTINCT curve) FROM projection_trajectories WHERE run_id = ? AND curve LIKE "
                         "'%metr_time_horizon%'", [run_id]).fetchone()[0]
    con.close()
    assert sorted(rows["source_version"]) == ["METR-Horizon-v1", "METR-Horizon-v1.1-2026-03-03"]
    assert n_traj == 2 and all("@METR-Horizon-v1" in c for c in rows["curve"])
