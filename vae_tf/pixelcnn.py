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
sampling draws the pixels one at a time in one compiled loop, the vertical stack run once a row on the rows it
reaches and the horizontal stack once a pixel on its row (`sample`). Images of one channel
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


def _make_layers(image_shape, layers, conditioning, precision):
    """The decoder's layers by name, `layers` [[filters, kernel, 1], ...]. Each layer draws its initial weights' seed
    when it is constructed: constructing them in this fixed order gives a run's seed the same weights whatever order
    the stacks call them in."""
    made = {}

    def add(layer):
        made[layer.name] = layer

    if conditioning == "spatial":
        add(SpatialBroadcast(*image_shape[:2], name="broadcast", dtype=precision))
        for i in range(2):
            add(keras.layers.Conv2D(SPATIAL_MAP_CHANNELS, 1, activation="relu", name=f"spatial_map{i}",
                                    dtype=precision))
    for i, (filters, kernel, _) in enumerate(layers):
        add(MaskedConv2D(2 * filters, (kernel, kernel), "vertical", name=f"vertical{i}", dtype=precision))
        add(keras.layers.Lambda(_down_shift, name=f"down_shift{i}", dtype=precision))
        add(keras.layers.Conv2D(2 * filters, 1, name=f"link{i}", dtype=precision))
        add(MaskedConv2D(2 * filters, (1, kernel), "horizontal", include_centre=i > 0, name=f"horizontal{i}",
                         dtype=precision))
        for stack in ("vertical", "horizontal"):
            projection = (keras.layers.Conv2D(2 * filters, 1, name=f"{stack}_code{i}", dtype=precision)
                          if conditioning == "spatial" else
                          keras.layers.Dense(2 * filters, name=f"{stack}_code{i}", dtype=precision))
            if stack == "vertical" and i == len(layers) - 1:
                continue  # the last vertical stack feeds no other; its projection is constructed for its seed alone
            add(projection)
            if conditioning != "spatial":
                add(keras.layers.Reshape((1, 1, 2 * filters), name=f"{stack}_code{i}_reshape", dtype=precision))
            add(keras.layers.Add(name=f"{stack}_sum{i}", dtype=precision))
            add(keras.layers.Lambda(_gate, name=f"{stack}_gate{i}", dtype=precision))
        add(keras.layers.Conv2D(filters, 1, name=f"horizontal_out{i}", dtype=precision))
        if i > 0:  # the horizontal stack is residual after its first layer
            add(keras.layers.Add(name=f"residual{i}", dtype=precision))
    add(keras.layers.Activation("relu", name="output_relu", dtype=precision))
    add(keras.layers.Conv2D(layers[-1][0], 1, activation="relu", name="output_hidden", dtype=precision))
    add(keras.layers.Conv2D(image_shape[-1], 1, name="logits", dtype="float32"))
    return made


def _conditioning_terms(layer, code):
    """Each gate's projection of the code by name (`vertical_code<i>`, `horizontal_code<i>`), [B, 1, 1, 2·filters]
    ("global") or [B, H, W, 2·filters] under spatial conditioning: a 1 × 1 convolution of the map s = m(z), z tiled
    over the image beside each pixel's x and y and mixed by two 1 × 1 convolutions with ReLU (§2.3). `layer(name)`
    gives the decoder's layer of that name, None if it has none."""
    spatial_map = None
    if layer("broadcast") is not None:
        spatial_map = layer("broadcast")(code)
        for i in range(2):
            spatial_map = layer(f"spatial_map{i}")(spatial_map)
    terms, i = {}, 0
    while layer(f"horizontal_code{i}") is not None:
        for name in (f"vertical_code{i}", f"horizontal_code{i}"):
            if layer(name) is None:
                continue
            terms[name] = (layer(name)(spatial_map) if spatial_map is not None
                           else layer(f"{name}_reshape")(layer(name)(code)))
        i += 1
    return terms


def _vertical_stack(layer, images, terms):
    """images [B, h, W, 1] -> each gated layer's link into the horizontal stack, [B, h, W, 2·filters]: the vertical
    stack's convolution shifted down a row, so that row r's link reads the rows above r only. `layer(name)` gives the
    decoder's layer of that name (None if none); `terms` the conditioning terms (`_conditioning_terms`), rows
    matching the images'."""
    vertical, links, i = images, [], 0
    while layer(f"vertical{i}") is not None:
        vertical_conv = layer(f"vertical{i}")(vertical)
        links.append(layer(f"link{i}")(layer(f"down_shift{i}")(vertical_conv)))
        if layer(f"vertical_gate{i}") is not None:  # not the last layer's, which would feed no other
            summed = layer(f"vertical_sum{i}")([vertical_conv, terms[f"vertical_code{i}"]])
            vertical = layer(f"vertical_gate{i}")(summed)
        i += 1
    return links


