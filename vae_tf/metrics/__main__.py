"""`python -m vae_tf.metrics CODES [FACTORS]`: see `python -m vae_tf.metrics --help` and `command`."""

from vae_tf.metrics.command import main

if __name__ == "__main__":
    raise SystemExit(main())
