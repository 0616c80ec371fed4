"""What AutoGraph costs a run's start: the training step traced with AutoGraph (as vae_tf did until it wrote its loops
as tf.while_loop) against without it (as it does now), side by side in one run (the machine is shared: read the
ratios).

    python benchmarks/bench_startup.py [--rounds=3]

AutoGraph converts the source of every function a traced function calls, once per process: each measurement runs
in a fresh process, which builds the model and traces its `train_step` once; the cases alternate over the rounds,
and medians are reported.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from timing import at_least

CASES = {  # name: params.py overrides
    "default": dict(),
    "ladder": dict(model="ladder", latent_size=10, upper_latent_sizes=[4], objective="beta_vae", beta=1.0),
    "pixelcnn": dict(decoder="pixelcnn", decoder_layers=[[16, 3, 1]] * 4, binarize=True, objective="beta_vae",
                     beta=1.0),
    "iaf": dict(flow="iaf", flow_length=2, objective="beta_vae", beta=1.0),
}
PARAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "params.py")


def measure(case, autograph):
    """Seconds to trace the case's training step in this (fresh) process."""
    import vae_tf
    import tensorflow as tf

    params = vae_tf.load_params(PARAMS, overrides=dict(CASES[case], mig_step=0))
    model = vae_tf.build_model(params)
    spec = tf.TensorSpec([params.batch_size, *model.image_shape], tf.float32)
    start = time.perf_counter()
    tf.function(model.train_step, autograph=autograph).get_concrete_function(spec)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # case autograph: one measurement, in a child
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1] == "on")))
        return
    seconds = {(case, mode): [] for case in CASES for mode in ("on", "off")}
    for _ in range(args.rounds):
        for case, mode in seconds:
            child = subprocess.run([sys.executable, __file__, "--measure", case, mode], capture_output=True, text=True,
                                   check=True)
            seconds[case, mode].append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{'case':<10} {'trace, AutoGraph':>17} {'trace, without':>15} {'ratio':>6}   (medians of {args.rounds})")
    for case in CASES:
        on, off = (statistics.median(seconds[case, mode]) for mode in ("on", "off"))
        print(f"{case:<10} {on:>16.2f}s {off:>14.2f}s {on / off:>6.2f}")


if __name__ == "__main__":
    main()
