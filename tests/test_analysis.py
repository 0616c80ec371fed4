"""analyze.py on a tiny trained run: every file, the GIF's frames, the latent maths, collapse, exports, errors."""

import csv
import json
import shutil

import imageio.v3 as iio
import matplotlib.ticker
import numpy as np
import pytest

import vae_tf
from vae_tf import analysis, latent_space
from vae_tf.analysis import model_figures
from vae_tf import figures
from vae_tf.analysis import analyze, compare, snapshots
from vae_tf.errors import UserError
from vae_tf.runs import RunDir, final_figures, read_log, write_json
from vae_tf.cli import analyze_main
from vae_tf.checkpoints import Checkpointer

from conftest import ROOT, TINY, run_script

FIGURES = ("graphs.png", "mig.png", "training.gif", "latent_traversal.png", "latent_traversals_all.png", "interpolation.png",
           "reconstructions.png", "samples.png", "latent_space.png", "kl_per_dimension.png", "summary.json",
           "likelihood.csv", "likelihood.json")
# For tests of what an analysis reuses or leaves out: no t-SNE, and a log-likelihood of a few samples (the full
# figures are test_analyze_writes_every_figure_in_a_fresh_process's).
FAST = ["--no_tsne", "--likelihood_samples=4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny finished run (6 steps, snapshots at steps 1, 3 and 6, checkpoints and MIG scores at 3 and 6)."""
    root = tmp_path_factory.mktemp("analysis")
    params = vae_tf.load_params(ROOT / "params.py", overrides={**TINY, "output_dir": str(root), "run_name": "tiny",
                                                               "mig_step": 3})
    return vae_tf.train(params, progress=False)


def _copy(run, tmp_path, name):
    return shutil.copytree(run, tmp_path / name, ignore=shutil.ignore_patterns("analysis", ".lock"))


def test_analyze_writes_every_figure_in_a_fresh_process(trained, tmp_path):
    run = _copy(trained, tmp_path, "tiny")
    result = run_script("analyze.py", run, "--num_images=64", "--export", f"--export_dir={tmp_path / 'images'}")
    assert result.returncode == 0, result.stderr
    for name in FIGURES:
        assert (run / "analysis" / name).stat().st_size > 0, name
    frames = iio.imread(run / "analysis" / "training.gif", index=None)
    assert len(frames) == len(snapshots(RunDir(run))) == len(list((run / "images").glob("image_*.png"))) >= 3
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert summary["test"]["images"] == 64 and len(summary["kl_per_dimension"]) == TINY["latent_size"]
    assert summary["final_training"]["steps"] == TINY["num_steps"] and summary["checkpoint_step"] == TINY["num_steps"]
    assert summary["test"]["kl_loss"] == pytest.approx(sum(summary["kl_per_dimension"]))
    # The bound on log p(x) lies above the ELBO; the KL's parts, estimated at one sample per image, sum to about the KL.
    assert summary["test_log_likelihood"] > summary["test_elbo"] and summary["likelihood_images"] == 64
    parts = sum(summary["test"][name] for name in ("index_code_mi", "total_correlation", "dimension_wise_kl"))
    assert parts == pytest.approx(summary["test"]["kl_loss"], abs=0.5 + 0.2 * summary["test"]["kl_loss"])
    # The run's time in training calls, as its checkpoint holds it: mig.csv's last score, at the end, logged it too.
    with open(run / "mig.csv", newline="") as file:
        scored = float(list(csv.DictReader(file))[-1]["train_seconds"])
    assert summary["train_seconds"] == pytest.approx(scored) and scored > 0
    for words in ("reconstruction loss", "index-code MI", "log-likelihood", "ELBO", "dimensions active",
                  "figures written to", f"(the run: {scored / 60:.1f} min of training)"):
        assert words in result.stdout, words
    exported = tmp_path / "images"
    for name in ("Training Results/tiny.gif", "Training Results/tiny.jpg", "Training Results/tiny_graphs.jpg",
                 "latent_traversal/tiny.jpg"):
        assert (exported / name).stat().st_size > 0, name
    assert iio.imread(exported / "Training Results/tiny.jpg").shape[:2] == iio.imread(snapshots(RunDir(run))[-1]).shape[:2]


def test_traversal_picks_the_largest_absolute_average_mean():
    rng = np.random.default_rng(0)
    mean = rng.normal(0.0, 1.0, (500, 6)) * 0.1
    mean[:, 4] -= 3.0  # largest |average| although negative
    mean[:, 1] += 2.0
    mean[:, 2] = rng.normal(0.0, 5.0, 500)  # largest spread, but average near 0
    assert latent_space.traversal_dimension(mean) == 4
    high, low = latent_space.traversal_range(mean, np.full_like(mean, -3.0), 4)
    assert high > low and high == pytest.approx(-3.0, abs=0.5) and low == pytest.approx(-3.0, abs=0.5)


def test_active_units_follow_the_variance_of_the_posterior_mean():
    rng = np.random.default_rng(1)
    n = 2000
    mean = np.stack([rng.normal(0, 1.0, n), rng.normal(0, 0.05, n), np.full(n, 2.0), rng.normal(0, 0.2, n)], axis=1)
    # variances 1, 0.0025, 0 and 0.04 against the 0.01 threshold
    assert latent_space.active_units(mean).tolist() == [True, False, False, True]


def test_the_variance_of_posterior_means_from_draws_is_unbiased():
    """Where E[z|x] has no closed form (a flow), S draws of each posterior estimate its variance over the images: the
    draws' means alone overstate it by about mean σ²/S, which the estimate removes. Known means (variances 0, 0.02 and
    1 over 300 images), σ from 0.5 to 1.5, 200 sets of 32 draws: the estimates average to the means' own variance."""
    rng = np.random.default_rng(0)
    n, samples = 300, 32
    means = rng.normal(size=(n, 3)) * np.sqrt([0.0, 0.02, 1.0])
    sigma = rng.uniform(0.5, 1.5, (n, 3))
    draws = [means + sigma * rng.standard_normal((samples, n, 3)) for _ in range(200)]
    estimates = np.mean([latent_space.variance_of_posterior_means(d) for d in draws], axis=0)
    naive = np.mean([np.var(d.mean(axis=0), axis=0) for d in draws], axis=0)
    exact = np.var(means, axis=0)
    np.testing.assert_allclose(estimates, exact, atol=0.004)
    assert np.all(naive - exact > 0.02)  # the noise the estimate removes: an inactive unit would count as active


def test_kl_per_dimension_sums_to_the_models_kl():
    rng = np.random.default_rng(2)
    mean, log_std = rng.normal(size=(50, 5)), rng.normal(scale=0.5, size=(50, 5))
    from vae_tf.losses import gaussian_kl
    expected = float(np.mean(gaussian_kl(mean, log_std).numpy()))
    assert np.sum(latent_space.kl_per_dimension(mean, log_std)) == pytest.approx(expected, rel=1e-6)
    assert latent_space.kl_per_dimension(np.zeros((3, 2)), np.zeros((3, 2))).tolist() == [0.0, 0.0]


def test_interpolation_grid_has_the_four_codes_at_its_corners():
    corners = np.arange(12, dtype=float).reshape(4, 3)
    grid = latent_space.interpolation_grid(corners, 5)
    assert grid.shape == (5, 5, 3)
    np.testing.assert_allclose([grid[0, 0], grid[0, -1], grid[-1, 0], grid[-1, -1]], corners)
    np.testing.assert_allclose(grid[2, 2], corners.mean(axis=0))


def _with_encoder_output(run, scale):
    """Rewrite the run's latest checkpoint with the encoder's output layers scaled (0 = a collapsed posterior)."""
    model = vae_tf.load_run(run)
    for name in ("mean", "log_std"):
        layer = model.encoder.get_layer(name)
        layer.set_weights([w * (scale if name == "mean" else 0.0) for w in layer.get_weights()])
    Checkpointer(model, RunDir(run)).save(TINY["num_steps"] + 1)


def test_collapse_sentence_for_a_collapsed_run_only(trained, tmp_path):
    collapsed, healthy = _copy(trained, tmp_path, "collapsed"), _copy(trained, tmp_path, "healthy")
    _with_encoder_output(collapsed, 0.0)
    _with_encoder_output(healthy, 200.0)
    notes = []
    quick = dict(num_images=32, progress=False, tsne=False, likelihood=(4, 4), figures=False)  # the summary alone
    summary = analyze(collapsed, note=notes.append, **quick)
    assert summary["collapsed"] and summary["active_units"] == 0 and summary["test"]["kl_loss"] == pytest.approx(0.0)
    assert len([n for n in notes if summary["collapse"] in n]) == 1 and "posterior has collapsed" in summary["collapse"]
    assert "annealing" in summary["collapse"] and "smaller beta" in summary["collapse"]
    notes.clear()
    summary = analyze(healthy, note=notes.append, **quick)
    assert summary["active_units"] > 0 and summary["test"]["kl_loss"] > latent_space.COLLAPSED_KL
    assert not summary["collapsed"] and not any("collapsed" in n for n in notes)
    assert latent_space.collapse_state(0, 5.0)[0] == latent_space.collapse_state(3, 0.05)[0] == "collapsed"
    assert latent_space.collapse_state(4, 0.19)[1]  # units over the variance threshold, but no information: a grey blob
    assert latent_space.collapse_state(3, 5.0) == (None, None)


def test_a_run_without_checkpoint_gets_graphs_only_and_a_note(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path, "early")
    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "images")
    assert analyze_main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "without a latest checkpoint" in out and "images not found" in out and "training.gif skipped" in out
    assert sorted(p.name for p in (run / "analysis").iterdir()) == ["graphs.png", "mig.png"]  # both from the logs


