"""What the study runner costs, and what running two runs at once gives on this machine (run it on a quiet one).

    python benchmarks/bench_study.py [--runs=4] [--steps=1500] [--rounds=2]

Each round, in one process and alternating, times the same `runs` short shapes2d runs (params.py's model at 32x32):
1. `python train.py` one after another, the way a user would start them by hand;
2. `study.py` with each run asking for every CPU core (one run at a time, like 1): the runner's overhead per run
   is (2 − 1) / runs, Ray's start and its per-run worker included;
3. `study.py` with each run asking for one core (two at a time on 2 cores): the wall-time ratio 2 / 3 is what
   concurrency gives, against each run's own threads spread over both cores in 2.
Every measurement trains into a fresh temporary folder; nothing is kept.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import at_least

ROOT = Path(__file__).resolve().parent.parent
BASE = dict(dataset="shapes2d", image_size=32, plot_step=0, log_step=[], validation_step=0, checkpoint_step=500,
            mig_step=0)


def study_text(runs, steps, cpus):
    return ("from vae_tf.study import Study\n\nstudy = Study(base=" + repr({**BASE, "num_steps": steps}) +
            f", grid={{'beta': [1.0]}}, seeds=list(range({runs})), resources={{'num_cpus': {cpus}}})\n")


def timed(command, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def by_hand(scratch, runs, steps):
    (scratch / "empty_params.py").write_text("")  # vae_tf's defaults, as the study starts from
    start = time.perf_counter()
    for seed in range(runs):
        arguments = [f"--{name}={value!r}" if not isinstance(value, str) else f"--{name}={value}"
                     for name, value in {**BASE, "num_steps": steps, "beta": 1.0, "seed": seed}.items()]
        timed([sys.executable, str(ROOT / "train.py"), f"--params={scratch / 'empty_params.py'}",
               f"--output_dir={scratch / 'by_hand'}", f"--run_name=seed={seed}", *arguments], ROOT)
    return time.perf_counter() - start


def as_study(scratch, runs, steps, cpus):
    path = scratch / f"bench_{cpus}.py"
    path.write_text(study_text(runs, steps, cpus))
    return timed([sys.executable, str(ROOT / "study.py"), str(path), f"--output_dir={scratch / path.stem}"], ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=at_least(1), default=4)
    parser.add_argument("--steps", type=at_least(1), default=1500)
    parser.add_argument("--rounds", type=at_least(1), default=2)
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"{args.runs} runs of {args.steps} steps, {cores} CPU cores, {args.rounds} rounds")
    times = {"train.py one after another": [], f"study, one run at a time ({cores} cores each)": [],
             f"study, {cores} runs at a time (1 core each)": []}
    for round_number in range(args.rounds):
        scratch = Path(tempfile.mkdtemp(prefix="bench_study_"))
        try:
            measured = [by_hand(scratch, args.runs, args.steps), as_study(scratch, args.runs, args.steps, cores),
                        as_study(scratch, args.runs, args.steps, 1)]
        finally:
            shutil.rmtree(scratch)
        for (name, values), seconds in zip(times.items(), measured):
            values.append(seconds)
        print(f"round {round_number + 1}: " + ", ".join(f"{s:.1f} s" for s in measured))
    best = {name: min(values) for name, values in times.items()}
    for name, seconds in best.items():
        print(f"{name:<45} {seconds:7.1f} s  ({seconds / args.runs:.1f} s per run)")
    by_hand_s, one_s, many_s = best.values()
    print(f"runner overhead per run: {(one_s - by_hand_s) / args.runs:+.1f} s (study / by hand: {one_s / by_hand_s:.2f})")
    print(f"{cores} at a time against one at a time: {one_s / many_s:.2f}x the throughput")


if __name__ == "__main__":
    main()
