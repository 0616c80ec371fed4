import ast
import dataclasses
import json
import subprocess
import sys

import pytest

import vae_tf
from vae_tf.cli import train_main
from vae_tf.errors import UserError
from vae_tf.params import names, parse_value

from conftest import ROOT, run_script


def test_params_py_sets_every_parameter_with_a_comment():
    source = (ROOT / "params.py").read_text().splitlines()
    assigned = {}
    for node in ast.parse("\n".join(source)).body:
        if isinstance(node, ast.Assign):
            assigned[node.targets[0].id] = source[node.end_lineno - 1]
    assert sorted(assigned) == sorted(names())
    for name, line in assigned.items():
        assert "#" in line and line.split("#", 1)[1].strip(), f"{name} has no comment in params.py"


def test_default_params_match_the_documented_default_model():
    params = vae_tf.load_params(ROOT / "params.py")
    assert params == vae_tf.Params()
    assert (params.dataset, params.latent_size, params.reconstruction_loss, params.kl_schedule, params.beta,
            params.batch_size, params.activation) == ("shapes2d", 10, "bernoulli", "constant", 2.0, 64, "relu")
    assert params.encoder_layers == [[32, 4, 2]] * 3 + [[256], [256]]
    assert (params.decoder, params.decoder_layers) == ("broadcast", [[32, 1, 1]] * 3)
    assert (params.image_size, params.objective, params.dip_lambda_od, params.dip_lambda_d, params.learning_rate,
            params.num_steps, params.mig_step) == (32, "dip_vae_ii", 10.0, 100.0, 1e-3, 15000, 1000)


def test_overrides_are_parsed_to_the_parameter_type():
    params = vae_tf.load_params(ROOT / "params.py", overrides={
        "latent_size": "3", "beta": "0.5", "encoder_layers": "[[16,4,2],[64]]", "decoder_layers": "None",
        "log_step": "5,7", "run_name": "abc", "image_size": "32"})
    assert (params.latent_size, params.beta, params.encoder_layers, params.decoder_layers, params.log_step,
            params.run_name, params.image_size) == (3, 0.5, [[16, 4, 2], [64]], None, [5, 7], "abc", 32)


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        vae_tf.Params().beta = 2.0


@pytest.mark.parametrize("overrides, words", [
    ({"latnet_size": 3}, ["unknown parameter 'latnet_size'", "did you mean 'latent_size'"]),
    ({"latent_size": "ten"}, ["latent_size", "integer"]),
    ({"latent_size": 2.5}, ["latent_size must be an integer"]),
    ({"beta": "high"}, ["beta", "number"]),
    ({"latent_size": 0}, ["latent_size must be at least 1"]),
    ({"batch_size": -4}, ["batch_size must be at least 1"]),
    ({"tensorboard_step": 0}, ["tensorboard_step must be at least 1"]),
    ({"beta": -1.0}, ["beta must be a finite number >= 0"]),
    ({"learning_rate": 0.0}, ["learning_rate must be > 0"]),
    ({"adam_beta_1": 1.0}, ["adam_beta_1"]),
    ({"max_grad_norm": -1.0}, ["max_grad_norm must be a finite number >= 0"]),
    ({"max_grad_norm": float("inf")}, ["max_grad_norm"]),
    ({"dataset": "shapes2"}, ["dataset 'shapes2' is not one of", "did you mean 'shapes2d'"]),
    ({"reconstruction_loss": "mse"}, ["reconstruction_loss 'mse'"]),
    ({"kl_schedule": "cyclic"}, ["kl_schedule 'cyclic'"]),
    ({"activation": "relux"}, ["activation 'relux'", "did you mean 'relu'"]),
    ({"image_size": 30}, ["not divisible by 8", "32"]),
    ({"kl_start_step": 10, "kl_end_step": 5}, ["kl_end_step (5) precedes kl_start_step (10)"]),
    ({"encoder_layers": [[32, 4], [256]]}, ["encoder_layers must be a non-empty list"]),
    ({"encoder_layers": [[256], [32, 4, 2]]}, ["encoder_layers must list convs before dense layers"]),
    ({"decoder_layers": [[32, 4, 2], [256]]}, ["decoder_layers must list dense layers before"]),
    ({"decoder": "broadcast", "decoder_layers": [[256], [32, 3, 1]]}, ["decoder broadcast", "[filters, kernel, 1]"]),
    ({"decoder": "broadcast", "decoder_layers": [[32, 4, 2]]}, ["decoder broadcast", "[filters, kernel, 1]"]),
    ({"decoder": "upsample"}, ["decoder 'upsample' is not one of deconv, broadcast"]),
    ({"decoder": "deconv"}, ["decoder deconv with decoder_layers [[32, 1, 1]", "--decoder_layers=None"]),
    ({"run_name": "a/b"}, ["run_name must be a plain folder name"]),
    ({"log_step": [-1]}, ["log_step"]),
    ({"nan_policy": "skip_batch", "strategy": "mirrored"}, ["skip_batch works with strategy default only"]),
    ({"channels": 2}, ["channels must be 1, 3 or None"]),
])
def test_bad_values_name_the_parameter(overrides, words):
    with pytest.raises(UserError) as error:
        vae_tf.load_params(ROOT / "params.py", overrides=overrides)
    for word in words:
        assert word in str(error.value)