def test_user_errors_are_one_line_with_exit_code_2(trained, tmp_path, capsys):
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    no_log = _copy(trained, tmp_path, "no_log")  # neither a log nor a checkpoint: nothing to draw
    (no_log / "log.csv").unlink()
    shutil.rmtree(no_log / "checkpoints")
    cases = {(str(not_a_run),): "not a run folder", (str(tmp_path / "missing"),): "not found",
             (str(no_log),): "log.csv not found", (str(trained), "--compare"): "at least two",
             (str(trained), "--checkpoint=newest"): "invalid choice", (): "name at least one run folder",
             (str(trained), "--bogus"): "unrecognized arguments",
             (str(trained), str(trained), "--compare", "--metrics"): "analyse them with --metrics first",
             (str(trained), "--quick"): "use it with --metrics or --baselines",
             (str(trained), "--dataset=shapes2d"): "--dataset is for --baselines",
             (str(trained), "--export_dir=x"): "add --export",
             (str(trained), "--num_images=5"): "at least 10",
             (str(trained), "--metric_names=mig,bogus"): "from beta_vae, factor_vae, mig, dci, sap, modularity, "
                                                         "explicitness, irs,",
             (str(trained), "--metric_names=mig,bogus", "--quick"): "downstream_boosted_trees; got 'mig,bogus'",
             (str(trained), "--udr"): "--udr ranks several runs against each other: use it with --compare",
             (str(trained), str(trained), "--compare", "--metric_names=mig"): "analyse them with --metric_names"}
    for argv, message in cases.items():
        assert analyze_main(list(argv)) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (argv, err)
    assert not (not_a_run / "analysis").exists()


