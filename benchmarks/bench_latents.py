"""What the latent abstraction costs, side by side in one run (the machine is shared: read the ratios).

    python benchmarks/bench_latents.py [--rounds=3] [--steps=3000] [--against=70c85fa]

Training throughput of `vae_tf.train` (what train.py runs, as params.py has it, MIG scoring off) for:
  gaussian        params.py's model (DIP-VAE-II, 10 Gaussian latents), by this tree
  gaussian_before the same, by the tree at --against (default: the commit before the latent abstraction), checked out
                  with `git worktree` into a temporary folder: the abstraction must cost it no speed (>= 0.97)
  beta_vae        params.py's model trained as a beta-VAE (beta 2)
  joint_vae       the same with a 3-way categorical beside the 10 Gaussian latents (categorical_sizes [3]): JointVAE
                  against the beta-VAE of the same size
Every measurement runs in a process of its own, the cases alternating over the rounds in ABBA order; medians are
reported.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from timing import at_least

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WARMUP = 100  # steps left out of a measurement: tracing, the first calls
CASES = {"gaussian": {}, "gaussian_before": {}, "beta_vae": {"objective": "beta_vae"},
         "joint_vae": {"objective": "beta_vae", "categorical_sizes": [3], "categorical_end_step": 1000}}


def measure(case, steps):
    """images/s of vae_tf.train over steps WARMUP..steps of one run of `case` (in this process)."""
    import vae_tf
    from vae_tf.runs import read_log

    with tempfile.TemporaryDirectory() as folder:
        tree = os.path.dirname(os.path.dirname(os.path.abspath(vae_tf.__file__)))  # the tree's own params.py
        params = vae_tf.load_params(os.path.join(tree, "params.py"), overrides={
            "output_dir": folder, "run_name": "bench", "num_steps": steps, "mig_step": 0, "log_step": [],
            "validation_tolerance": 0, **CASES[case]})
        run = vae_tf.train(params, progress=False)
        wall = read_log(run / "log.csv")["wall_time"]
    return (len(wall) - 1 - WARMUP) * params.batch_size / (wall[-1] - wall[WARMUP])


def run_case(case, steps, tree):
    """Measure `case` in a fresh process whose vae_tf (and params.py) come from `tree`."""
    env = {**os.environ, "PYTHONPATH": tree}
    code = (f"import sys; sys.path.insert(0, {tree!r}); sys.path.insert(1, {HERE!r}); import bench_latents, json; "
            f"print(json.dumps(bench_latents.measure({case!r}, {steps})))")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tree)
    if result.returncode:
        raise SystemExit(f"{case} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--steps", type=at_least(WARMUP + 2), default=3000)
    parser.add_argument("--against", default="70c85fa", help="the git revision gaussian_before trains with")
    parser.add_argument("--only", help="comma-separated cases to measure (default: all)")
    args = parser.parse_args()
    before = tempfile.mkdtemp(prefix="vae_tf_before_")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", before, args.against], check=True,
                   capture_output=True)
    try:
        cases = args.only.split(",") if args.only else list(CASES)
        rates = {case: [] for case in cases}
        for round_number in range(args.rounds):
            for case in cases if round_number % 2 == 0 else cases[::-1]:  # ABBA: a drift hits each case alike
                rates[case].append(run_case(case, args.steps, before if case == "gaussian_before" else ROOT))
                print(f"round {round_number + 1}: {case:<16} {rates[case][-1]:8.0f} images/s", flush=True)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", before], capture_output=True)
    median = {case: statistics.median(values) for case, values in rates.items()}
    print(f"\nmedians over {args.rounds} rounds of {args.steps} steps (images/s):")
    for case, value in median.items():
        print(f"  {case:<16} {value:8.0f}")
    for case, reference, note in (("gaussian", "gaussian_before", "  (target >= 0.97)"), ("joint_vae", "beta_vae", "")):
        if case in median and reference in median:
            print(f"{case} / {reference} = {median[case] / median[reference]:.3f}{note}")


if __name__ == "__main__":
    main()
