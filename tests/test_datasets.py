"""The data sets beyond shapes2d: tensorflow-datasets ones under tfds.testing.mock_data (no network; where Debian's
Fashion-MNIST is installed, its files are read instead), MNIST-style IDX files, dsprites from a small npz with the
official field names, a folder of images the test writes, and binarisation."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import vae_tf
from vae_tf.cli import train_main
from vae_tf.datasets import DSPRITES_FILE, FashionMnist, Split, TrainingStream, _source, fixed_binarization

from conftest import ROOT, tiny_args


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)),
                                         ("celeb_a", (64, 64, 3))])
def test_tfds_sets_load_as_float_images(name, shape):
    with tfds.testing.mock_data(num_examples=12):
        # Fashion-MNIST's Debian files, where installed, win over the mock: 12 images of each split are enough.
        for split in ("train", "validation", "test"):
            images = np.stack(list(vae_tf.load_dataset(name, split=split).take(12)))
            assert images.shape[1:] == shape and images.dtype == np.float32
            assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0
        resized = next(iter(vae_tf.load_dataset(name, image_size=16)))
        assert resized.shape == (16, 16, shape[2])


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "celeb_a", "dsprites"])
def test_train_py_runs_two_steps_on_each_tfds_set(tmp_path, name, capsys):
    with tfds.testing.mock_data(num_examples=40):
        code = train_main([f"--params={ROOT / 'params.py'}", f"--output_dir={tmp_path}", f"--dataset={name}",
                           *tiny_args(num_steps=2, plot_step=0, log_step=[], validation_step=2, checkpoint_step=2)])
    assert code == 0, capsys.readouterr().err
    params = vae_tf.load_run(tmp_path / "shapes2d").params
    assert params.dataset == name


def test_celeb_a_is_centre_cropped_then_resized(monkeypatch):
    """The aligned 218×178 face: the centre 128×128 (rows 45–172, columns 25–152) is what reaches the model."""
    image = np.zeros((218, 178, 3), np.uint8)
    image[45:173, 25:153] = 200  # the crop window is bright, everything outside it dark
    dataset = tf.data.Dataset.from_tensors({"image": image}).repeat(3)
    monkeypatch.setattr("vae_tf.datasets._tfds_dataset", lambda *args: dataset)
    images = np.stack(list(vae_tf.load_dataset("celeb_a", shuffle=False)))
    assert images.shape == (3, 64, 64, 3)
    np.testing.assert_allclose(images, 200 / 255, atol=1e-6)


def test_an_unprepared_tfds_set_fails_with_one_clear_line(tmp_path):
    with pytest.raises(vae_tf.UserError) as error:
        vae_tf.load_dataset("mnist", data_dir=str(tmp_path))
    message = str(error.value)
    assert "'mnist' is not prepared" in message and "--download=True" in message
    assert "shapes2d and folder work offline" in message and "\n" not in message


def test_train_py_on_an_unprepared_tfds_set_exits_2(tmp_path, monkeypatch):
    from conftest import run_script
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no Keras cache of MNIST either
    result = run_script("train.py", f"--output_dir={tmp_path / 'out'}", "--dataset=mnist",
                        f"--data_dir={tmp_path}", *tiny_args())
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not prepared" in result.stderr
    assert not (tmp_path / "out").exists()


def write_idx(path, array):
    """An IDX file as LeCun's format defines it, written independently of the reader: magic (0, 0, 0x08, dims),
    big-endian int32 sizes, the bytes; gzipped when the name ends in .gz."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_idx_files_in_data_dir_give_every_split_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    train_labels, test_labels = rng.integers(0, 10, 40, dtype=np.uint8), rng.integers(0, 10, 10, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test)  # unzipped files are read too
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_labels)
    source = _source("fashion_mnist", data_dir=str(tmp_path))
    splits = {name: source.split(name) for name in ("train", "validation", "test")}
    assert [splits[n].num_examples for n in ("train", "validation", "test")] == [38, 2, 10]  # 95% / 5% of train
    np.testing.assert_array_equal(splits["validation"].labels["label"], train_labels[38:])
    np.testing.assert_array_equal(splits["test"].labels["label"], test_labels)
    np.testing.assert_allclose(splits["test"].images(tf.range(10, dtype=tf.int64)).numpy()[..., 0], test / 255,
                               atol=1e-6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test[:, :27])  # one image's worth short: truncated
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes((tmp_path / "t10k-images-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(vae_tf.UserError, match="truncated"):
        source.split("test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x89PNG not an idx file")
    with pytest.raises(vae_tf.UserError, match="is not an IDX file"):
        source.split("test")


FASHION_MNIST = Path(FashionMnist.SYSTEM_DIR)


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                                                       "(apt-get install dataset-fashion-mnist; .ci/run installs it)")
def test_fashion_mnist_reads_the_debian_package_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    source = _source("fashion_mnist")
    assert source.idx_folder() == FASHION_MNIST
    test = source.split("test")
    assert test.num_examples == 10000 and np.bincount(test.labels["label"]).tolist() == [1000] * 10
    assert [source.split(n).num_examples for n in ("train", "validation")] == [57000, 3000]
    images = test.images(tf.range(100, dtype=tf.int64)).numpy()
    assert images.shape == (100, 28, 28, 1) and images.max() == 1.0 and images.min() == 0.0


def test_fashion_mnist_without_its_files_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMnist, "SYSTEM_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(vae_tf.UserError) as error:
        vae_tf.load_dataset("fashion_mnist", data_dir=str(tmp_path))
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--download=True" in message
    assert "\n" not in message


def test_dynamic_binarisation_draws_each_batch_afresh_and_held_out_images_once():
    grey = np.linspace(0.0, 1.0, 16 * 16, dtype=np.float32).reshape(1, 16, 16, 1)
    split = Split(4, lambda positions: tf.tile(tf.constant(grey), [tf.size(positions), 1, 1, 1]))
    stream = TrainingStream(split, batch_size=4, seed=3, binarize=True)
    batches = np.stack([stream.batch(tf.constant(step, tf.int64)).numpy() for step in range(200)])  # [200, 4, ...]
    assert set(np.unique(batches)) == {0.0, 1.0}
    np.testing.assert_array_equal(stream.batch(tf.constant(7, tf.int64)).numpy(), batches[7])  # a resumed run's draw
    assert not np.array_equal(batches[0], batches[1])
    # Each pixel is on with its grey level as probability: over 800 draws within 4 standard errors (+ the 0/1 ends).
    frequency = batches.mean(axis=(0, 1))
    np.testing.assert_array_less(np.abs(frequency - grey[0]), 4 * np.sqrt(grey[0] * (1 - grey[0]) / 800) + 1e-6)
    fixed = fixed_binarization(split)
    first = fixed.images(tf.range(4, dtype=tf.int64)).numpy()
    assert set(np.unique(first)) == {0.0, 1.0}
    np.testing.assert_array_equal(fixed_binarization(split).images(tf.range(4, dtype=tf.int64)).numpy(), first)
    assert 0.4 < first.mean() < 0.6


def write_dsprites(path):
    """A small complete factor grid with the official npz field names (colour has one value, as in dSprites)."""
    sizes = (1, 3, 2, 2, 2, 2)
    classes = np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), axis=1)
    images = np.zeros((len(classes), 64, 64), np.uint8)
    for i, (_, shape, scale, orientation, x, y) in enumerate(classes):
        top, left = 8 + 24 * y, 8 + 24 * x
        side = 8 + 8 * scale + 4 * shape
        images[i, top:top + side, left:left + side + orientation] = 1
    np.savez_compressed(path / DSPRITES_FILE, imgs=images, latents_classes=classes,
                        latents_values=classes.astype(np.float64))
    return images, classes