def test_compare_overlays_runs_and_tabulates_them(trained, tmp_path, capsys):
    first, second = _copy(trained, tmp_path, "first"), _copy(trained, tmp_path, "second")
    (second / "analysis").mkdir()
    (second / "analysis" / "summary.json").write_text(json.dumps({
        "active_units": 3, "test_log_likelihood": -12.5,
        "test": {"index_code_mi": 1.0, "total_correlation": 0.25, "dimension_wise_kl": 2.0}}))
    (second / "analysis" / "metrics.json").write_text(json.dumps({"protocol": "quick",
                                                                  "metrics": {"mig": {"score": 0.25}}}))
    params = json.loads((second / "params.json").read_text())
    (second / "params.json").write_text(json.dumps({**params, "reconstruction_loss": "squared_error"}))
    log = (second / "log.csv").read_text().splitlines()
    column = log[0].split(",").index("loss")
    rows = [",".join("5.9e31" if i == column else v for i, v in enumerate(line.split(","))) for line in log[1:]]
    (second / "log.csv").write_text("\n".join([log[0]] + rows) + "\n")
    samples = np.random.default_rng(0).integers(0, 255, (30, 50, 3), np.uint8)  # analyze.py's, of the second run
    iio.imwrite(second / "analysis" / "samples.png", np.pad(samples, ((7, 5), (3, 9), (0, 0)), constant_values=255))
    assert analyze_main([str(first), str(second), "--compare"]) == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "comparison.md").read_text()
    assert printed.endswith(table) and (tmp_path / "comparison.png").stat().st_size > 0
    assert (tmp_path / "comparison_mig.png").stat().st_size > 0
    stacked = figures.stacked_pictures({"second": second / "analysis" / "samples.png"}, "")
    [axis] = stacked.axes
    assert axis.get_title(loc="left") == "second"
    np.testing.assert_allclose(axis.images[0].get_array()[..., :3], samples / 255, atol=1e-6)  # its margins cropped
    assert (tmp_path / "comparison_samples.png").stat().st_size > 0
    assert "warning: these runs have different reconstruction losses" in printed
    assert "bernoulli: first; squared_error: second" in printed and "image sizes" not in printed
    lines = table.splitlines()
    assert lines[0].split(" | ")[-2:] == ["metric protocol", "mig |"] and len(lines) == 4
    assert lines[2].startswith("| first | 6 |") and lines[2].endswith("| – | – | – | – | – | – | – |")
    assert lines[3].startswith("| second | 6 | 5.9e+31 |")
    assert lines[3].endswith("| 3 | -12.50 | 1.00 | 0.25 | 2.00 | quick | 0.250 |")


def test_compare_shows_the_likelihood_a_study_recorded_of_a_run_without_analysis(trained, tmp_path, capsys):
    first, second = _copy(trained, tmp_path, "first"), _copy(trained, tmp_path, "second")
    (second / "trial.json").write_text(json.dumps({"status": "finished", "test_log_likelihood": -42.25}))
    assert analyze_main([str(first), str(second), "--compare"]) == 0
    lines = (tmp_path / "comparison.md").read_text().splitlines()
    assert lines[2].split(" | ")[7] == "–" and lines[3].split(" | ")[7] == "-42.25"


