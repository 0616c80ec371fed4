"""shapes2d: a procedural replica of the dSprites factor grid, rendered by TensorFlow ops, no download.

Factors, in order (dSprites' order, without its one-valued colour):
  shape        3   square, ellipse, heart
  scale        6   linspace(0.5, 1, 6)
  orientation 40   linspace(0, 2π, 40) (so the first and last angles draw the same image, as in dSprites)
  position_x  32   linspace(0, 1, 32): the sprite centre moves from 1/4 to 3/4 of the width, left to right
  position_y  32   linspace(0, 1, 32): likewise from 1/4 to 3/4 of the height, top to bottom
Images are binary, 64×64×1 by default (any size renders directly). Sizes were matched by eye and by
pixel counts to real dSprites frames: at scale 1 a square is 20 px wide, an ellipse 26×14 px, a
heart 20×17 px. It is not the official file and is never called dSprites.

Everything that draws images for training or scoring goes through one renderer compiled with XLA (`compiled`):
fused into one kernel it draws 4-14× faster than the op-by-op graph, fast enough to draw a whole training split
into memory when a run starts (`render_packed`; benchmarks/bench_training.py times both). Graph and XLA pixels can differ
where a pixel centre lies on a sprite's edge to float32 rounding (33 of the 3·10⁹ pixels of the 64×64 grid);
using one renderer everywhere keeps training data and metric observations the same images.
"""

import functools
import math

import numpy as np
import tensorflow as tf

FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
NATIVE_SIZE = 64
NUM_IMAGES = math.prod(FACTOR_SIZES)  # 737,280

_HALF_SQUARE = 10.0 / NATIVE_SIZE  # half the side of a scale-1 square, in image widths
_ELLIPSE_AXES = (13.0 / 10.0, 7.0 / 10.0)  # semi-axes in units of _HALF_SQUARE
_HEART_SCALE = (0.88, 0.76)  # the implicit heart curve is 2.28 × 2.23 units; this gives 20 × 17 px


def factor_labels():
    """What each factor index stands for, as colour-bar labels: factor name -> one string per index."""
    scale, orientation, x, y = factor_values()[1:]
    return {"shape": list(SHAPES), "scale": [f"{v:.1f}" for v in scale],
            "orientation": [f"{np.degrees(v):.0f}°" for v in orientation],
            "position_x": [f"{v:.2f}" for v in x], "position_y": [f"{v:.2f}" for v in y]}


def factor_values():
    """The value each factor index stands for (shape as its index)."""
    return (np.arange(3, dtype=np.float32), np.linspace(0.5, 1.0, 6, dtype=np.float32),
            np.linspace(0.0, 2 * np.pi, 40, dtype=np.float32), np.linspace(0.0, 1.0, 32, dtype=np.float32),
            np.linspace(0.0, 1.0, 32, dtype=np.float32))


def index_to_factors(index):
    """Flat image index [n] (int) -> factor indices [n, 5] (row-major over FACTOR_SIZES)."""
    return np.stack(np.unravel_index(np.asarray(index), FACTOR_SIZES), axis=-1)


def factors_to_index(factors):
    """Factor indices [n, 5] -> flat image index [n]."""
    return np.ravel_multi_index(tuple(np.asarray(factors).T), FACTOR_SIZES)


def _inside(shape, x, y):
    """Whether sprite-frame points (x, y) [n, P] lie inside the sprite `shape` [n, 1] (units of _HALF_SQUARE)."""
    square = tf.maximum(tf.abs(x), tf.abs(y)) <= 1.0
    ellipse = tf.square(x / _ELLIPSE_AXES[0]) + tf.square(y / _ELLIPSE_AXES[1]) <= 1.0
    # The heart (x² + y² − 1)³ − x²·y³ ≤ 0, point up in y; its box is y ∈ [−1, 1.23], so centre it first.
    hx, hy = x / _HEART_SCALE[0], -y / _HEART_SCALE[1] + 0.115
    heart = tf.pow(tf.square(hx) + tf.square(hy) - 1.0, 3) - tf.square(hx) * tf.pow(hy, 3) <= 0.0
    return tf.where(shape == 0, square, tf.where(shape == 1, ellipse, heart))


