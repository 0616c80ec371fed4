import numpy as np
import pytest
import tensorflow as tf

import vae_tf
from vae_tf import shapes2d
from vae_tf.datasets import Shapes2D, TrainingStream, evaluation_batches


def render(*factors):
    """One image [64, 64] per factor list; a single one unstacked."""
    images = shapes2d.render(np.array(factors)).numpy()[..., 0]
    return images[0] if len(factors) == 1 else images


def centroid(image):
    rows, cols = np.nonzero(image)
    return rows.mean(), cols.mean()


def test_the_grid_is_dsprites_sized_and_index_addressing_round_trips():
    assert shapes2d.FACTOR_SIZES == (3, 6, 40, 32, 32) and shapes2d.NUM_IMAGES == 737_280
    index = np.array([0, 1, 12345, shapes2d.NUM_IMAGES - 1])
    factors = shapes2d.index_to_factors(index)
    assert factors[-1].tolist() == [2, 5, 39, 31, 31]
    np.testing.assert_array_equal(shapes2d.factors_to_index(factors), index)
    np.testing.assert_array_equal(shapes2d.render_indices(index).numpy(), shapes2d.render(factors).numpy())


def test_the_same_indices_always_give_the_same_binary_image(tmp_path):
    """Across processes too: another Python renders the same factors to the same pixels."""
    import subprocess
    import sys
    factors = [[2, 3, 7, 10, 20], [0, 5, 0, 31, 0], [1, 0, 33, 4, 9]]
    here = render(*factors)
    assert set(np.unique(here)) == {0.0, 1.0}
    script = (f"import numpy as np\nfrom vae_tf import shapes2d\n"
              f"np.save({str(tmp_path / 'there.npy')!r}, shapes2d.render(np.array({factors})).numpy()[..., 0])")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "there.npy"), here)


def test_position_x_moves_the_sprite_right_and_position_y_moves_it_down():
    xs = [centroid(render([0, 2, 0, x, 16]))[1] for x in (0, 8, 16, 24, 31)]
    ys = [centroid(render([0, 2, 0, 16, y]))[0] for y in (0, 8, 16, 24, 31)]
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    # centres move from 1/4 to 3/4 of the image, as in dSprites
    assert xs[0] == pytest.approx(16, abs=1) and xs[-1] == pytest.approx(48, abs=1)


def test_scale_grows_the_sprite_and_matches_dsprites_sizes():
    areas = [render([0, s, 0, 16, 16]).sum() for s in range(6)]
    assert np.all(np.diff(areas) > 0)
    assert areas[0] == 100 and areas[-1] == 400  # dSprites squares: 10×10 and 20×20 pixels


def test_orientation_rotates_and_the_last_angle_equals_the_first():
    ellipse = [render([1, 5, o, 16, 16]) for o in (0, 10, 39)]
    rows, cols = np.nonzero(ellipse[0])
    assert np.ptp(cols) > np.ptp(rows)  # lying flat at angle 0
    rows, cols = np.nonzero(ellipse[1])
    assert np.ptp(rows) > np.ptp(cols)  # upright after a quarter turn (10 of 39 steps of 2π)
    np.testing.assert_array_equal(ellipse[0], ellipse[2])


def test_the_three_shapes_differ():
    images = [render([s, 5, 0, 16, 16]) for s in range(3)]
    assert all(not np.array_equal(images[i], images[j]) for i in range(3) for j in range(i + 1, 3))


def test_images_render_directly_at_other_sizes():
    small = shapes2d.render(np.array([[0, 5, 0, 0, 0]]), 32).numpy()
    assert small.shape == (1, 32, 32, 1) and small.sum() == 100  # the same sprite at half the resolution


def test_the_compiled_renderer_draws_the_op_by_op_images_and_packs_them_as_numpy_does():
    index = np.random.default_rng(0).integers(0, shapes2d.NUM_IMAGES, 3000)
    for size in (64, 9):  # 81 pixels: the last byte of a packed row is padding
        compiled = shapes2d.compiled(size)[0](tf.constant(index)).numpy()
        eager = shapes2d.render_indices(index, size).numpy()
        assert (compiled != eager).mean() < 1e-5  # only a pixel centre on a sprite's edge, to float32 rounding
        np.testing.assert_array_equal(shapes2d.render_packed(index, size),
                                      np.packbits(compiled.reshape(len(index), -1) > 0, axis=1))


def test_a_split_drawn_into_memory_and_one_drawn_batch_by_batch_and_the_ground_truth_agree(monkeypatch):
    positions = np.array([0, 7, 36_863])
    resident = Shapes2D(image_size=16, channels=3).split("validation")
    monkeypatch.setattr(Shapes2D, "RESIDENT_BYTES", 0)
    drawn = Shapes2D(image_size=16, channels=3).split("validation")
    images = resident.images(tf.constant(positions)).numpy()
    assert images.shape == (3, 16, 16, 3) and images.max() == 1.0
    np.testing.assert_array_equal(drawn.images(tf.constant(positions)).numpy(), images)
    factors = np.stack([resident.labels[name][positions] for name in shapes2d.FACTOR_NAMES], axis=1)
    ground_truth = Shapes2D(image_size=16, channels=3).ground_truth()
    np.testing.assert_array_equal(ground_truth.sample_observations_from_factors(factors, None), images)


def test_splits_are_disjoint_deterministic_and_cover_the_grid():
    source = Shapes2D()
    sizes = {name: source.split(name).num_examples for name in ("train", "validation", "test")}
    assert sum(sizes.values()) == shapes2d.NUM_IMAGES and sizes["test"] == sizes["validation"] == 36_864
    first = next(iter(evaluation_batches(source.split("test"), 8, 8))).numpy()
    again = next(iter(evaluation_batches(Shapes2D().split("test"), 8, 8))).numpy()
    np.testing.assert_array_equal(first, again)


def test_the_training_stream_resumes_at_any_batch():
    split = Shapes2D(image_size=16).split("train")
    stream = TrainingStream(split, 4, seed=3)
    from_start = [stream.batch(step).numpy() for step in range(6)]
    fresh = TrainingStream(split, 4, seed=3)
    resumed = [fresh.batch(step).numpy() for step in (4, 5)]
    np.testing.assert_array_equal(np.stack(from_start[4:]), np.stack(resumed))
    other_seed = TrainingStream(split, 4, seed=4)
    assert not np.array_equal(from_start[0], other_seed.batch(0).numpy())


def test_load_dataset_gives_float_images_in_unit_range():
    images = np.stack(list(vae_tf.load_dataset("shapes2d", split="validation", image_size=32).take(5)))
    assert images.dtype == np.float32 and images.shape == (5, 32, 32, 1)
    assert images.min() == 0.0 and images.max() == 1.0


def test_ground_truth_interface():
    truth = vae_tf.load_ground_truth("shapes2d")
    assert truth.num_factors == 5 and truth.factors_num_values == [3, 6, 40, 32, 32]
    assert truth.observation_shape == (64, 64, 1)
    factors = truth.sample_factors(7, np.random.RandomState(0))
    assert factors.shape == (7, 5) and np.all(factors < np.array(truth.factors_num_values))
    observations = truth.sample_observations_from_factors(factors, np.random.RandomState(0))
    assert observations.shape == (7, 64, 64, 1)
    # The compiled renderer: equal to the op-by-op one but where a pixel centre is on a sprite's edge to rounding.
    assert (observations != shapes2d.render(factors).numpy()).sum() <= 2