@pytest.fixture
def small_quick_protocol(monkeypatch):
    """The quick protocol shrunk further, so the command's wiring is tested in seconds."""
    from vae_tf import baselines, metrics
    small = {"beta_vae": dict(batch_size=8, num_train=40, num_eval=20),
             "factor_vae": dict(batch_size=8, num_train=40, num_eval=20, num_variance_estimate=200),
             "mig": dict(num_train=200), "dci": dict(num_train=100, num_test=50, n_estimators=2),
             "sap": dict(num_train=100, num_test=50), "modularity": dict(num_train=200),
             "explicitness": dict(num_train=100, num_test=50), "irs": dict(num_train=200),
             "gaussian_total_correlation": dict(num_train=200), "gaussian_wasserstein_correlation": dict(num_train=200),
             "code_mutual_information": dict(num_train=200)}
    for name, protocol in small.items():
        monkeypatch.setitem(metrics.QUICK, name, {**metrics.QUICK[name], **protocol})
    monkeypatch.setattr(baselines, "NUM_FIT_SAMPLES", 200)


def test_metrics_command_writes_metrics_json_and_prints_its_table(trained, tmp_path, capsys, small_quick_protocol):
    run = _copy(trained, tmp_path, "scored")
    from vae_tf import metrics
    from vae_tf.analysis import score_run
    table = score_run(run, quick=True, progress=False)
    saved = json.loads((run / "analysis" / "metrics.json").read_text())
    assert saved["protocol"] == "quick" and saved["checkpoint_step"] == TINY["num_steps"]
    assert list(saved["metrics"]) == metrics.DEFAULT_METRICS and "downstream_boosted_trees" not in saved["metrics"]
    assert table.splitlines()[2].startswith("| tiny | ") and f"{saved['metrics']['mig']['score']:.3f}" in table
    header, row, *more = (run / "analysis" / "metrics.csv").read_text().splitlines()
    csv = dict(zip(header.split(","), row.split(",")))
    assert not more and csv["run"] == "tiny" and csv["protocol"] == "quick" and csv["checkpoint_step"] == "6"
    assert float(csv["mig"]) == saved["metrics"]["mig"]["score"]
    assert float(csv["dci.completeness"]) == saved["metrics"]["dci"]["completeness"]
    assert "mig.per_factor" not in csv  # lists stay in metrics.json
    assert score_run(run, quick=True, progress=False) == table  # one random_state for every run: repeatable
    # Scored in parts (--metric_names), each metric gets the score of the whole suite, and the file gathers them.
    (run / "analysis" / "metrics.json").unlink()
    score_run(run, quick=True, progress=False, names=["sap"])
    score_run(run, quick=True, progress=False, names=["dci", "mig"])
    parts = json.loads((run / "analysis" / "metrics.json").read_text())
    assert list(parts["metrics"]) == ["mig", "dci", "sap"]
    assert parts["metrics"] == {name: saved["metrics"][name] for name in ("mig", "dci", "sap")}
    # Scores of another protocol are not mixed in.
    (run / "analysis" / "metrics.json").write_text(json.dumps({**parts, "protocol": "default"}))
    score_run(run, quick=True, progress=False, names=["mig"])
    assert list(json.loads((run / "analysis" / "metrics.json").read_text())["metrics"]) == ["mig"]


