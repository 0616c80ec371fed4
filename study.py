"""Run a study, a grid of runs on Ray: `python study.py studies/<name>.py`; see `python study.py --help`."""

from vae_tf.cli import study_main

if __name__ == "__main__":
    raise SystemExit(study_main())
