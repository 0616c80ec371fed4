"""A gated PixelCNN decoder conditioned on the code (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders"): p(x | z) = Π_i p(x_i | x_<i, z) over the pixels in raster order, each a Bernoulli.

Each gated layer has a vertical stack (a k × k convolution that sees the rows up to its own) and a horizontal stack
(a 1 × k convolution that sees the pixels before it in its row; the first layer's excludes the pixel itself), the
vertical stack's output shifted down a row before it joins the horizontal one, so that no pixel sees itself or a
later one and the receptive field has no blind spot (§2.2). Both stacks' activations are tanh(·) ⊙ σ(·) of the
convolution plus a projection of the code (§2.3, "global conditioning"), and the horizontal stack is residual after
its first layer. The horizontal output then goes through two 1 × 1 convolutions to the logits.

The code conditions the gates one of two ways (§2.3). "global": a projection of z, the same at every pixel. The
convolutions are translation-equivariant, so z can then say what is drawn but hardly where: on shapes2d, whose
images differ mostly by position, the code collapses. "spatial", the location-dependent form: a map s = m(z) with a
value at each pixel, which each gate reads through a 1 × 1 convolution; m here tiles z over the image with each
pixel's coordinates (`networks.SpatialBroadcast`, Watters et al. 2019) and mixes them in two 1 × 1 convolutions with
ReLU (van den Oord et al. use a deconvolutional network), so that z can say where.

Training and the likelihood read the image itself (teacher forcing: one pass gives every p(x_i | x_<i, z));
sampling draws the pixels one at a time, each pass of the network inside one compiled loop. Images of one channel
(binary or grey read as Bernoulli means); colour images would need the channel masks of van den Oord et al. 2016a.

Shapes: codes [B, code_size], images [B, H, W, 1], logits [B, H, W, 1].
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from vae_tf.networks import SpatialBroadcast

LAYERS = [[32, 5, 1]] * 5  # the default: five gated layers of 32 channels per stack, 5×5 kernels (11 rows up)
SPATIAL_MAP_CHANNELS = 32  # the width of s = m(z) and of its hidden 1 × 1 convolution
_SAMPLERS = weakref.WeakKeyDictionary()  # decoder -> its compiled `sample`, traced once per code width


@keras.saving.register_keras_serializable(package="vae_tf")
class MaskedConv2D(keras.layers.Conv2D):
    """A "same"-padded Conv2D whose kernel is multiplied by a fixed 0/1 mask: `vertical` keeps the rows up to the
    centre's (a k × k kernel); `horizontal` keeps the columns up to the centre's (a 1 × k kernel), `include_centre`
    False leaving out the centre itself."""

    def __init__(self, filters, kernel_size, stack, include_centre=True, **kwargs):
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        self.stack, self.include_centre = stack, include_centre

    def build(self, input_shape):
        super().build(input_shape)
        rows, columns = self.kernel_size
        mask = np.zeros((rows, columns), np.float32)
        if self.stack == "vertical":
            mask[:rows // 2 + 1] = 1.0
        else:
            mask[:, :columns // 2 + (1 if self.include_centre else 0)] = 1.0
        self.mask = mask[:, :, None, None]

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * keras.ops.cast(self.mask, kernel.dtype))

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        return {**config, "stack": self.stack, "include_centre": self.include_centre}


def _gate(x):
    """tanh(first half) ⊙ σ(second half) of the channels."""
    a, b = keras.ops.split(x, 2, axis=-1)
    return keras.ops.tanh(a) * keras.ops.sigmoid(b)


def _down_shift(x):
    """Each row moved one down (zeros in the first): a pixel then sees only the rows above its own."""
    return keras.ops.pad(x, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :-1]


def _spatial_map(code, height, width, precision):
    """s = m(z) [B, H, W, SPATIAL_MAP_CHANNELS]: z tiled over the image beside each pixel's x and y, then two 1 × 1
    convolutions with ReLU (a value of the code at each pixel, §2.3)."""
    s = SpatialBroadcast(height, width, name="broadcast", dtype=precision)(code)
    for i in range(2):
        s = keras.layers.Conv2D(SPATIAL_MAP_CHANNELS, 1, activation="relu", name=f"spatial_map{i}",
                                dtype=precision)(s)
    return s


def build_pixelcnn_decoder(image_shape, code_size, layers, precision="float32", conditioning="global"):
    """[codes [B, code_size], images [B, H, W, 1]] -> float32 logits [B, H, W, 1] of p(x_i | x_<i, z); `layers`
    [[filters, kernel, 1], ...] the gated layers (filters per stack, kernel k); `conditioning` "global" or
    "spatial" (the module's docstring)."""
    code, images = keras.Input((code_size,), name="z"), keras.Input(tuple(image_shape), name="images")
    spatial_map = _spatial_map(code, *image_shape[:2], precision) if conditioning == "spatial" else None
    vertical = horizontal = images
    for i, (filters, kernel, _) in enumerate(layers):
        first = i == 0

        def conditioning_term(name):
            if spatial_map is not None:
                return keras.layers.Conv2D(2 * filters, 1, name=f"{name}{i}", dtype=precision)(spatial_map)
            projected = keras.layers.Dense(2 * filters, name=f"{name}{i}", dtype=precision)(code)
            return keras.layers.Reshape((1, 1, 2 * filters), dtype=precision)(projected)

        vertical_conv = MaskedConv2D(2 * filters, (kernel, kernel), "vertical", name=f"vertical{i}",
                                     dtype=precision)(vertical)
        link = keras.layers.Conv2D(2 * filters, 1, name=f"link{i}", dtype=precision)(
            keras.layers.Lambda(_down_shift, name=f"down_shift{i}", dtype=precision)(vertical_conv))
        horizontal_conv = MaskedConv2D(2 * filters, (1, kernel), "horizontal", include_centre=not first,
                                       name=f"horizontal{i}", dtype=precision)(horizontal)
        vertical = keras.layers.Lambda(_gate, name=f"vertical_gate{i}", dtype=precision)(
            keras.layers.Add(dtype=precision)([vertical_conv, conditioning_term("vertical_code")]))
        gated = keras.layers.Lambda(_gate, name=f"horizontal_gate{i}", dtype=precision)(
            keras.layers.Add(dtype=precision)([horizontal_conv, link, conditioning_term("horizontal_code")]))
        out = keras.layers.Conv2D(filters, 1, name=f"horizontal_out{i}", dtype=precision)(gated)
        # The first layer's input is the image, whose pixel i must not reach its own logit.
        horizontal = out if first else keras.layers.Add(dtype=precision)([horizontal, out])
    x = keras.layers.Activation("relu", dtype=precision)(horizontal)
    x = keras.layers.Conv2D(layers[-1][0], 1, activation="relu", name="output_hidden", dtype=precision)(x)
    logits = keras.layers.Conv2D(image_shape[-1], 1, name="logits", dtype="float32")(x)
    return keras.Model([code, images], logits, name="decoder")


def sample(decoder, code, seed):
    """Images [B, H, W, 1] in {0, 1} drawn from p(x | z) one pixel at a time, in raster order, with the stateless
    `seed` [2]: H·W passes of `decoder`, in one compiled tf.while_loop."""
    height, width, channels = decoder.input[1].shape[1:]
    rows = tf.shape(code)[0]
    uniform = tf.random.stateless_uniform(tf.stack([rows, height, width, channels]), seed=seed)

    def draw(i, canvas):
        row, column = i // width, i % width
        probability = tf.sigmoid(decoder([code, canvas], training=False)[:, row, column, :])  # [B, C]
        pixel = tf.cast(uniform[:, row, column, :] < probability, canvas.dtype)
        place = tf.one_hot(i, height * width, dtype=canvas.dtype)
        place = tf.reshape(place, [1, height, width, 1])
        return i + 1, canvas + place * pixel[:, None, None, :]

    canvas = tf.zeros(tf.stack([rows, height, width, channels]))
    _, canvas = tf.while_loop(lambda i, _: i < height * width, draw, (tf.constant(0), canvas),
                              parallel_iterations=1)
    return canvas


def compiled_sampler(decoder):
    """`sample` of `decoder`, compiled once: (codes [B, code_size], seed [2]) -> images [B, H, W, 1]."""
    if decoder not in _SAMPLERS:
        _SAMPLERS[decoder] = tf.function(lambda code, seed: sample(decoder, code, seed), reduce_retracing=True,
                                         autograph=False)
    return _SAMPLERS[decoder]