def test_dsprites_from_the_official_npz(tmp_path):
    images, classes = write_dsprites(tmp_path)
    loaded = np.stack(list(vae_tf.load_dataset("dsprites", data_dir=str(tmp_path), split="train")))
    assert loaded.shape[1:] == (64, 64, 1) and set(np.unique(loaded)) <= {0.0, 1.0}
    stored = {image.tobytes() for image in images.astype(np.float32)}
    assert all(image[..., 0].tobytes() in stored for image in loaded)

    truth = vae_tf.load_ground_truth("dsprites", data_dir=str(tmp_path))
    assert truth.num_factors == 5 and truth.factors_num_values == [3, 2, 2, 2, 2]
    factors = truth.sample_factors(10, np.random.RandomState(0))
    observations = truth.sample_observations_from_factors(factors, np.random.RandomState(0))
    rows = [np.flatnonzero((classes[:, 1:] == f).all(axis=1))[0] for f in factors]
    np.testing.assert_array_equal(observations[..., 0], images[rows].astype(np.float32))


def write_folder(root):
    from PIL import Image
    rng = np.random.default_rng(0)
    (root / "nested" / "deeper").mkdir(parents=True)
    paths = []
    for i in range(24):
        folder = root if i % 3 == 0 else root / "nested" if i % 3 == 1 else root / "nested" / "deeper"
        suffix = (".png", ".jpg", ".bmp", ".gif")[i % 4]
        path = folder / f"image_{i}{suffix}"
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    (root / "nested" / "broken.png").write_bytes(b"this is not a png")
    (root / "notes.txt").write_text("not an image")
    return paths


