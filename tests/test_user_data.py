"""Nothing a user types loses their data (issue 38): what train.py and analyze.py refuse before their first write,
unreadable weights as one line, parameters checked before TensorFlow loads, and analyses of read-only runs written
elsewhere. The metrics command and study.py have theirs in test_metrics_command.py and test_study.py."""

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import vae_tf
from vae_tf.cli import analyze_main, train_main
from vae_tf.runs import read_log

from conftest import ROOT, TINY, read_only_view, run_script, snapshot_of, tiny_args

SHIPPED_STUDY = ROOT / "predictions" / "shapes2d_objectives"


@pytest.fixture(autouse=True)
def in_the_project(monkeypatch):
    """train_main reads params.py from the working folder, as train.py does."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny finished run: two latest checkpoints (steps 3 and 6), model.keras, no best checkpoint."""
    root = tmp_path_factory.mktemp("finished")
    params = vae_tf.load_params(ROOT / "params.py", overrides={**TINY, "output_dir": str(root), "run_name": "tiny",
                                                               "validation_step": 0})
    return vae_tf.train(params, progress=False)


def copy_of(run, tmp_path):
    return shutil.copytree(run, tmp_path / run.name, ignore=shutil.ignore_patterns(".lock"))


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("folder", ["study", "foreign"])
def test_train_refuses_a_folder_that_is_not_a_run_and_writes_nothing(tmp_path, capsys, folder):
    target = tmp_path / folder
    if folder == "study":
        shutil.copytree(SHIPPED_STUDY, target)
    else:
        target.mkdir()
        (target / "notes.txt").write_text("a user's own file\n")
    before = snapshot_of(tmp_path)
    assert train_main([f"--output_dir={tmp_path}", f"--run_name={folder}", *tiny_args()]) == 2
    line = one_error_line(capsys)
    assert ("a study folder" if folder == "study" else "not a run") in line and "pick another --run_name" in line
    assert snapshot_of(tmp_path) == before and sorted(p.name for p in target.iterdir()) == sorted(
        p.parts[-1] for p in before if len(p.parts) == 2)


def test_train_starts_in_an_empty_folder_and_resumes_its_own_run(tmp_path):
    (tmp_path / "empty").mkdir()
    assert train_main([f"--output_dir={tmp_path}", "--run_name=empty", *tiny_args(num_steps=3)]) == 0
    assert train_main([f"--output_dir={tmp_path}", "--run_name=empty", *tiny_args(num_steps=6)]) == 0
    assert (tmp_path / "empty" / "params.json").exists() and len((tmp_path / "empty" / "log.csv").read_text()
                                                                 .splitlines()) == 7


