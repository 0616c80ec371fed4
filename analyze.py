"""Analyse saved runs: `python analyze.py predictions/<run> [...]`; see `python analyze.py --help`."""

from vae_tf.cli import analyze_main

if __name__ == "__main__":
    raise SystemExit(analyze_main())
