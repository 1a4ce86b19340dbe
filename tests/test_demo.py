import json

import pytest

from mdllm_kit.cli import main
from mdllm_kit.demo import PIPELINE_STAGES, DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    metrics = run_demo(out, DemoConfig(quick=True), progress=lambda message: None)
    return out, metrics


def test_demo_writes_report_and_metrics(demo_run):
    out, metrics = demo_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    html = (out / "report.html").read_text()
    assert html.count("<script") >= 1 and "Plotly.newPlot" in html
    assert "adenylate kinase" in html.lower()
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model", "report.html", "samples"]


def test_demo_data_stage_describes_the_training_gap(demo_run):
    _, metrics = demo_run
    assert metrics["stages_run"][0] == "data"
    data = metrics["data"]
    assert data["closed_open_rmsd_A"] == pytest.approx(6.91, abs=0.01)
    assert data["closed_train"]["rmsd_to_open_A"]["min"] >= 3.0
    # the equilibrium run visits the open state that the training run never reaches
    assert data["equilibrium"]["rmsd_to_open_A"]["min"] < data["closed_train"]["rmsd_to_open_A"]["min"]


def test_demo_lists_missing_stages_instead_of_faking_them(demo_run):
    out, metrics = demo_run
    assert metrics["stages_run"] + metrics["stages_pending"] == list(PIPELINE_STAGES)
    html = (out / "report.html").read_text()
    for stage in metrics["stages_pending"]:
        assert stage in html


def test_demo_config_is_validated():
    with pytest.raises(ValueError, match="seed"):
        DemoConfig(seed=-1)


def test_demo_command_runs_again_in_the_same_folder(tmp_path, capsys):
    out = tmp_path / "d"
    for _ in range(2):  # a second `make demo` replaces the first run's model and samples
        assert main(["demo", "--quick", "--out", str(out)]) == 0
        assert "report.html" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["sampling"]["frames_generated"] == 6


def test_demo_tokenizer_stage_represents_the_unseen_open_state(demo_run):
    _, metrics = demo_run
    tok = metrics["tokenizer"]
    assert tok["open_basin_unseen"]["n_frames"] > 0
    assert tok["open_basin_unseen"]["rmsd_mean_A"] < 1.0
    assert tok["closed_train"]["rmsd_mean_A"] < 0.5
    assert tok["open_crystal_rmsd_A"] < 1.0
    assert tok["closed_train"]["bonds_physical_fraction"] > 0.95


def test_demo_trains_a_bundle_and_samples_decodable_frames(demo_run):
    import mdllm_kit as mk

    out, metrics = demo_run
    assert metrics["training"]["steps"] == 4
    assert metrics["training"]["finetune"] == "full"
    assert set(metrics["training"]["final_eval"]) == {
        "eval_loss", "eval_next_frame_token_accuracy", "eval_next_frame_rmsd_A"}
    bundle = mk.load_bundle(out / "model")
    assert bundle.tokenizer.tokens_per_frame == metrics["tokenizer"]["tokens_per_frame"]
    sampling = metrics["sampling"]
    assert sampling["frames_generated"] == 2 * 3
    assert sampling["frames_decoded_fraction"] == 1.0
    ensemble = mk.GeneratedEnsemble.load(out / "samples")
    assert ensemble.tokens.shape == (2, 3, metrics["tokenizer"]["tokens_per_frame"])
    # the reported minimum RMSD is the one of the frames on disk
    from mdllm_kit.analysis import rmsd_to_references

    rmsd = rmsd_to_references(ensemble.trajectory, mk.datasets.adk_references())
    assert sampling["min_rmsd_A"]["open"] == pytest.approx(rmsd["open"].min() * 10, abs=1e-3)
    assert sampling["reached_within_3A"]["open"] == bool(rmsd["open"].min() < 0.3)


def test_demo_analysis_stage_reports_discovery_validity_and_ground_truth(demo_run):
    import mdllm_kit as mk
    from mdllm_kit.analysis import rmsd_to_references

    out, metrics = demo_run
    assert metrics["stages_run"] == list(PIPELINE_STAGES) and metrics["stages_pending"] == []
    analysis = metrics["analysis"]
    assert analysis["n_frames"] == 6 and analysis["n_walkers"] == 2
    ensemble = mk.GeneratedEnsemble.load(out / "samples")
    rmsd = rmsd_to_references(ensemble.trajectory, mk.datasets.adk_references())
    for name in ("closed", "open"):
        ref = analysis["references"][name]
        assert ref["min_rmsd_A"] == pytest.approx(rmsd[name].min() * 10, abs=1e-3)
        assert ref["reached"] == bool(rmsd[name].min() < 0.3)
        assert set(ref["fraction_within"]) == {"1.5", "2.0", "3.0", "4.0"}
    assert 0.0 <= analysis["novelty"]["novel_fraction"] <= 1.0
    assert 0.0 <= analysis["validity"]["ca_valid_fraction"] <= 1.0
    assert analysis["validity"]["training"]["ca_valid_fraction"] > 0.3
    comparison = analysis["comparison"]
    assert comparison["populations"]["states"] == list(mk.datasets.ADK_STATE_NAMES)
    assert sum(comparison["populations"]["reference"]) == pytest.approx(1.0)
    assert "timescales_frames" in comparison["msm"]["reference"]
    html = (out / "report.html").read_text()
    assert "Discovery analysis" in html and "Open state" in html and "Physical validity" in html
