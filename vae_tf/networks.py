"""Encoder and decoder networks from the layer-list format of docs/model.md.

A layer list holds `[filters, kernel, stride]` entries (convolutions) and `[units]` entries (dense).
The encoder lists convs then dense layers; the deconv decoder lists dense layers then transposed convs, and
its last conv is the output layer, so its filter count is set to the image's channels. The spatial broadcast
decoder (`decoder="broadcast"`) lists stride-1 convs only, run over z tiled across the image.

`precision` is a Keras dtype policy for the hidden layers ("float32", "mixed_bfloat16", "mixed_float16"): they keep
float32 weights and compute in the low precision, while the output layers (mean, log_std, logits) compute in float32,
so every loss, KL and likelihood is a float32 sum (Micikevicius et al. 2018, "Mixed precision training").

`activation="glu"` makes every hidden layer gated: a ⊙ σ(b) of the two halves of a linear map twice the layer's
width (Dauphin et al. 2017; the gated MLPs of the VampPrior paper, Tomczak & Welling 2018, and its successors).
"""

import math

import keras


@keras.saving.register_keras_serializable(package="vae_tf")
class Gate(keras.layers.Layer):
    """[..., 2n] -> [..., n]: the gated linear unit a ⊙ σ(b) of its input's halves a, b (Dauphin et al. 2017). A
    layer of its own, not Dense's `activation="glu"`: Keras would infer the next layer's input as the wider one."""

    def call(self, x):
        return keras.activations.glu(x)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] // 2)


def widened(width, activation):
    """The width of a hidden layer's linear map for `width` outputs: twice as wide for glu, whose Gate halves it."""
    return 2 * width if activation == "glu" else width


def activation_layer(activation, name, precision):
    """The activation as a layer of its own (after a batch norm, say): a Gate for glu."""
    if activation == "glu":
        return Gate(name=name, dtype=precision)
    return keras.layers.Activation(activation, name=name, dtype=precision)


def hidden(layer_class, width, activation, name, precision, **options):
    """A hidden layer of `width` outputs (units or filters) as a callable: `layer_class` (Dense, Conv2D,
    Conv2DTranspose) with `options` and the activation; for glu a linear map twice as wide, then its Gate."""
    if activation != "glu":
        return layer_class(width, activation=activation, name=name, dtype=precision, **options)
    linear = layer_class(widened(width, activation), name=name, dtype=precision, **options)
    gate = activation_layer(activation, f"{name}_gate", precision)
    return lambda x: gate(linear(x))


def _convs(layers):
    return [layer for layer in layers if len(layer) == 3]


def _dense(layers):
    return [layer[0] for layer in layers if len(layer) == 1]


def build_encoder(image_shape, layers, heads, activation, precision="float32", name="encoder"):
    """images [B, H, W, C] -> one float32 output [B, width] per head of `heads` [(name, width)], the latent's
    parameters (`vae_tf.latents.Latent.heads`: mean and log_std, then each categorical's logits)."""
    x = inputs = keras.Input(tuple(image_shape), name="images")
    x = _conv_stack(x, layers, precision, activation)
    x = _dense_stack(x, layers, precision, activation)
    outputs = [keras.layers.Dense(width, name=head, dtype="float32")(x) for head, width in heads]
    return keras.Model(inputs, outputs, name=name)


def build_features(image_shape, layers, activation, precision="float32", name="features"):
    """images [B, H, W, C] -> the encoder's convolutional features, flattened [B, F]: the part of a conditional
    network (q(z|x, y), p(a|x, y, z)) that reads x alone, so that it runs once per image whatever the number of
    classes."""
    inputs = keras.Input(tuple(image_shape), name="images")
    return keras.Model(inputs, _conv_stack(inputs, layers, precision, activation), name=name)


def build_conditional_head(feature_size, condition_size, layers, heads, activation, precision="float32",
                           name="encoder_head"):
    """[features [B, F], condition [B, C]] -> one float32 output [B, width] per head: the encoder's dense layers
    over the features and the condition side by side (a class one-hot in Kingma et al. 2014's q(z|x, y); the
    auxiliary a, the class and z in Maaløe et al. 2016's q(y|a, x), q(z|a, y, x) and p(a|x, y, z))."""
    features = keras.Input((feature_size,), name="features")
    condition = keras.Input((condition_size,), name="condition")
    x = keras.layers.Concatenate(name="features_and_condition", dtype=precision)([features, condition])
    x = _dense_stack(x, layers, precision, activation)
    outputs = [keras.layers.Dense(width, name=head, dtype="float32")(x) for head, width in heads]
    return keras.Model([features, condition], outputs, name=name)


def _conv_stack(x, layers, precision, activation):
    for i, (filters, kernel, stride) in enumerate(_convs(layers)):
        x = hidden(keras.layers.Conv2D, filters, activation, f"conv{i}", precision, kernel_size=kernel,
                   strides=stride, padding="same")(x)
    return keras.layers.Flatten(name="flatten", dtype=precision)(x)


def _dense_stack(x, layers, precision, activation):
    for i, units in enumerate(_dense(layers)):
        x = hidden(keras.layers.Dense, units, activation, f"dense{i}", precision)(x)
    return x