def test_folder_reads_nested_images_skips_a_corrupt_one_and_splits_by_path(tmp_path, capsys):
    write_folder(tmp_path)
    counts = {}
    for split in ("train", "validation", "test"):
        images = np.stack(list(vae_tf.load_dataset("folder", split=split, data_dir=str(tmp_path), image_size=16)))
        assert images.shape[1:] == (16, 16, 3)
        counts[split] = len(images)
    assert sum(counts.values()) == 24 and counts["validation"] >= 1 and counts["test"] >= 1
    output = capsys.readouterr().out
    assert "skipping unreadable image" in output and "broken.png" in output and "skipped 1 unreadable" in output
    grey = next(iter(vae_tf.load_dataset("folder", data_dir=str(tmp_path), image_size=16, channels=1)))
    assert grey.shape == (16, 16, 1)
    again = np.stack(list(vae_tf.load_dataset("folder", split="test", data_dir=str(tmp_path), image_size=16,
                                              shuffle=False)))
    assert len(again) == counts["test"]
    # shuffle=True: the split's fixed order shuffled with the seed (seed, 0), as the training stream's first epoch
    fixed, shuffled = (np.stack(list(vae_tf.load_dataset("folder", data_dir=str(tmp_path), image_size=16, seed=4,
                                                         shuffle=shuffle))) for shuffle in (False, True))
    order = tf.random.experimental.stateless_shuffle(tf.range(len(fixed), dtype=tf.int64), seed=[4, 0]).numpy()
    assert len(fixed) == counts["train"] and list(order) != sorted(order)
    np.testing.assert_array_equal(shuffled, fixed[order])


def test_folder_errors(tmp_path):
    with pytest.raises(vae_tf.UserError, match="is not a folder"):
        vae_tf.load_dataset("folder", data_dir=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(vae_tf.UserError, match="found 0 image files"):
        vae_tf.load_dataset("folder", data_dir=str(tmp_path / "empty"))


def test_train_on_a_small_folder_then_analyse_it(tmp_path, tiny, capsys):
    """24 readable images and a broken one: 1 test, 1 validation, 22 training. Training says so and warns about
    validation_size; the analysis tops its single test image up with the others and says so."""
    from vae_tf.analysis import analyze

    write_folder(tmp_path / "images")
    run = vae_tf.train(tiny(dataset="folder", data_dir=str(tmp_path / "images"), num_steps=2, channels=1,
                            mig_step=1), progress=False)
    assert vae_tf.load_run(run).encoder.input_shape == (None, 16, 16, 1)
    assert not (run / "mig.csv").exists()  # no known factors: mig_step does nothing
    out = capsys.readouterr().out
    assert "22 training and 1 validation images" in out
    assert "warning: validation_size 16 is more than the 1 validation images" in out and "batch_size" not in out
    notes = []
    summary = analyze(run, progress=False, note=notes.append)
    assert summary["test"]["images_by_split"] == {"test": 1, "validation": 1, "train": 22}
    assert any("has only 1 images" in n and "22 train" in n for n in notes)
    assert (run / "analysis" / "latent_traversals_all.png").exists()