def test_a_run_saved_before_the_decoder_parameter_reads_as_the_deconv_decoder_it_was_trained_with(tmp_path):
    from vae_tf.runs import RunDir
    trained = vae_tf.load_params(ROOT / "params.py", overrides={"decoder": "deconv", "decoder_layers": None})
    values = dataclasses.asdict(trained)
    del values["decoder"]  # what a params.json from before the parameter holds
    (tmp_path / "params.json").write_text(json.dumps(values))
    assert RunDir(tmp_path).read_params() == trained
    assert vae_tf.build_model(RunDir(tmp_path).read_params()).decoder.output_shape == (None, 32, 32, 1)


def test_a_params_file_with_an_unknown_name_or_bad_syntax(tmp_path):
    typo = tmp_path / "typo.py"
    typo.write_text("latent_sise = 4\n")
    with pytest.raises(UserError, match="unknown parameter 'latent_sise'.*did you mean 'latent_size'.*must start with _"):
        vae_tf.load_params(typo)
    helper = tmp_path / "helper.py"
    helper.write_text("_size = 4\nlatent_size = _size * 2\n")
    assert vae_tf.load_params(helper).latent_size == 8
    broken = tmp_path / "broken.py"
    broken.write_text("beta = = 2\n")
    with pytest.raises(UserError, match="broken.py:1: syntax error"):
        vae_tf.load_params(broken)
    with pytest.raises(UserError, match="not found"):
        vae_tf.load_params(tmp_path / "missing.py")


def test_parse_value_reads_literals():
    assert parse_value("encoder_layers", "[[8,4,2]]") == [[8, 4, 2]]
    with pytest.raises(UserError, match="cannot read"):
        parse_value("encoder_layers", "[[8,4,2")


@pytest.mark.parametrize("args, words", [
    (["--latnet_size=3"], ["did you mean 'latent_size'"]),
    (["--latent_size=ten"], ["latent_size"]),
    (["--image_size=30"], ["not divisible by 8"]),
    (["--kl_start_step=9", "--kl_end_step=1"], ["precedes"]),
    (["--params=missing.py"], ["params file 'missing.py' not found"]),
    (["stray"], ["unknown parameter 'stray'"]),
    (["--preset=AE_0", "--preset=AE_1", "--run_name=x"], ["--run_name cannot be combined with several presets"]),
])
def test_train_py_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(ROOT)
    assert train_main([f"--output_dir={tmp_path / 'out'}", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "out").exists()


def test_bad_input_in_a_fresh_process_is_one_line_without_traceback(tmp_path):
    result = run_script("train.py", f"--output_dir={tmp_path / 'out'}", "--latnet_size=3")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "did you mean 'latent_size'" in result.stderr and not (tmp_path / "out").exists()


def test_train_py_help_lists_every_parameter_with_default_and_meaning():
    result = run_script("train.py", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in names():
        assert f"--{name}" in text
    assert "number of Gaussian (continuous) latent dimensions (hierarchical, ladder: of z_1, the layer the decoder " \
           "reads) (default: 10)" in text


@pytest.mark.parametrize("main, argv, shown", [("train_main", ["--help"], "--objective"),
                                               ("train_main", ["--list-presets"], "shapes2d_beta_tcvae"),
                                               ("analyze_main", ["--help"], "--baselines")])
def test_help_and_the_preset_list_need_no_tensorflow(main, argv, shown):
    """They answer in well under a second because nothing imports TensorFlow (the import alone takes seconds)."""
    script = (f"import sys\nfrom vae_tf.cli import {main}\n"
              f"try:\n    code = {main}({argv!r})\nexcept SystemExit as done:\n    code = done.code\n"
              "print(code, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip().splitlines()[-1] == "0 False", result.stderr
    assert shown in result.stdout