def decoder_plan(image_shape, encoder_layers, decoder_layers=None):
    """(dense units, channels fed to the first transposed conv, [(filters, kernel, stride)]) of the decoder.

    `decoder_layers=None` mirrors the encoder: its dense layers reversed, then one transposed conv per
    encoder conv in reverse order, each restoring the channel count the encoder conv received
    (e.g. encoder conv 64 → conv 64 → dense 256 gives dense 256 → 7·7·64 → deconv 64 → deconv 1).
    """
    channels = image_shape[-1]
    if decoder_layers is None:
        convs = _convs(encoder_layers)
        received = [channels] + [filters for filters, _, _ in convs[:-1]]
        deconvs = [(received[i], kernel, stride) for i, (_, kernel, stride) in reversed(list(enumerate(convs)))]
        start_channels = convs[-1][0] if convs else None
        return _dense(encoder_layers)[::-1], start_channels, deconvs
    deconvs = [tuple(layer) for layer in _convs(decoder_layers)]
    if deconvs:
        deconvs[-1] = (channels,) + deconvs[-1][1:]
    return _dense(decoder_layers), (deconvs[0][0] if deconvs else None), deconvs


def build_decoder(image_shape, code_size, encoder_layers, decoder_layers, activation, precision="float32",
                  decoder="deconv"):
    """codes [B, code_size] -> float32 logits [B, H, W, C] (the output activation belongs to the loss); code_size is
    the width of the whole code (`Latent.code_size`). The PixelCNN, which reads the images too, is
    `vae_tf.pixelcnn`'s."""
    if decoder not in ("deconv", "broadcast"):
        raise ValueError(f"networks builds the deconv and broadcast decoders, not {decoder!r}")
    if decoder == "broadcast":
        return build_broadcast_decoder(image_shape, code_size, decoder_layers or BROADCAST_LAYERS, activation,
                                       precision)
    height, width, channels = image_shape
    dense_units, start_channels, deconvs = decoder_plan(image_shape, encoder_layers, decoder_layers)
    x = inputs = keras.Input((code_size,), name="z")
    for i, units in enumerate(dense_units):
        x = hidden(keras.layers.Dense, units, activation, f"dense{i}", precision)(x)
    if not deconvs:
        x = keras.layers.Dense(height * width * channels, name="logits", dtype="float32")(x)
        return keras.Model(inputs, keras.layers.Reshape(tuple(image_shape))(x), name="decoder")
    stride = math.prod(s for _, _, s in deconvs)
    start = (height // stride, width // stride, start_channels)
    x = hidden(keras.layers.Dense, math.prod(start), activation, f"dense{len(dense_units)}", precision)(x)
    x = keras.layers.Reshape(start, dtype=precision)(x)
    for i, (filters, kernel, stride) in enumerate(deconvs):
        if i == len(deconvs) - 1:  # the output layer
            x = keras.layers.Conv2DTranspose(filters, kernel, stride, padding="same", name="logits", dtype="float32")(x)
        else:
            x = hidden(keras.layers.Conv2DTranspose, filters, activation, f"deconv{i}", precision, kernel_size=kernel,
                       strides=stride, padding="same")(x)
    return keras.Model(inputs, x, name="decoder")


# Watters et al. 2019 (appendix B): four 3×3 convs of 64 channels, stride 1.
BROADCAST_LAYERS = [[64, 3, 1]] * 4


@keras.saving.register_keras_serializable(package="vae_tf")
class SpatialBroadcast(keras.layers.Layer):
    """z [B, D] -> [B, height, width, D + 2]: z copied to every pixel, then the pixel's x and y coordinates, each
    linearly spaced over [-1, 1] (Watters et al. 2019, eq. 1)."""

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = height, width

    def call(self, z):
        batch = keras.ops.shape(z)[0]
        tiled = keras.ops.broadcast_to(z[:, None, None, :], (batch, self.height, self.width, z.shape[-1]))
        ys, xs = keras.ops.meshgrid(keras.ops.linspace(-1.0, 1.0, self.height),
                                    keras.ops.linspace(-1.0, 1.0, self.width), indexing="ij")
        grid = keras.ops.cast(keras.ops.stack([xs, ys], axis=-1)[None], z.dtype)
        return keras.ops.concatenate([tiled, keras.ops.broadcast_to(grid, (batch, self.height, self.width, 2))], -1)

    def compute_output_shape(self, shape):
        return (shape[0], self.height, self.width, shape[-1] + 2)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def build_broadcast_decoder(image_shape, latent_size, layers, activation, precision="float32"):
    """The spatial broadcast decoder (Watters et al. 2019, "Spatial Broadcast Decoder: A Simple Architecture for
    Learning Disentangled Representations in VAEs"): z [B, latent] tiled over an (H + p) × (W + p) grid with two
    coordinate channels, then `layers` ([filters, kernel, 1] convs, unpadded, so p = Σ (kernel − 1) brings the grid
    back to H × W without border effects), then a 1×1 conv to float32 logits [B, H, W, C]. Position is a pixel's
    own input rather than something to be upsampled, which is what helps the latents separate x and y."""
    height, width, channels = image_shape
    shrink = sum(kernel - 1 for _, kernel, _ in layers)
    x = inputs = keras.Input((latent_size,), name="z")
    x = SpatialBroadcast(height + shrink, width + shrink, name="broadcast", dtype=precision)(x)
    for i, (filters, kernel, _) in enumerate(layers):
        x = hidden(keras.layers.Conv2D, filters, activation, f"conv{i}", precision, kernel_size=kernel,
                   padding="valid")(x)
    x = keras.layers.Conv2D(channels, 1, name="logits", dtype="float32")(x)
    return keras.Model(inputs, x, name="decoder")