@pytest.mark.slow
def test_metrics_reuse_current_figures_and_an_interrupted_analysis_is_marked(trained, tmp_path, capsys, monkeypatch,
                                                                            small_quick_protocol):
    from vae_tf.analysis import model_figures
    run = _copy(trained, tmp_path, "again")
    drawn = model_figures.save_figure

    def interrupted(figure, path):
        if path.name == "interpolation.png":
            raise KeyboardInterrupt
        drawn(figure, path)

    monkeypatch.setattr(model_figures, "save_figure", interrupted)
    assert analyze_main([str(run), *FAST, "--num_images=32"]) == 130
    assert (run / "analysis" / "INCOMPLETE").exists() and "INCOMPLETE" in capsys.readouterr().err
    monkeypatch.setattr(model_figures, "save_figure", drawn)
    assert analyze_main([str(run), *FAST, "--num_images=32"]) == 0
    assert not (run / "analysis" / "INCOMPLETE").exists()
    graphs = (run / "analysis" / "graphs.png").stat().st_mtime_ns
    capsys.readouterr()
    assert analyze_main([str(run), *FAST, "--num_images=32", "--metrics", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "scoring only" in out and "dimensions active" in out and "| tiny |" in out
    assert "figures written to" not in out
    assert (run / "analysis" / "graphs.png").stat().st_mtime_ns == graphs  # not redrawn
    assert analyze_main([str(run), *FAST, "--num_images=40", "--metrics", "--quick"]) == 0  # other images: redrawn
    assert "scoring only" not in capsys.readouterr().out


def test_no_figures_writes_the_summary_alone_and_metrics_then_draw_them(trained, tmp_path, capsys,
                                                                        small_quick_protocol):
    """--no_figures: the same summary.json as a full analysis (the traversal's dimension aside), the training graphs,
    none of the figures drawn from the model; --metrics afterwards does not take that analysis for a finished one."""
    full, bare = _copy(trained, tmp_path, "full"), _copy(trained, tmp_path, "bare")
    assert analyze_main([str(full), *FAST, "--num_images=32"]) == 0
    capsys.readouterr()
    assert analyze_main([str(bare), *FAST, "--num_images=32", "--no_figures"]) == 0
    assert "summary.json and the training graphs written to" in capsys.readouterr().out
    drawn = {path.name for path in (bare / "analysis").iterdir()}
    assert {"graphs.png", "training.gif", "summary.json"} <= drawn
    assert not drawn & {"latent_traversal.png", "reconstructions.png", "samples.png", "latent_space.png"}
    summaries = [json.loads((run / "analysis" / "summary.json").read_text()) for run in (full, bare)]
    assert [s.pop("figures") for s in summaries] == [True, False]
    assert summaries[1].pop("traversal_dimension") is None and summaries[0].pop("traversal_dimension") is not None
    assert summaries[0] == summaries[1]
    assert analyze_main([str(bare), *FAST, "--num_images=32", "--metric_names=mig", "--quick"]) == 0
    assert "scoring only" not in capsys.readouterr().out
    assert (bare / "analysis" / "latent_traversal.png").exists()
    assert analyze_main([str(bare), "--no_figures", "--export"]) == 2  # nothing to export
    assert "--no_figures leaves out the figures that --export copies" in capsys.readouterr().err


def test_metrics_need_a_data_set_with_ground_truth(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path, "digits")
    values = json.loads((run / "params.json").read_text())
    (run / "params.json").write_text(json.dumps({**values, "dataset": "mnist"}))
    assert analyze_main([str(run), "--metrics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'mnist' has no ground-truth factors" in err and err.count("\n") == 1
    assert not (run / "analysis").exists()  # refused before any figure was drawn
    # --baselines on a data set without factors is refused just as early, whatever else is asked.
    assert analyze_main([str(run), "--baselines", "--dataset=mnist"]) == 2
    assert "'mnist' has no ground-truth factors" in capsys.readouterr().err
    assert not (run / "analysis").exists()


@pytest.mark.slow
def test_baselines_command_writes_the_table(trained, tmp_path, small_quick_protocol, capsys):
    from vae_tf.analysis import score_baselines
    table = score_baselines(run_dir=trained, quick=True, output_dir=tmp_path, progress=True)
    bars = capsys.readouterr().err
    for name in ("ground_truth_factors: mig", "raw_pixels: beta_vae", "pca: dci", "untrained_model: sap"):
        assert name in bars, name  # each progress bar says which representation it measures
    saved = json.loads((tmp_path / "baselines_shapes2d_quick.json").read_text())
    assert (tmp_path / "baselines_shapes2d_quick.md").read_text() == table
    assert list(saved["baselines"]) == ["ground_truth_factors", "raw_pixels", "pca", "ica", "untrained_model"]
    assert sorted(saved["baselines"]["raw_pixels"]) == ["beta_vae", "factor_vae", "mig"]
    assert saved["baselines"]["ground_truth_factors"]["beta_vae"]["score"] == 1.0
    # --metric_names: only those, and raw pixels never get the metrics too slow on thousands of pixel dimensions.
    run = _copy(trained, tmp_path, "architecture")  # the untrained model's architecture and data: the run's
    assert analyze_main([str(run), "--num_images=32", "--baselines", f"--output={tmp_path / 'some'}", "--quick",
                         "--metric_names=mig,sap"]) == 0
    some = json.loads((tmp_path / "some" / "baselines_shapes2d_quick.json").read_text())["baselines"]
    assert {name: sorted(row) for name, row in some.items()} == {
        "ground_truth_factors": ["mig", "sap"], "raw_pixels": ["mig"], "pca": ["mig", "sap"], "ica": ["mig", "sap"],
        "untrained_model": ["mig", "sap"]}
    assert some["pca"]["mig"] == saved["baselines"]["pca"]["mig"]


def test_compare_ranks_runs_by_udr_on_their_test_images(trained, tmp_path, capsys):
    first, second = _copy(trained, tmp_path, "first"), _copy(trained, tmp_path, "second")
    assert analyze_main([str(first), str(second), "--compare", "--udr", f"--output={tmp_path / 'out'}"]) == 0
    table = (tmp_path / "out" / "comparison.md").read_text()
    assert capsys.readouterr().out.endswith(table) and table.splitlines()[0].endswith("| UDR |")
    saved = json.loads((tmp_path / "out" / "udr.json").read_text())
    assert saved["runs"] == ["first", "second"] and saved["images"] == analysis.UDR_IMAGES
    # Two copies of one run encode alike: the pair scores the same both ways, and each run's UDR is that score.
    assert saved["pairwise"][0][1] == saved["pairwise"][1][0] == saved["model_scores"][0] == saved["model_scores"][1]
    assert [row.split(" | ")[-1] for row in table.splitlines()[2:]] == [f"{saved['model_scores'][0]:.3f} |"] * 2
    params = json.loads((second / "params.json").read_text())
    (second / "params.json").write_text(json.dumps({**params, "image_size": 32}))
    assert analyze_main([str(first), str(second), "--compare", "--udr", f"--output={tmp_path / 'out'}"]) == 2
    assert "the runs differ in image_size" in capsys.readouterr().err


def test_compare_refuses_two_runs_of_one_name(trained, tmp_path):
    other = _copy(trained, tmp_path, "tiny")
    with pytest.raises(UserError, match="several runs named tiny"):
        compare([trained, other])


def test_too_few_test_images_is_a_user_error(trained, tmp_path):
    with pytest.raises(UserError, match="num_images must be at least 10"):
        analyze(_copy(trained, tmp_path, "few"), num_images=5, progress=False, note=lambda text: None)


def test_a_log_being_written_or_holding_nan_still_reads_and_plots(trained, tmp_path):
    log_csv = tmp_path / "log.csv"
    lines = (trained / "log.csv").read_text().splitlines(keepends=True)
    header = lines[0].rstrip().split(",")
    nan_row = lines[2].rstrip().split(",")
    nan_row[header.index("loss")] = "nan"
    log_csv.write_text("".join(lines[:2]) + ",".join(nan_row) + "\r\n" + "".join(lines[3:]) + "6,0.12")
    log = read_log(log_csv)
    assert log["step"] == list(range(TINY["num_steps"]))  # the half-written last line is left out
    assert np.isnan(log["loss"][1])
    final = final_figures(log, {})
    assert np.isfinite(final["loss"]) and final["loss"] == pytest.approx(np.nanmean(log["loss"]))
    smoothed = figures._smooth([1.0, np.nan, 3.0, 5.0], 2)
    np.testing.assert_allclose(smoothed, [1.0, 1.0, 3.0, 4.0])
    write_json(tmp_path / "s.json", {"loss": float("nan"), "values": [1.0, float("inf")]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"loss": None, "values": [1.0, None]}
    log_csv.write_text("step,loss\r\n0,abc\r\n")
    with pytest.raises(UserError, match="not a number"):
        read_log(log_csv)


def test_latent_space_of_a_single_dimension_is_the_code_itself():
    from vae_tf.analysis.model_figures import _projections
    views = _projections(np.random.default_rng(0).normal(size=(40, 1)), seed=0)
    assert list(views) == ["z"] and views["z"].shape == (40, 2)  # no t-SNE of a 1-D code


def test_latent_space_colour_bars_name_the_factor_and_its_values():
    from vae_tf.shapes2d import factor_labels
    rng = np.random.default_rng(0)
    points = {"PCA": rng.normal(size=(60, 2))}
    labels = {"shape": rng.integers(0, 3, 60), "orientation": rng.integers(0, 40, 60)}
    figure = figures.latent_space(points, labels, "t", factor_labels())
    bars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    assert [bar.get_ylabel() for bar in bars] == ["shape", "orientation"]
    assert [t.get_text() for t in bars[0].get_yticklabels()] == ["square", "ellipse", "heart"]
    assert [t.get_text() for t in bars[1].get_yticklabels()] == ["0°", "92°", "185°", "268°", "360°"]
    from vae_tf.datasets import DATASETS
    classes = figures.latent_space(points, {"label": rng.integers(0, 10, 60)}, "t", DATASETS["fashion_mnist"].value_labels)
    bar = next(axis for axis in classes.axes if axis.get_label() == "<colorbar>")
    assert "T-shirt/top" in [t.get_text() for t in bar.get_yticklabels()]  # the class names, not label 0-9
    unlabelled = figures.latent_space(points, {}, "t")
    assert [axis.get_title() for axis in unlabelled.axes] == ["PCA"]  # no "(no labels)"


def test_graphs_name_their_units_overlay_validation_and_label_only_decades():
    steps = list(range(200))
    log = {name: [1.0 + s for s in steps] for name in ("loss", "reconstruction_loss", "kl_loss", "kl_weight",
                                                        "mean_avg", "mean_min", "mean_max", "std_avg", "std_min",
                                                        "std_max", "grad_norm")}
    log["loss"] = [1000.0 / (1 + s) for s in steps]  # spans three decades: a log axis
    log["step"] = steps
    figure = figures.graphs(log, {"step": [100, 200], "loss": [12.0, 9.0]}, "t")
    total = figure.axes[0]
    assert total.get_ylabel() == "nats" and figure.axes[1].get_ylabel() == "nats"
    assert "validation" in [text.get_text() for text in total.get_legend().get_texts()]
    assert total.get_yscale() == "log"
    assert isinstance(total.yaxis.get_minor_formatter(), matplotlib.ticker.NullFormatter)
    squared = figures.graphs(log, {}, "t", reconstruction_loss="squared_error")
    assert squared.axes[0].get_ylabel() == "summed squared error" and squared.axes[1].get_ylabel() == "nats"


def test_the_committed_run_loads_right_after_installing():
    run = ROOT / "predictions" / "shapes2d_small"
    latest, final = vae_tf.load_run(run), vae_tf.load_run(run, checkpoint="final")
    assert latest.params.image_size == 32 and int(latest.optimizer.iterations.numpy()) == latest.params.num_steps
    images = next(iter(vae_tf.load_dataset("shapes2d", split="test", image_size=32, shuffle=False).batch(8)))
    np.testing.assert_allclose(latest.reconstruct(images).numpy(), final.reconstruct(images).numpy(), atol=1e-6)
    mean, _ = latest.encode(images)
    assert np.var(mean.numpy(), axis=0).max() > 0.1  # a trained encoder: its codes follow the images


def test_the_shipped_disentangled_run_scores_what_its_mig_csv_says():
    from vae_tf import metrics
    from vae_tf.baselines import model_representation

    run = ROOT / "predictions" / "shapes2d_disentangled"
    model = vae_tf.load_run(run)
    last = read_log(run / "mig.csv")
    assert int(model.optimizer.iterations.numpy()) == last["step"][-1] == model.params.num_steps
    scores = metrics.mig(vae_tf.load_ground_truth("shapes2d", image_size=model.params.image_size),
                         model_representation(model), metrics.METRICS_SEED, num_train=10000, num_bins=20)
    # Within 0.01: another CPU's kernels may round a code across one of the 20 bin edges.
    assert scores["score"] == pytest.approx(last["mig"][-1], abs=0.01)
    assert scores["score"] > 0.35  # x, y and scale each on a latent: far above the untrained model's 0.002


def test_snapshot_panels_line_up_with_fewer_validation_images(monkeypatch):
    from vae_tf import snapshots
    shapes = []
    drawn = snapshots.show_images
    monkeypatch.setattr(snapshots, "show_images", lambda axis, grid: (shapes.append(grid.shape), drawn(axis, grid))[1])
    few, full = np.zeros((3, 8, 8, 1)), np.zeros((16, 8, 8, 1))
    snapshots.SnapshotFigure()(few, few, full, step=0)
    assert len(shapes) == 3 and len(set(shapes)) == 1  # three panels of one size


def test_a_reused_snapshot_figure_draws_what_a_fresh_one_draws():
    """The figure is blitted (panel titles kept in a saved background): a reused one, even after a grid of another
    size rebuilt it, must give a fresh figure's pixels, and the step title must change."""
    from vae_tf import snapshots
    rng = np.random.default_rng(0)
    panels = lambda n, size: [rng.random((n, size, size, 1)) for _ in range(3)]  # noqa: E731
    first, other, last = panels(16, 8), panels(16, 12), panels(16, 8)
    reused = snapshots.SnapshotFigure()
    reused(*first, step=1)
    reused(*other, step=5)
    again = reused(*last, step=22)
    assert np.array_equal(again, snapshots.SnapshotFigure()(*last, step=22))
    assert not np.array_equal(again, snapshots.SnapshotFigure()(*last, step=23))  # the title is drawn each time
    assert not np.array_equal(again, snapshots.SnapshotFigure()(*first, step=22))  # and so are the images


def test_interpolation_shows_its_corner_originals(trained, monkeypatch):
    from vae_tf import analysis
    model = vae_tf.load_run(trained)
    images = next(iter(vae_tf.load_dataset("shapes2d", split="test", image_size=16, shuffle=False).batch(10))).numpy()
    captured = {}
    monkeypatch.setattr(figures, "image_rows", lambda rows, title, labels: captured.update(rows=rows))
    model_figures._interpolation(model, analysis.Encoded(model, images), images)
    rows, width = captured["rows"], model_figures.COLUMNS
    assert rows.shape[:2] == (1 + width + 1 + 3, width)
    for row, column, original in ((0, 0, 0), (0, -1, 1), (width + 1, 0, 2), (width + 1, -1, 3)):
        np.testing.assert_array_equal(rows[row][column], images[original])


def test_t_sne_can_be_left_out(trained, tmp_path, capsys):
    from vae_tf.analysis.model_figures import _projections
    codes = np.random.default_rng(0).normal(size=(50, 4))
    assert list(_projections(codes, seed=0, tsne=False)) == ["PCA"]
    assert "t-SNE" in _projections(codes, seed=0)
    assert analyze_main([str(trained), str(trained), "--compare", "--no_tsne"]) == 2
    assert "--no_tsne" in capsys.readouterr().err


def test_an_error_during_analysis_closes_its_progress_bar_before_it_is_reported(trained, tmp_path, monkeypatch):
    """Else the one-line error would be printed onto the bar's line of the terminal."""
    from vae_tf import analysis
    closed = []

    class Recording(analysis.run.tqdm):
        def close(self):
            closed.append(self.desc)
            super().close()

    def broken(*args, **kwargs):
        raise UserError("a figure cannot be drawn")

    monkeypatch.setattr(analysis.run, "tqdm", Recording)
    monkeypatch.setattr(analysis.run, "draw_model_figures", broken)
    try:
        analyze(_copy(trained, tmp_path, "broken"), progress=True, note=lambda text: None)
    except UserError:  # the traceback still holds the bar here: only an explicit close counts
        assert "analyze broken" in closed  # named after the folder analysed, not params.json's run_name
    else:
        pytest.fail("the UserError did not reach the caller")


def test_the_mig_figure_rings_a_factor_whose_best_latent_belongs_to_a_factor_with_a_larger_gap():
    # Two scores: first shape and scale share latent 2 (scale's gap is larger), then shape has latent 5 of its own;
    # position_x shares latent 0 with orientation, which carries nothing.
    names = ("shape", "scale", "orientation", "position_x")
    curve = {"step": [1000, 2000], "train_seconds": [60.0, 120.0], "mig": [0.2, 0.4],
             "mig_shape": [0.1, 0.3], "mig_scale": [0.2, 0.4], "mig_orientation": [0.0, 0.001],
             "mig_position_x": [0.3, 0.5], "latent_shape": [2, 5], "latent_scale": [2, 2],
             "latent_orientation": [0, 0], "latent_position_x": [0, 0]}
    figure = figures.mig_curves({"run": curve}, "t")
    axes = {axis.get_title(): axis for axis in figure.axes if axis.get_visible()}
    assert set(axes) == {"MIG", *names}
    def marks(axis):  # (minutes, gap, filled) of every dot
        return sorted((float(x), float(y), collection.get_facecolors().size > 0 and collection.get_facecolors()[0][3] > 0)
                      for collection in axis.collections for x, y in collection.get_offsets())
    assert marks(axes["shape"]) == [(1.0, 0.1, False), (2.0, 0.3, True)]
    assert marks(axes["scale"]) == [(1.0, 0.2, True), (2.0, 0.4, True)]
    assert marks(axes["orientation"]) == [(1.0, 0.0, False), (2.0, 0.001, False)]
    assert marks(axes["position_x"]) == [(1.0, 0.3, True), (2.0, 0.5, True)]
    assert list(axes["MIG"].lines[0].get_ydata()) == [0.2, 0.4]


def test_a_run_shipped_without_its_log_gets_every_figure_but_the_graphs(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path, "shipped")
    (run / "log.csv").unlink()
    assert analyze_main([str(run), *FAST, "--num_images=32"]) == 0
    assert "log.csv not found" in capsys.readouterr().out
    written = {p.name for p in (run / "analysis").iterdir()}
    assert written == set(FIGURES) - {"graphs.png"}
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert summary["final_training"] is None and summary["checkpoint_step"] == TINY["num_steps"]
    # Compared with a run that has its log: its row has test figures but no training ones, its MIG curve stays.
    table = compare([trained, run], output_dir=tmp_path / "out", note=print)
    assert "has no log.csv" in capsys.readouterr().out
    row = table.splitlines()[3].split(" | ")
    assert row[0] == "| shipped" and row[1:6] == ["–"] * 5 and row[6] != "–" and row[7] != "–"
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"comparison.png", "comparison_mig.png", "comparison.md",
                                                              "comparison_samples.png"}


def test_the_originals_of_a_binarised_run_are_called_binarised(tmp_path, monkeypatch):
    params = vae_tf.load_params(ROOT / "params.py", overrides={**TINY, "output_dir": str(tmp_path), "run_name": "bin",
                                                               "binarize": True})
    run = vae_tf.train(params, progress=False)
    drawn, real = {}, figures.image_rows

    def recorded(rows, title, row_labels=None, column_labels=None):
        drawn[title] = row_labels
        return real(rows, title, row_labels, column_labels)
    monkeypatch.setattr(figures, "image_rows", recorded)
    analyze(run, num_images=20, progress=False, tsne=False, likelihood=(4, 4), note=lambda _: None)
    reconstructions = next(labels for title, labels in drawn.items() if "reconstructions" in title)
    assert reconstructions[0] == "binarised\noriginal"
    assert next(labels for title, labels in drawn.items() if "bilinear" in title)[0] == "binarised originals"
