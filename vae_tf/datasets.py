"""Data sets as `tf.data` pipelines of float32 images in [0, 1], shape (H, W, C).

Every data set is a registry entry whose splits are indexable (`images(indices)`), so the training
stream is a pure function of (seed, step): a resumed run continues at exactly the batch it stopped at,
with no iterator state to save.
"""

import numpy as np
import tensorflow as tf

from vae_tf import shapes2d
from vae_tf.errors import UserError

SPLITS = ("train", "validation", "test")


class Split:
    """One split: `num_examples` images addressable by position through `images(positions) -> [n, H, W, C]`."""

    def __init__(self, num_examples, images):
        self.num_examples = num_examples
        self.images = images


class Shapes2D:
    """The embedded procedural data set (see `vae_tf.shapes2d`); splits are a fixed 90/5/5 partition of the grid."""

    native_size = shapes2d.NATIVE_SIZE
    channels = 1
    held_out = shapes2d.NUM_IMAGES // 20  # 36,864 images each for validation and test

    def __init__(self, image_size=None, data_dir=None):
        self.size = image_size or self.native_size

    def split(self, name):
        order = np.random.default_rng(20181001).permutation(shapes2d.NUM_IMAGES)
        bounds = {"test": (0, self.held_out), "validation": (self.held_out, 2 * self.held_out),
                  "train": (2 * self.held_out, shapes2d.NUM_IMAGES)}[name]
        indices = tf.constant(order[slice(*bounds)], tf.int64)
        return Split(len(indices), lambda positions: shapes2d.render_indices(tf.gather(indices, positions), self.size))

    def ground_truth(self):
        return shapes2d.Shapes2DGroundTruth(self.size)


DATASETS = {"shapes2d": Shapes2D}


def _source(name, image_size=None, data_dir=None):
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](image_size=image_size, data_dir=data_dir)


def _split(source, split):
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return source.split(split)


def image_shape_of(params):
    """(H, W, C) of the images the model sees for these params."""
    source_class = DATASETS[params.dataset]
    size = params.image_size or source_class.native_size
    return (size, size, source_class.channels)


def _shuffled_positions(num_examples, seed, start):
    """Positions 0..n-1 in a fresh seeded order every epoch, endlessly, starting at overall position `start`."""
    first_epoch, offset = divmod(start, num_examples)

    def epoch(number):
        order = tf.random.experimental.stateless_shuffle(tf.range(num_examples, dtype=tf.int64), seed=[seed, number])
        return tf.data.Dataset.from_tensor_slices(order)

    return tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch).skip(offset)


def training_batches(split, batch_size, seed, start_step=0):
    """The endless stream of training batches [batch_size, H, W, C], starting at batch number `start_step`."""
    positions = _shuffled_positions(split.num_examples, seed, start_step * batch_size)
    return (positions.batch(batch_size, drop_remainder=True)
            .map(split.images, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def evaluation_batches(split, batch_size, limit=None):
    """The first `limit` images of a split in their fixed order, batched (the last batch may be smaller)."""
    count = split.num_examples if limit is None else min(limit, split.num_examples)
    return (tf.data.Dataset.range(count).batch(batch_size)
            .map(split.images, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def load_dataset(name, split="train", image_size=None, data_dir=None, seed=0, shuffle=True):
    """One pass over a split as a `tf.data.Dataset` of float32 images [H, W, C] in [0, 1].

    `shuffle=True` orders the pass by `seed` (deterministically); `shuffle=False` keeps the split's fixed order.
    """
    data = _split(_source(name, image_size, data_dir), split)
    if shuffle:
        positions = _shuffled_positions(data.num_examples, seed, 0).take(data.num_examples)
    else:
        positions = tf.data.Dataset.range(data.num_examples)
    return (positions.batch(256).map(data.images, num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch().prefetch(tf.data.AUTOTUNE))


def load_ground_truth(name, image_size=None, data_dir=None):
    """The ground-truth factor interface (DESIGN §3) of a data set that has known factors."""
    source = _source(name, image_size, data_dir)
    if not hasattr(source, "ground_truth"):
        raise UserError(f"data set {name!r} has no ground-truth factors; use shapes2d or dsprites")
    return source.ground_truth()


def splits_for(params):
    """(train, validation, test) Splits for these params."""
    source = _source(params.dataset, params.image_size, params.data_dir)
    return tuple(source.split(name) for name in SPLITS)
