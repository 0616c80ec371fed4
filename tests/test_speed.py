"""What makes training fast without changing it: several steps per compiled call, an input pipeline of TensorFlow
ops, mixed precision and XLA."""

import csv

import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import datasets, distribution
from vae_tf.objectives import replica_rows
from vae_tf.training import _CallSizes

from conftest import run_script, tiny_args, train_cli

EVENTS = dict(num_steps=13, checkpoint_step=5, validation_step=4, plot_step=6, log_step=[1, 3])


def log_without_times(path):
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(file)]


def weights(run):
    return [v.numpy() for v in vae_tf.load_run(run).weights]


def test_steps_per_call_changes_neither_the_log_nor_the_checkpoints_nor_the_weights(tiny):
    runs = {size: vae_tf.train(tiny(run_name=f"calls{size}", steps_per_call=size, **EVENTS), progress=False)
            for size in (1, 7, 0)}  # 7 steps cross every event; 0 sizes the calls from the step time
    one = runs[1]
    for run in runs.values():
        assert log_without_times(run / "log.csv") == log_without_times(one / "log.csv")
        assert log_without_times(run / "validation.csv") == log_without_times(one / "validation.csv")
        assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.index")) == ["ckpt-10.index", "ckpt-13.index", "ckpt-5.index"]
        assert sorted(p.name for p in (run / "images").glob("image_*.png")) == sorted(
            f"image_{s}.png" for s in (0, 1, 3, 6, 12, 13))
    reference = weights(one)
    for run in (runs[7], runs[0]):
        for a, b in zip(weights(run), reference, strict=True):
            np.testing.assert_array_equal(a, b)
    assert [int(r["step"]) for r in log_without_times(one / "validation.csv")] == [4, 8, 12]
    wall = [float(r["wall_time"]) for r in csv.DictReader(open(runs[7] / "log.csv"))]
    assert wall == sorted(wall)  # spread over each call, in order


def test_a_non_finite_loss_inside_a_call_stops_at_that_step(tmp_path):
    result = train_cli(f"--output_dir={tmp_path}", "--run_name=nan", "--steps_per_call=40",
                       *tiny_args(learning_rate=1e30, num_steps=40, checkpoint_step=100, validation_step=0,
                                  plot_step=0, log_step=[]))
    assert result.returncode == 1
    step = int(result.stderr.split("at step ")[1].split()[0])
    assert 0 < step < 39  # inside the one call of 40 steps
    rows = log_without_times(tmp_path / "nan" / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(step))  # every step before it, none after
    assert all(np.isfinite(float(r["loss"])) for r in rows)


def test_call_sizes_aim_at_a_quarter_second_and_stay_fixed_when_asked_or_in_a_cluster():
    sizes = _CallSizes(0, cluster=False)
    assert sizes.size() == 1  # traces
    sizes.timed(1, 5.0)
    assert sizes.size() == 10  # the first timed call
    sizes.timed(10, 0.01)  # 1 ms a step
    assert sizes.size() == int(_CallSizes.TARGET_SECONDS / 1e-3)
    sizes.timed(250, 250 * 0.002)  # slower: fewer steps, smoothed over calls
    assert int(_CallSizes.TARGET_SECONDS / 0.002) < sizes.size() < int(_CallSizes.TARGET_SECONDS / 0.001)
    for _ in range(20):
        sizes.timed(sizes.size(), sizes.size() * 1e-6)  # far faster: capped
    assert sizes.size() == _CallSizes.LARGEST
    slow = _CallSizes(0, cluster=False)
    slow.timed(1, 9.0)
    slow.timed(10, 20.0)  # 2 s a step: one step per call
    assert slow.size() == 1
    assert _CallSizes(7, cluster=False).size() == 7
    assert _CallSizes(0, cluster=True).size() == _CallSizes.CLUSTER


def test_the_training_stream_is_the_seeded_epoch_order_at_any_step():
    """Batch k holds positions kB .. kB + B - 1 of the concatenated epochs, each shuffled with the seed (seed, epoch),
    also where a batch spans epochs or the whole split is smaller than a batch."""
    for n, batch in ((10, 4), (3, 8), (50, 7)):
        stream = datasets.TrainingStream(datasets.Split(n, lambda p: p), batch, seed=3)
        positions = tf.function(stream.positions)
        steps = list(range(12)) + [5, 0, 11]  # in order, then back and forth as a resumed run does
        got = np.concatenate([positions(tf.constant(step)).numpy() for step in steps])
        epochs = -(-12 * batch // n)  # enough whole epochs for 12 batches
        order = np.concatenate([tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=[3, epoch])
                                for epoch in range(epochs)])  # epoch e's order: the shuffle seeded (seed, e)
        np.testing.assert_array_equal(got, np.concatenate([order[s * batch:(s + 1) * batch] for s in steps]))