def test_a_truncated_model_keras_is_one_line_and_analyze_writes_nothing(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    whole = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(whole[:len(whole) // 3])
    before = snapshot_of(run)
    assert analyze_main([str(run), "--checkpoint=final", "--no_tsne"]) == 2
    line = one_error_line(capsys)
    assert str(run / "model.keras") in line and "truncated or corrupted" in line and "latest" in line
    assert snapshot_of(run) == before  # neither graphs.png nor training.gif, nor an analysis folder
    with pytest.raises(vae_tf.UserError, match="truncated or corrupted"):
        vae_tf.load_run(run, checkpoint="final")
    # the same in a fresh process, as a user meets it
    result = run_script("analyze.py", run, "--checkpoint=final", "--no_tsne")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert snapshot_of(run) == before


def test_an_unreadable_only_checkpoint_says_so_and_not_to_use_the_one_before(finished, tmp_path):
    run = copy_of(finished, tmp_path)
    for old in (run / "checkpoints").glob("ckpt-3.*"):
        old.unlink()
    (run / "checkpoints" / "ckpt-6.index").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(vae_tf.UserError) as raised:
        vae_tf.load_run(run)
    message = str(raised.value)
    assert "it is the only one" in message and "the one before" not in message
    reason = message.split(" cannot be read (", 1)[1].rsplit("); ", 1)[0]
    assert len(reason) <= 120 and (reason.endswith(" ...") or not reason.endswith("..."))  # cut at a word


def test_the_checkpoint_before_is_named_when_there_is_one(finished, tmp_path):
    run = copy_of(finished, tmp_path)
    (run / "checkpoints" / "ckpt-6.index").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(vae_tf.UserError, match="to use ckpt-3, the one before"):
        vae_tf.load_run(run)


def test_a_missing_best_checkpoint_says_why_without_yet(finished):
    with pytest.raises(vae_tf.UserError) as raised:
        vae_tf.load_run(finished, checkpoint="best")
    message = str(raised.value)
    assert "no best checkpoint" in message and "never validates" in message and "yet" not in message


def test_analyze_writes_a_read_only_runs_figures_into_output(finished, tmp_path, monkeypatch, capsys):
    writable = copy_of(finished, tmp_path / "writable")
    before = snapshot_of(writable.parent)
    with read_only_view(writable.parent, tmp_path / "shared", monkeypatch) as how:
        view = tmp_path / "shared" / writable.name
        assert analyze_main([str(view), "--no_tsne", "--num_images=20", "--likelihood_samples=4"]) == 2
        assert "cannot write" in one_error_line(capsys)
        assert analyze_main([str(view), "--no_tsne", "--num_images=20", "--likelihood_samples=4",
                             f"--output={tmp_path / 'figures'}"]) == 0
    print(f"file system: {how}")
    assert (tmp_path / "figures" / "tiny" / "summary.json").exists()
    assert (tmp_path / "figures" / "tiny" / "latent_traversal.png").exists()
    assert f"figures written to {tmp_path / 'figures' / 'tiny'}" in capsys.readouterr().out
    assert snapshot_of(writable.parent) == before


def test_analyze_refuses_an_output_that_is_a_run_folder_itself(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    before = snapshot_of(tmp_path)
    assert analyze_main([str(run), "--no_tsne", f"--output={tmp_path}"]) == 2
    assert "a run or study folder itself" in one_error_line(capsys)
    assert snapshot_of(tmp_path) == before


def test_parameter_errors_come_before_tensorflow_loads():
    code = ("import sys; from vae_tf.cli import train_main; "
            "codes = [train_main(a.split()) for a in sys.argv[1:]]; print(codes, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, "--latent_size=abc", "--objective=foo", "--beta=-1",
                             "--objective=iwae", "--objective=beta_tcvae --kl_schedule=capacity",
                             "--dataset=fashion_mnist --image_size=None"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[2, 2, 2, 2, 2, 2] False", result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 6 and "image size 28 is not divisible by 8" in result.stderr


def test_registries_answer_to_the_names_params_checks():
    from vae_tf import params
    from vae_tf.datasets import DATASETS
    from vae_tf.losses import RECONSTRUCTION_LOSSES
    from vae_tf.models import MODELS
    from vae_tf.objectives import OBJECTIVES
    from vae_tf.schedules import KL_SCHEDULES
    for names, registry in ((params.DATASETS, DATASETS), (params.RECONSTRUCTION_LOSSES, RECONSTRUCTION_LOSSES),
                            (params.MODELS, MODELS), (params.OBJECTIVES, OBJECTIVES),
                            (params.KL_SCHEDULES, KL_SCHEDULES)):
        assert tuple(registry) == names
    assert params.NATIVE_SIZES == {name: source.native_size for name, source in DATASETS.items() if name != "folder"}


def test_help_with_a_broken_params_file_says_so(tmp_path):
    (tmp_path / "params.py").write_text("latent_size = = 3\n")
    result = run_script("train.py", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr.startswith("warning: params.py:1: syntax error") and "built-in" in result.stderr
    assert "WARNING: params.py:1: syntax error" in result.stdout


def test_resuming_a_log_with_a_column_this_run_does_not_write_is_one_line(tmp_path, capsys):
    assert train_main([f"--output_dir={tmp_path}", "--run_name=r", *tiny_args(num_steps=3)]) == 0
    log = tmp_path / "r" / "log.csv"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0] + ",from_elsewhere"] + [line + ",1.0" for line in lines[1:]]) + "\n")
    before = snapshot_of(tmp_path / "r")
    capsys.readouterr()
    assert train_main([f"--output_dir={tmp_path}", "--run_name=r", *tiny_args(num_steps=6)]) == 2
    line = one_error_line(capsys)
    assert "from_elsewhere" in line and str(log) in line
    assert snapshot_of(tmp_path / "r") == before


@pytest.mark.parametrize("flags, mine", [(["--compare"], "comparison.md"), (["--compare", "--udr"], "udr.json")])
def test_compare_never_replaces_a_file_of_the_users(finished, tmp_path, capsys, flags, mine):
    first, second = (shutil.copytree(finished, tmp_path / name, ignore=shutil.ignore_patterns(".lock"))
                     for name in ("first", "second"))
    out = tmp_path / "out"
    out.mkdir()
    (out / mine).write_text("my own notes\n")
    before = snapshot_of(tmp_path)
    assert analyze_main([str(first), str(second), *flags, f"--output={out}"]) == 2
    assert mine in one_error_line(capsys) and snapshot_of(tmp_path) == before
    (out / mine).unlink()
    assert analyze_main([str(first), str(second), *flags, f"--output={out}"]) == 0  # its own are replaced
    assert analyze_main([str(first), str(second), *flags, f"--output={out}"]) == 0


def test_baselines_never_replace_a_file_of_the_users_and_refuse_before_scoring(tmp_path, capsys):
    (tmp_path / "baselines_shapes2d_quick.md").write_text("my own table\n")
    before = snapshot_of(tmp_path)
    assert analyze_main(["--baselines", "--dataset=shapes2d", "--quick", f"--output={tmp_path}"]) == 2
    assert "baselines_shapes2d_quick.md" in one_error_line(capsys) and snapshot_of(tmp_path) == before


def test_output_refuses_two_runs_of_one_name_and_exports_what_it_drew(finished, tmp_path, capsys):
    first, second = copy_of(finished, tmp_path / "a"), copy_of(finished, tmp_path / "b")
    assert analyze_main([str(first), str(second), f"--output={tmp_path / 'out'}"]) == 2
    assert "several runs named tiny" in one_error_line(capsys) and not (tmp_path / "out").exists()
    assert analyze_main([str(first), "--no_tsne", "--num_images=20", "--likelihood_samples=4",
                         f"--output={tmp_path / 'out'}", "--export", f"--export_dir={tmp_path / 'exported'}"]) == 0
    assert not (first / "analysis").exists()
    assert ((tmp_path / "exported" / "latent_traversal" / "tiny.jpg").exists()
            and (tmp_path / "exported" / "Training Results" / "tiny_graphs.jpg").exists())


def test_analyze_refuses_a_run_whose_images_are_gone_before_writing(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    import imageio.v3 as iio
    for i in range(24):
        iio.imwrite(images / f"{i}.png", (rng.random((16, 16, 3)) * 255).astype(np.uint8))
    assert train_main([f"--output_dir={tmp_path}", "--run_name=mine", "--dataset=folder", f"--data_dir={images}",
                       *tiny_args(num_steps=3)]) == 0
    shutil.move(images, tmp_path / "moved")
    before = snapshot_of(tmp_path / "mine")
    capsys.readouterr()
    assert analyze_main([str(tmp_path / "mine"), "--no_tsne"]) == 2
    assert str(images) in one_error_line(capsys) and snapshot_of(tmp_path / "mine") == before


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shapes2d_small", "shapes2d_joint", "shapes2d_disentangled"])
def test_a_run_of_the_previous_release_resumes_and_analyses(name, tmp_path, capsys):
    """The runs shipped before models were built from Params: their checkpoints restore into today's models, they
    train on from their last step, and they analyse; none of them, which all learned their codes, is warned of
    collapse while training or by the analysis."""
    run = shutil.copytree(ROOT / "predictions" / name, tmp_path / name, ignore=shutil.ignore_patterns("analysis"))
    saved = vae_tf.load_run(run).params
    # its own parameters, two steps more, each validated (latents.csv; the warning compares a validation with the one
    # before); mig_step 0: seconds of training, not minutes of scoring
    vae_tf.train(dataclasses.replace(saved, output_dir=str(tmp_path), num_steps=saved.num_steps + 2, mig_step=0,
                                     validation_step=1, plot_step=0, log_step=[]), progress=False)
    assert int(vae_tf.load_run(run).optimizer.iterations.numpy()) == saved.num_steps + 2
    # Begun without today's KL decomposition, log.csv keeps its columns: the new steps' rows fit its header (rows one
    # field longer were appended, and dropped by every reader).
    assert read_log(run / "log.csv")["step"][-2:] == [saved.num_steps, saved.num_steps + 1]
    validated = read_log(run / "latents.csv")
    assert validated["step"] == [saved.num_steps + 1, saved.num_steps + 2]
    assert all(active >= 3 for active in validated["active_units"])
    assert "warning" not in capsys.readouterr().out
    assert analyze_main([str(run), "--no_tsne", "--num_images=20", "--likelihood_samples=4"]) == 0
    assert not json.loads((run / "analysis" / "summary.json").read_text())["collapsed"]
    assert "The posterior" not in capsys.readouterr().out
