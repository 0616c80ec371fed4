"""`python -m vae_tf.metrics CODES [FACTORS]`: the metrics of codes and factors saved by any framework, as a table.

Arrays are read from .npy, .npz (its only array, or the one named `codes` / `factors`) or .csv files (numbers separated
by commas, an optional header line); a 1-D array is one column. Bad input is one line on stderr and exit code 2.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from vae_tf.errors import UserError
from vae_tf.metrics.checks import takes_factors
from vae_tf.metrics.ranking import CORRELATIONS, udr_from_arrays
from vae_tf.metrics.suite import (ARRAY_METRICS, DEFAULT_METRICS, METRICS_SEED, evaluate_arrays, format_table,
                                  markdown_table)

EXAMPLES = """examples:
  python -m vae_tf.metrics codes.npy factors.npy
  python -m vae_tf.metrics codes.csv factors.csv --kinds=discrete,continuous --names=mig,dci,irs --json=scores.json
  python -m vae_tf.metrics scores.npz scores.npz        (an .npz holding arrays named codes and factors)
  python -m vae_tf.metrics codes.npy                    (no factors: the unsupervised scores)
  python -m vae_tf.metrics --udr seed0.npy seed1.npy seed2.npy   (codes of the same observations from several runs)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def _parser():
    parser = _Parser(prog="python -m vae_tf.metrics", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Disentanglement metrics of codes [n, d] and factors [n, k] saved as .npy, .npz or "
                                 ".csv files, row i of both describing one observation.", epilog=EXAMPLES)
    parser.add_argument("arrays", nargs="+", metavar="FILE",
                        help="CODES [FACTORS], or with --udr the codes of two or more runs")
    parser.add_argument("--names", metavar="NAMES", help=f"comma-separated metrics from {', '.join(ARRAY_METRICS)} "
                                                         f"(default: all but the downstream tasks)")
    parser.add_argument("--kinds", metavar="KINDS", help="discrete or continuous for every factor, or one per factor "
                                                         "separated by commas (default: whole numbers are discrete)")
    parser.add_argument("--quick", action="store_true", help="the quick protocols (fewer boosting rounds, fewer "
                                                             "downstream sizes)")
    parser.add_argument("--seed", type=int, default=METRICS_SEED, help="random_state of every metric (default: "
                                                                       "%(default)s)")
    parser.add_argument("--udr", action="store_true", help="rank several runs by UDR (Duan et al. 2020)")
    parser.add_argument("--correlation", choices=CORRELATIONS, help="UDR's similarity (default: lasso)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure of the results to this JSON file")
    return parser


def load_array(path, role):
    """The array stored at `path` (.npy, .npz, .csv) as [n, columns]; `role` names the array wanted from an .npz that
    holds several."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as stored:
                if len(stored.files) != 1 and role not in stored.files:
                    raise UserError(f"{path} holds the arrays {', '.join(stored.files)}; name the {role} array "
                                    f"{role!r} or save it alone")
                array = stored[role if role in stored.files else stored.files[0]]
        elif path.suffix in (".csv", ".txt"):
            array = _read_csv(path)
        else:
            raise UserError(f"cannot read {path}: save the {role} as .npy, .npz or .csv")
    except FileNotFoundError:
        raise UserError(f"cannot read {path}: no such file") from None
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path} ({error}); it must hold the {role} as numbers") from None
    return array.reshape(-1, 1) if array.ndim == 1 else array


def _read_csv(path):
    """Numbers separated by commas, one row per observation, after an optional header line."""
    with open(path, encoding="utf-8") as file:
        first = file.readline()
    try:
        [float(cell) for cell in first.split(",")]
        header = 0
    except ValueError:
        header = 1
    return np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2)


def _kinds(text):
    if text is None:
        return None
    kinds = [kind.strip() for kind in text.split(",")]
    return kinds[0] if len(kinds) == 1 else kinds


def _scores(args):
    """(table, results) of the metrics of CODES [FACTORS]."""
    if len(args.arrays) > 2:
        raise UserError(f"got {len(args.arrays)} files: pass CODES and FACTORS (or only CODES for the unsupervised "
                        f"scores; several runs' codes with --udr)")
    codes = load_array(args.arrays[0], "codes")
    factors = load_array(args.arrays[1], "factors") if len(args.arrays) == 2 else None
    if args.names:
        names = [name.strip() for name in args.names.split(",") if name.strip()]
    else:
        names = [name for name in DEFAULT_METRICS if name in ARRAY_METRICS
                 and (factors is not None or not takes_factors(ARRAY_METRICS[name]))]
    results = evaluate_arrays(codes, factors, names, _kinds(args.kinds), args.seed, args.quick)
    return format_table({Path(args.arrays[0]).stem: results}), {
        "files": args.arrays, "protocol": "quick" if args.quick else "default", "random_state": args.seed,
        "metrics": results}


def _udr(args):
    """(table, results) of UDR over the runs' codes."""
    if args.names or args.kinds or args.quick:
        raise UserError("--udr compares runs' codes alone: --names, --kinds and --quick are for CODES FACTORS")
    correlation = args.correlation or "lasso"
    result = udr_from_arrays([load_array(path, "codes") for path in args.arrays], correlation=correlation)
    rows = [[path, f"{score:.3f}"] for path, score in zip(args.arrays, result["model_scores"])]
    return markdown_table(["run", f"UDR ({correlation})"], rows), {"files": args.arrays, "correlation": correlation,
                                                                    **result}


def main(argv=None):
    """The command's entry point; returns the exit code."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
        if args.correlation and not args.udr:
            raise UserError("--correlation is UDR's: add --udr")
        table, results = _udr(args) if args.udr else _scores(args)
        if args.json:
            try:
                Path(args.json).write_text(json.dumps(results, indent=2))
            except OSError as error:
                raise UserError(f"cannot write {args.json} ({error.strerror or error}); pick another --json path") \
                    from None
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table, end="")
    return 0