def test_replicas_take_equal_slices_of_the_batch():
    stream = datasets.TrainingStream(datasets.Split(100, lambda p: p), 8, seed=0)
    batch = stream.batch(3)
    slices = [replica_rows(batch, r, 4).numpy() for r in range(4)]
    assert [len(rows) for rows in slices] == [2] * 4
    np.testing.assert_array_equal(np.concatenate(slices), stream.positions(3).numpy())


def test_in_memory_splits_gather_with_tensorflow_ops_and_the_step_has_no_python_in_it(tiny):
    rng = np.random.default_rng(0)
    binary = (rng.random((40, 9, 7, 1)) > 0.5).astype(np.uint8)  # 63 bits a row: the last byte is padded
    packed = np.packbits(binary.reshape(40, -1), axis=1)
    grey = rng.integers(0, 256, (40, 5, 5, 3), dtype=np.uint8)
    positions = tf.constant([39, 0, 17, 17])
    for split, expected in ((datasets._bit_split(packed, (9, 7, 1)), binary.astype(np.float32)),
                            (datasets._array_split(grey), grey / np.float32(255))):
        np.testing.assert_array_equal(split.images(positions).numpy(), expected[[39, 0, 17, 17]])
        stream = datasets.TrainingStream(split, 8, seed=3)
        graph = tf.function(stream.batch).get_concrete_function(
            tf.TensorSpec([], tf.int64)).graph.as_graph_def()
        ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
        assert "ResourceGather" in ops and not {"PyFunc", "EagerPyFunc"} & ops


def test_mixed_precision_computes_hidden_layers_low_and_keeps_weights_and_losses_float32(tiny):
    model = vae_tf.build_model(tiny(precision="mixed_bfloat16"))
    assert {v.dtype for v in model.weights} == {"float32"}
    layers = {(net.name, layer.name): layer.compute_dtype for net in (model.encoder, model.decoder) for layer in net.layers
              if layer.weights and layer.name not in ("mean", "log_std", "logits")}
    assert len(layers) == 4 and set(layers.values()) == {"bfloat16"}  # encoder: 2 convs, dense; decoder: its conv
    assert {layer.name: layer.compute_dtype for layer in model.encoder.layers[-2:]} == {
        "mean": "float32", "log_std": "float32"}
    assert model.decoder.layers[-1].compute_dtype == "float32"
    x = tf.constant((np.random.default_rng(0).random((4, 16, 16, 1)) > 0.5).astype(np.float32))
    terms = model.loss_terms(x, tf.constant(0), stream=0)
    assert {t.dtype for t in terms.values()} == {tf.float32}


def loss_windows(run, width=25):
    losses = np.array([float(r["loss"]) for r in log_without_times(run / "log.csv")])
    return losses.reshape(-1, width).mean(axis=1)


BFLOAT16_TOLERANCE = 0.02  # relative gap of 25-step mean losses; measured gaps are below 0.5 %


def test_bfloat16_follows_the_float32_loss_curve_and_reloads_as_it_trained(tiny):
    # Validations, snapshots and two checkpoints: every job of a run also computes in bfloat16.
    common = dict(num_steps=150, plot_step=75, log_step=[], validation_step=75, checkpoint_step=75, batch_size=32)
    f32 = loss_windows(vae_tf.train(tiny(run_name="f32", **common), progress=False))
    run = vae_tf.train(tiny(run_name="bf16", precision="mixed_bfloat16", **common), progress=False)
    bf16 = loss_windows(run)
    assert f32[-1] < 0.6 * f32[0]  # it learns, so the comparison is of a moving curve
    np.testing.assert_allclose(bf16, f32, rtol=BFLOAT16_TOLERANCE)
    latest, final = vae_tf.load_run(run), vae_tf.load_run(run, "final")
    assert final.encoder.get_layer("conv0").compute_dtype == "bfloat16"
    x = tf.constant((np.random.default_rng(1).random((3, 16, 16, 1)) > 0.5).astype(np.float32))
    np.testing.assert_array_equal(latest.reconstruct(x).numpy(), final.reconstruct(x).numpy())


