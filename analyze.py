"""Analyse saved runs: `python analyze.py predictions/<run> [...]`; see `python analyze.py --help`."""

import sys

try:
    from vae_tf.cli import analyze_main
except KeyboardInterrupt:  # Ctrl-C while TensorFlow loads: one line, not its import traceback
    print("interrupted while starting; nothing was written", file=sys.stderr)
    raise SystemExit(130)

if __name__ == "__main__":
    raise SystemExit(analyze_main())
