"""Encoder and decoder networks from the layer-list format of DESIGN §2.

A layer list holds `[filters, kernel, stride]` entries (convolutions) and `[units]` entries (dense).
The encoder lists convs then dense layers; the decoder lists dense layers then transposed convs, and
its last conv is the output layer, so its filter count is set to the image's channels.

`precision` is a Keras dtype policy for the hidden layers ("float32", "mixed_bfloat16", "mixed_float16"): they keep
float32 weights and compute in the low precision, while the output layers (mean, log_std, logits) compute in float32,
so every loss, KL and likelihood is a float32 sum (Micikevicius et al. 2018, "Mixed precision training").
"""

import math

import keras


def _convs(layers):
    return [layer for layer in layers if len(layer) == 3]


def _dense(layers):
    return [layer[0] for layer in layers if len(layer) == 1]


def build_encoder(image_shape, layers, latent_size, activation, precision="float32"):
    """images [B, H, W, C] -> (mean [B, latent], log_std [B, latent]), both float32."""
    x = inputs = keras.Input(tuple(image_shape), name="images")
    for i, (filters, kernel, stride) in enumerate(_convs(layers)):
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", activation=activation, name=f"conv{i}",
                                dtype=precision)(x)
    x = keras.layers.Flatten(name="flatten", dtype=precision)(x)
    for i, units in enumerate(_dense(layers)):
        x = keras.layers.Dense(units, activation=activation, name=f"dense{i}", dtype=precision)(x)
    mean = keras.layers.Dense(latent_size, name="mean", dtype="float32")(x)
    log_std = keras.layers.Dense(latent_size, name="log_std", dtype="float32")(x)
    return keras.Model(inputs, [mean, log_std], name="encoder")


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


def build_decoder(image_shape, latent_size, encoder_layers, decoder_layers, activation, precision="float32"):
    """z [B, latent] -> float32 logits [B, H, W, C] (the output activation belongs to the loss)."""
    height, width, channels = image_shape
    dense_units, start_channels, deconvs = decoder_plan(image_shape, encoder_layers, decoder_layers)
    x = inputs = keras.Input((latent_size,), name="z")
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation=activation, name=f"dense{i}", dtype=precision)(x)
    if not deconvs:
        x = keras.layers.Dense(height * width * channels, name="logits", dtype="float32")(x)
        return keras.Model(inputs, keras.layers.Reshape(tuple(image_shape))(x), name="decoder")
    stride = math.prod(s for _, _, s in deconvs)
    start = (height // stride, width // stride, start_channels)
    x = keras.layers.Dense(math.prod(start), activation=activation, name=f"dense{len(dense_units)}", dtype=precision)(x)
    x = keras.layers.Reshape(start, dtype=precision)(x)
    for i, (filters, kernel, stride) in enumerate(deconvs):
        last = i == len(deconvs) - 1
        x = keras.layers.Conv2DTranspose(filters, kernel, stride, padding="same",
                                         activation=None if last else activation,
                                         name="logits" if last else f"deconv{i}",
                                         dtype="float32" if last else precision)(x)
    return keras.Model(inputs, x, name="decoder")
