"""Train a VAE: `python train.py [--params=FILE] [--name=value ...]`; see `python train.py --help`."""

from vae_tf.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main())