def _horizontal_stack(layer, images, links, terms):
    """images [B, h, W, 1] and their rows' `links` (`_vertical_stack`) -> logits [B, h, W, 1]: the horizontal stack,
    which reads each row's own pixels before the current one, and the output head (`layer` and `terms` as for
    `_vertical_stack`)."""
    horizontal = images
    for i, link in enumerate(links):
        gated = layer(f"horizontal_gate{i}")(layer(f"horizontal_sum{i}")(
            [layer(f"horizontal{i}")(horizontal), link, terms[f"horizontal_code{i}"]]))
        out = layer(f"horizontal_out{i}")(gated)
        # The first layer's input is the image, whose pixel i must not reach its own logit.
        horizontal = out if i == 0 else layer(f"residual{i}")([horizontal, out])
    return layer("logits")(layer("output_hidden")(layer("output_relu")(horizontal)))


def build_pixelcnn_decoder(image_shape, code_size, layers, precision="float32", conditioning="global"):
    """[codes [B, code_size], images [B, H, W, 1]] -> float32 logits [B, H, W, 1] of p(x_i | x_<i, z); `layers`
    [[filters, kernel, 1], ...] the gated layers (filters per stack, kernel k); `conditioning` "global" or
    "spatial" (the module's docstring)."""
    code, images = keras.Input((code_size,), name="z"), keras.Input(tuple(image_shape), name="images")
    layer = _make_layers(image_shape, layers, conditioning, precision).get
    terms = _conditioning_terms(layer, code)
    logits = _horizontal_stack(layer, images, _vertical_stack(layer, images, terms), terms)
    return keras.Model([code, images], logits, name="decoder")


def _layer_of(decoder):
    """`layer(name)` of a built decoder: its layer of that name, None if it has none."""
    layers = {layer.name: layer for layer in decoder.layers}
    return layers.get


def sample(decoder, code, seed):
    """Images [B, H, W, 1] in {0, 1} drawn from p(x | z) one pixel at a time, in raster order, with the stateless
    `seed` [2], in one compiled tf.while_loop over the rows, each with its own over the row's pixels.

    Within a row, only the horizontal stack reads the pixels just drawn. The vertical stack, which reads the rows
    above, runs once a row, on the rows the row's links reach: each gated layer k // 2 more, the shift one, so
    2 + Σ k // 2 rows ending at the row (the image's first rows near the top, where the full image's padding is the
    window's). Each pixel then runs the horizontal stack on its own row alone. The conditioning terms do not depend
    on the canvas: computed once, each pass takes its rows of them."""
    height, width, channels = decoder.input[1].shape[1:]
    layer = _layer_of(decoder)
    kernels, i = [], 0
    while layer(f"vertical{i}") is not None:
        kernels.append(layer(f"vertical{i}").kernel_size[0])
        i += 1
    window = min(2 + sum(kernel // 2 for kernel in kernels), height)
    terms = _conditioning_terms(layer, code)
    rows = tf.shape(code)[0]
    uniform = tf.random.stateless_uniform(tf.stack([rows, height, width, channels]), seed=seed)

    def rows_of(first, count):
        """The terms of the image rows first, ..., first + count - 1 (a global term has one row for all)."""
        return {name: term if term.shape[1] == 1 else term[:, first:first + count] for name, term in terms.items()}

    def draw_row(row, canvas):
        first = tf.maximum(row - (window - 1), 0)  # the window's first row
        links = [link[:, row - first:row - first + 1]
                 for link in _vertical_stack(layer, canvas[:, first:first + window], rows_of(first, window))]
        row_terms = rows_of(row, 1)

        def draw_pixel(column, line):
            logits = _horizontal_stack(layer, line, links, row_terms)
            probability = tf.sigmoid(logits[:, 0, column, :])  # [B, C]
            pixel = tf.cast(uniform[:, row, column, :] < probability, line.dtype)
            return column + 1, line + tf.reshape(tf.one_hot(column, width), [1, 1, width, 1]) * pixel[:, None, None]

        _, line = tf.while_loop(lambda column, _: column < width, draw_pixel,
                                (tf.constant(0), tf.zeros(tf.stack([rows, 1, width, channels]))),
                                parallel_iterations=1)
        return row + 1, canvas + tf.reshape(tf.one_hot(row, height), [1, height, 1, 1]) * line

    canvas = tf.zeros(tf.stack([rows, height, width, channels]))
    _, canvas = tf.while_loop(lambda row, _: row < height, draw_row, (tf.constant(0), canvas),
                              parallel_iterations=1)
    return canvas


def compiled_sampler(decoder):
    """`sample` of `decoder`, compiled once: (codes [B, code_size], seed [2]) -> images [B, H, W, 1]."""
    if decoder not in _SAMPLERS:
        _SAMPLERS[decoder] = tf.function(lambda code, seed: sample(decoder, code, seed), reduce_retracing=True,
                                         autograph=False)
    return _SAMPLERS[decoder]
