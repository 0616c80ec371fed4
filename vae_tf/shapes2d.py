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
"""

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


class Shapes2DGroundTruth:
    """The ground-truth interface of DESIGN §3 over shapes2d."""

    num_factors = len(FACTOR_SIZES)
    factors_num_values = list(FACTOR_SIZES)
    factor_names = FACTOR_NAMES

    def __init__(self, size=NATIVE_SIZE, channels=1):
        self.size = size
        self.observation_shape = (size, size, channels)
        # compiled once: the metrics render thousands of images per call, about twice as fast as eager ops
        self._render = tf.function(lambda factors: tf.tile(render(factors, size), [1, 1, 1, channels]),
                                   input_signature=[tf.TensorSpec([None, len(FACTOR_SIZES)], tf.int32)])

    def sample_factors(self, num, random_state):
        """Uniform factor indices [num, 5]."""
        return np.stack([random_state.randint(n, size=num) for n in FACTOR_SIZES], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        """Images [num, size, size, channels] for factor indices [num, 5] (rendering is deterministic)."""
        return self._render(tf.constant(np.asarray(factors), tf.int32)).numpy()
