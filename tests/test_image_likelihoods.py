"""analysis/likelihood.csv: each test image's log p(x) and ELBO, the draws numbered by the image's place in the set,
an interrupted estimate resumed from the rows it wrote, figures of other weights or samples estimated afresh, and
`--compare`'s difference between runs image by image."""

import json
import shutil

import numpy as np
import pytest

import vae_tf
from vae_tf import latent_space, likelihood
from vae_tf.analysis import analyze, compare, image_likelihoods, summary_lines
from vae_tf.analysis.encoding import evaluation_images
from vae_tf.runs import read_log

from conftest import ROOT, TINY

IMAGES, SAMPLES = 20, 30


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    params = vae_tf.load_params(ROOT / "params.py", overrides={**TINY, "output_dir": str(tmp_path_factory.mktemp("ll")),
                                                               "run_name": "tiny"})
    return vae_tf.train(params, progress=False)


@pytest.fixture
def estimated(monkeypatch):
    """The images each call of log_likelihood estimates, by their place in the set: [(first_index, count)]."""
    calls = []
    estimate = likelihood.log_likelihood

    def recorded(model, images, *args, first_index=0, **kwargs):
        calls.append((first_index, len(images)))
        return estimate(model, images, *args, first_index=first_index, **kwargs)

    monkeypatch.setattr(likelihood, "log_likelihood", recorded)
    monkeypatch.setattr(image_likelihoods, "BLOCK", 8)
    return calls


def _analyse(run, samples=SAMPLES):
    return analyze(run, progress=False, note=lambda _: None, tsne=False, likelihood=(IMAGES, samples), figures=False)


def _table(folder):
    return read_log(folder / "likelihood.csv")


def test_a_part_of_a_set_gets_the_draws_the_whole_set_gets(trained):
    model = vae_tf.load_run(trained)
    images = evaluation_images(model.params, 12)[0]
    for estimate in (likelihood.log_likelihood, likelihood.elbo):
        whole = estimate(model, images, 40)
        np.testing.assert_allclose(estimate(model, images[5:], 40, first_index=5), whole[5:], rtol=1e-6)
        # numbered from 0 instead, the same images get other draws: other estimates
        assert not np.allclose(estimate(model, images[5:], 40), whole[5:], rtol=1e-4)


def test_an_interrupted_estimate_resumes_from_its_blocks_and_matches_an_uninterrupted_one(trained, estimated,
                                                                                         monkeypatch):
    folder = trained / "analysis"
    recorded = likelihood.log_likelihood

    def interrupted(model, images, *args, first_index=0, **kwargs):
        if first_index == 8:  # the second block: Ctrl-C
            raise KeyboardInterrupt
        return recorded(model, images, *args, first_index=first_index, **kwargs)

    monkeypatch.setattr(likelihood, "log_likelihood", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _analyse(trained)
    assert _table(folder)["image"] == list(range(8)) and (folder / "INCOMPLETE").exists()
    monkeypatch.setattr(likelihood, "log_likelihood", recorded)
    estimated.clear()
    summary = _analyse(trained)
    assert estimated == [(8, 8), (16, 4)]  # only the blocks not written

    # the figures of one uninterrupted call on the whole set
    resumed, model = _table(folder), vae_tf.load_run(trained)
    images = evaluation_images(model.params, latent_space.TEST_IMAGES)[0][:IMAGES]
    assert resumed["image"] == list(range(IMAGES))
    np.testing.assert_allclose(resumed["log_likelihood"], recorded(model, images, SAMPLES), rtol=1e-6)
    np.testing.assert_allclose(resumed["elbo"], likelihood.elbo(model, images), rtol=1e-6)
    # summary.json's mean and standard error are the file's, computed here with NumPy
    log_p = np.array(resumed["log_likelihood"])
    assert summary["test_log_likelihood"] == pytest.approx(log_p.mean(), rel=1e-9)
    assert summary["test_log_likelihood_standard_error"] == pytest.approx(log_p.std(ddof=1) / np.sqrt(IMAGES))
    assert summary["test_elbo"] == pytest.approx(np.mean(resumed["elbo"]), rel=1e-9)
    assert (f"{summary['test_log_likelihood']:.2f} ± {summary['test_log_likelihood_standard_error']:.2f} nats (K = "
            f"{SAMPLES} on {IMAGES} images; ± its standard error over the images)") in summary_lines(summary)


def test_a_cut_last_line_is_estimated_again_and_other_samples_start_afresh(trained, estimated, monkeypatch):
    folder = trained / "analysis"
    _analyse(trained)
    before, lines = _table(folder), (folder / "likelihood.csv").read_text().splitlines(keepends=True)
    (folder / "likelihood.csv").write_text("".join(lines[:-1]) + lines[-1][:6])  # a kill in the middle of a write
    estimated.clear()
    _analyse(trained)
    assert estimated == [(IMAGES - 1, 1)] and _table(folder)["image"] == before["image"]
    for column in ("log_likelihood", "elbo"):
        np.testing.assert_allclose(_table(folder)[column], before[column], rtol=1e-6)

    # Other samples: killed as it rewrites the file for them, then run again, it estimates every image afresh.
    rewrite = image_likelihoods.replace_atomically

    def killed(path, write):
        raise KeyboardInterrupt

    monkeypatch.setattr(image_likelihoods, "replace_atomically", killed)
    with pytest.raises(KeyboardInterrupt):
        _analyse(trained, samples=SAMPLES + 1)
    monkeypatch.setattr(image_likelihoods, "replace_atomically", rewrite)
    estimated.clear()
    _analyse(trained, samples=SAMPLES + 1)
    assert estimated == [(0, 8), (8, 8), (16, 4)]
    assert json.loads((folder / "likelihood.json").read_text())["samples"] == SAMPLES + 1
    assert _table(folder)["image"] == list(range(IMAGES)) and _table(folder) != before


def test_compare_takes_the_runs_difference_image_by_image(trained, tmp_path, estimated):
    """A second run (another seed, so other weights) estimated on the same images with as many samples pairs with the
    first; one with other samples does not."""
    other = vae_tf.train(vae_tf.load_params(ROOT / "params.py", overrides={
        **TINY, "output_dir": str(tmp_path), "run_name": "other", "seed": 1}), progress=False)
    unlike = shutil.copytree(other, tmp_path / "unlike", ignore=shutil.ignore_patterns("analysis", ".lock"))
    _analyse(trained)
    # the first run's files where the second's analysis goes (as --output puts two runs of one name): not its weights
    shutil.copytree(trained / "analysis", other / "analysis", ignore=shutil.ignore_patterns("*.png", "*.gif"))
    estimated.clear()
    _analyse(other)
    assert estimated == [(0, 8), (8, 8), (16, 4)]
    _analyse(unlike, samples=SAMPLES + 1)
    table = compare([trained, other, unlike], output_dir=tmp_path / "out", note=lambda _: None)
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    column = header.index("test log p(x) − tiny's, image by image")
    difference = (np.array(_table(other / "analysis")["log_likelihood"])
                  - np.array(_table(trained / "analysis")["log_likelihood"]))
    assert [row[column] for row in rows] == [
        "–", f"{difference.mean():+.2f} ± {difference.std(ddof=1) / np.sqrt(IMAGES):.2f}", "–"]