def render(factors, size=NATIVE_SIZE):
    """Factor indices [n, 5] (int tensor) -> binary images float32 [n, size, size, 1]."""
    factors = tf.cast(factors, tf.int32)
    values = [tf.constant(v) for v in factor_values()]
    shape, scale, angle, px, py = (tf.gather(values[i], factors[:, i])[:, None] for i in range(5))
    centre = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres, in image widths
    u = tf.constant(np.tile(centre, size))[None]  # [1, size*size], column coordinate
    v = tf.constant(np.repeat(centre, size))[None]  # row coordinate
    dx = (u - (0.25 + 0.5 * px)) / (scale * _HALF_SQUARE)
    dy = (v - (0.25 + 0.5 * py)) / (scale * _HALF_SQUARE)
    cos, sin = tf.cos(angle), tf.sin(angle)
    x, y = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate the image frame into the sprite frame
    inside = _inside(tf.cast(shape, tf.int32), x, y)
    return tf.reshape(tf.cast(inside, tf.float32), (-1, size, size, 1))


def render_indices(index, size=NATIVE_SIZE):
    """Flat image indices [n] (int tensor) -> images [n, size, size, 1]; the TF twin of index_to_factors + render."""
    index = tf.cast(index, tf.int64)
    strides = np.cumprod((1,) + FACTOR_SIZES[:0:-1])[::-1]  # row-major strides of the factor grid
    factors = tf.stack([(index // int(s)) % n for s, n in zip(strides, FACTOR_SIZES)], axis=-1)
    return render(factors, size)


def packed_row_bytes(size):
    """Bytes of one size×size binary image as packed bits (an np.packbits row)."""
    return -(-size * size // 8)


@functools.cache
def compiled(size):
    """The XLA-compiled renderers at one size: `images(index [n] int64) -> [n, size, size, 1]` and
    `packed(index [n] int64) -> uint8 [n, ceil(size²/8)]`, the same images as np.packbits rows (first pixel in the
    high bit). Cached per size, so every run of a process reuses the compilation."""
    row_bytes = packed_row_bytes(size)
    bit_weights = tf.constant([128, 64, 32, 16, 8, 4, 2, 1], tf.int32)
    signature = [tf.TensorSpec([None], tf.int64)]

    @tf.function(jit_compile=True, input_signature=signature, autograph=False)
    def images(index):
        return render_indices(index, size)

    @tf.function(jit_compile=True, input_signature=signature, autograph=False)
    def packed(index):
        bits = tf.cast(tf.reshape(render_indices(index, size), (-1, size * size)), tf.int32)
        bits = tf.pad(bits, [[0, 0], [0, row_bytes * 8 - size * size]])
        return tf.cast(tf.reduce_sum(tf.reshape(bits, (-1, row_bytes, 8)) * bit_weights, axis=2), tf.uint8)

    return images, packed


PACK_CHUNK = 8192  # images rendered per compiled call when drawing a split into memory (float32: 128 MB at 64×64)


def render_packed(index, size=NATIVE_SIZE):
    """Flat image indices [n] (numpy ints) -> the images as packed bits, uint8 [n, ceil(size²/8)] (np.packbits rows)."""
    packed = compiled(size)[1]
    index = np.asarray(index, np.int64)
    padded = np.zeros(-(-len(index) // PACK_CHUNK) * PACK_CHUNK, np.int64)  # one chunk shape: one XLA compilation
    padded[:len(index)] = index
    out = np.empty((len(index), packed_row_bytes(size)), np.uint8)
    for start in range(0, len(index), PACK_CHUNK):
        rows = packed(tf.constant(padded[start:start + PACK_CHUNK])).numpy()
        out[start:start + PACK_CHUNK] = rows[:len(out) - start]
    return out


class Shapes2DGroundTruth:
    """The ground-truth interface (docs/datasets.md) over shapes2d."""

    num_factors = len(FACTOR_SIZES)
    factors_num_values = list(FACTOR_SIZES)
    factor_names = FACTOR_NAMES

    def __init__(self, size=NATIVE_SIZE, channels=1):
        self.size = size
        self.observation_shape = (size, size, channels)
        self._images = compiled(size)[0]  # the same XLA program of the images as the training data's packed bits

    def sample_factors(self, num, random_state):
        """Uniform factor indices [num, 5]."""
        return np.stack([random_state.randint(n, size=num) for n in FACTOR_SIZES], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        """Images [num, size, size, channels] for factor indices [num, 5] (rendering is deterministic)."""
        images = self._images(tf.constant(factors_to_index(factors), tf.int64)).numpy()
        return np.repeat(images, self.observation_shape[-1], axis=-1) if self.observation_shape[-1] > 1 else images
