"""The β-VAE on shapes2d at 64×64 (preset shapes2d_64) in plain PyTorch: same layers, padding, loss, optimizer and
batch, for side-by-side speed.

`python benchmarks/torch_reference.py --steps=N` prints its training images/s. It reads params.py and the preset
itself and never imports TensorFlow, whose thread pools would slow PyTorch down in the same process.
"""

import argparse
import math
import os
import runpy
import time
import types

import torch
from torch import nn

from timing import at_least


def _conv_stack(image_shape, encoder_layers, latent_size):
    height, _, channels = image_shape
    convs = [layer for layer in encoder_layers if len(layer) == 3]
    dense = [layer[0] for layer in encoder_layers if len(layer) == 1]
    modules, in_channels, size = [], channels, height
    for filters, kernel, stride in convs:
        # TF "same" padding for an even kernel and stride 2 on an even size pads (kernel - stride) / 2 per side.
        modules += [nn.Conv2d(in_channels, filters, kernel, stride, padding=(kernel - stride) // 2), nn.ReLU()]
        in_channels, size = filters, size // stride
    modules.append(nn.Flatten())
    features = in_channels * size * size
    for units in dense:
        modules += [nn.Linear(features, units), nn.ReLU()]
        features = units
    encoder = nn.Sequential(*modules)
    head = nn.Linear(features, 2 * latent_size)
    decoder_modules, features = [], latent_size
    for units in dense[::-1]:
        decoder_modules += [nn.Linear(features, units), nn.ReLU()]
        features = units
    start = (convs[-1][0], size, size)
    decoder_modules += [nn.Linear(features, math.prod(start)), nn.ReLU(), nn.Unflatten(1, start)]
    received = [channels] + [filters for filters, _, _ in convs[:-1]]
    for i in reversed(range(len(convs))):
        _, kernel, stride = convs[i]
        decoder_modules.append(nn.ConvTranspose2d(convs[i][0], received[i], kernel, stride,
                                                  padding=(kernel - stride) // 2))
        if i > 0:
            decoder_modules.append(nn.ReLU())
    return encoder, head, nn.Sequential(*decoder_modules)


class TorchVAE(nn.Module):
    def __init__(self, image_shape, encoder_layers, latent_size):
        super().__init__()
        self.encoder, self.head, self.decoder = _conv_stack(image_shape, encoder_layers, latent_size)

    def loss(self, x, beta):
        mean, log_std = self.head(self.encoder(x)).chunk(2, dim=1)
        z = mean + log_std.exp() * torch.randn_like(mean)
        logits = self.decoder(z)
        reconstruction = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        kl = (0.5 * (mean.square() + (2 * log_std).exp() - 1) - log_std).sum(1)
        return (reconstruction + beta * kl).mean()


PRESET = "shapes2d_64"  # bench_training.py's conv64


def make_step(params, image_shape):
    """A training step closure on a fixed NCHW batch, on the GPU when there is one."""
    torch.manual_seed(params.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = TorchVAE(image_shape, params.encoder_layers, params.latent_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate, betas=(params.adam_beta_1, 0.999))
    height, width, channels = image_shape
    batch = (torch.rand(params.batch_size, channels, height, width) > 0.9).float().to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(batch, params.beta)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=at_least(1), default=100)
    args = parser.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    values = {k: v for k, v in runpy.run_path(os.path.join(root, "params.py")).items() if not k.startswith("_")}
    preset = runpy.run_path(os.path.join(root, "vae_tf", "presets.py"))["PRESETS"][PRESET]
    params = types.SimpleNamespace(**{**values, **preset})
    torch.set_num_threads(os.cpu_count())
    size = params.image_size or 64  # shapes2d
    step = make_step(params, (size, size, 1))
    step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    print(args.steps * params.batch_size / (time.perf_counter() - start))


if __name__ == "__main__":
    main()