def test_float16_skips_overflowing_steps_halving_the_loss_scale_and_keeps_counting_steps(tiny):
    run = vae_tf.train(tiny(run_name="f16", precision="mixed_float16", num_steps=20, plot_step=0, log_step=[],
                            validation_step=0, checkpoint_step=20), progress=False)
    rows = log_without_times(run / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(20))
    skipped = [float(r["skipped"]) for r in rows]
    assert all(s == (not np.isfinite(float(r["grad_norm"]))) for s, r in zip(skipped, rows))
    assert 0 < sum(skipped) < 20  # the initial scale 2^15 overflows float16 at first, then training goes on
    model = vae_tf.load_run(run)
    assert int(model.optimizer.iterations.numpy()) == 20
    # each overflow halves the scale; no growth happens before 2000 good steps
    assert float(model.optimizer.dynamic_scale.numpy()) == 2.0 ** (15 - sum(skipped))


@pytest.mark.slow
def test_jit_compiled_steps_compute_the_graph_step_and_follow_its_loss_curve(tiny):
    """XLA computes the same networks and loss to float32 rounding. Its sampling noise is another stream: XLA draws
    stateless normals from a seed known only at run time (the step counter) with a Philox of its own, so a jit run
    follows the graph run's loss curve, not its values."""
    model = vae_tf.build_model(tiny())
    x = tf.constant((np.random.default_rng(2).random((8, 16, 16, 1)) > 0.8).astype(np.float32))

    def deterministic(x):  # everything but the noise: the posterior, the decoded mean, its reconstruction loss
        mean, log_std = model.encoder(x, training=True)
        logits = model.decoder(mean, training=True)
        return mean, log_std, logits, model.reconstruction_fn(x, logits)

    for graph, xla in zip(tf.function(deterministic)(x), tf.function(deterministic, jit_compile=True)(x)):
        np.testing.assert_allclose(xla.numpy(), graph.numpy(), rtol=1e-4, atol=1e-5)
    common = dict(num_steps=100, plot_step=0, log_step=[], validation_step=0, checkpoint_step=100, batch_size=32)
    graph = loss_windows(vae_tf.train(tiny(run_name="graph", **common), progress=False))
    xla = loss_windows(vae_tf.train(tiny(run_name="xla", jit_compile=True, **common), progress=False))
    assert xla[-1] < 0.6 * xla[0] and graph[-1] < 0.6 * graph[0]  # both learn
    np.testing.assert_allclose(xla[1:], graph[1:], rtol=0.05)  # past the first 25 steps, within 5%


def test_jit_compile_with_several_devices_is_one_line(tmp_path):
    result = run_script("train.py", f"--output_dir={tmp_path}", "--jit_compile=True", "--strategy=mirrored")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: jit_compile works with strategy default only (XLA cannot compile the replicas' gradient all-reduce "
        "inside the step); use jit_compile False with several devices"]


def test_mixed_float16_with_several_devices_is_one_line(tiny):
    with pytest.raises(vae_tf.UserError, match="precision mixed_float16 works with strategy default only"):
        tiny(precision="mixed_float16", strategy="mirrored")


@pytest.mark.parametrize("precision, flags, gpu, expected", [
    ("float32", set(), None, None),
    ("mixed_bfloat16", {"avx2", "avx512_bf16"}, None, None),
    ("mixed_bfloat16", {"avx2", "amx_bf16"}, None, None),
    ("mixed_bfloat16", {"avx2", "avx512f"}, None, "neither AVX-512 BF16 nor AMX"),
    ("mixed_float16", {"avx512_bf16"}, None, "mixed_float16 is for GPUs"),
    ("mixed_bfloat16", set(), (7, 5), "compute capability 8.0 or newer"),
    ("mixed_float16", set(), (7, 5), None),
    ("mixed_float16", set(), (6, 1), "compute capability 7.0 or newer"),
])
def test_a_precision_the_device_cannot_run_fast_gets_a_warning(monkeypatch, precision, flags, gpu, expected):
    monkeypatch.setattr(distribution, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: ["gpu0"] if gpu and kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: {"compute_capability": gpu})
    warning = distribution.precision_warning(precision)
    assert warning is None if expected is None else (expected in warning and warning.startswith("warning: "))
