"""`python -m vae_tf.metrics CODES [FACTORS]`: the metrics of codes and factors saved by any framework, as a table.

Arrays are read from .npy, .npz (its only array, or the one named `codes` / `factors`) or .csv files (numbers separated
by commas, an optional header line); a 1-D array is one column. Bad input is one line on stderr and exit code 2,
and a refused command writes nothing: `--json` is checked before any scoring.
"""

import argparse
import json
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from vae_tf.errors import UserError
from vae_tf.metrics.checks import takes_factors
from vae_tf.metrics.ranking import CORRELATIONS, udr_from_arrays
from vae_tf.metrics.suite import (ARRAY_METRICS, DEFAULT_METRICS, LOWER_IS_BETTER, METRICS_SEED, SUITE,
                                  evaluate_arrays, format_table, markdown_table)
from vae_tf.overwrite import refuse_foreign, refuse_inputs
from vae_tf.runs import replace_atomically

EXAMPLES = """examples:
  python -m vae_tf.metrics codes.npy factors.npy
  python -m vae_tf.metrics codes.csv factors.csv --kinds=discrete,continuous --names=mig,dci,irs --json=scores.json
  python -m vae_tf.metrics scores.npz scores.npz        (an .npz holding arrays named codes and factors)
  python -m vae_tf.metrics codes.npy                    (no factors: the unsupervised scores)
  python -m vae_tf.metrics --udr seed0.npy seed1.npy seed2.npy   (codes of the same observations from several runs)
"""

# The keys of the two JSON files --json writes, the scores' and UDR's: a file holding exactly one of these sets is
# this command's to replace, any other file needs --force.
SCORES_KEYS = frozenset({"files", "protocol", "random_state", "metrics"})
UDR_KEYS = frozenset({"files", "correlation", "model_scores", "pairwise", "informative_dims"})


def chance_levels():
    """The help's listing of the array metrics, each with its chance level (SUITE's `chance`)."""
    width = max(map(len, ARRAY_METRICS))
    lines = [f"  {name:<{width}}  {SUITE[name].chance:.2f}"
             + (" (lower is better)" if name in LOWER_IS_BETTER else "")
             + ("" if name in DEFAULT_METRICS else " (run only when named)") for name in ARRAY_METRICS]
    return ("metrics (--names) and their chance levels, each one's score on codes of pure noise (10 Gaussian\n"
            "dimensions against shapes2d's five factors drawn at random, n = 10,000; benchmarks/chance_levels.py):\n"
            "a score near it does not tell a disentangled code from noise.\n" + "\n".join(lines) + "\n")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def _parser():
    parser = _Parser(prog="python -m vae_tf.metrics", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Disentanglement metrics of codes [n, d] and factors [n, k] saved as .npy, .npz or "
                                 ".csv files, row i of both describing one observation.",
                     epilog=EXAMPLES + "\n" + chance_levels())
    parser.add_argument("arrays", nargs="+", metavar="FILE",
                        help="CODES [FACTORS], or with --udr the codes of two or more runs")
    parser.add_argument("--names", metavar="NAMES", help="comma-separated metrics from those listed below (default: "
                                                         "all but the downstream tasks)")
    parser.add_argument("--kinds", metavar="KINDS", help="discrete or continuous for every factor, or one per factor "
                                                         "separated by commas (default: whole numbers are discrete)")
    parser.add_argument("--quick", action="store_true", help="the quick protocols (fewer boosting rounds, fewer "
                                                             "downstream sizes)")
    parser.add_argument("--seed", type=int, default=METRICS_SEED, help="random_state of every metric (default: "
                                                                       "%(default)s)")
    parser.add_argument("--udr", action="store_true", help="rank several runs by UDR (Duan et al. 2020)")
    parser.add_argument("--correlation", choices=CORRELATIONS, help="UDR's similarity (default: lasso)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure of the results to this JSON file "
                                                       "(new, or one this command wrote)")
    parser.add_argument("--force", action="store_true", help="let --json replace a file of another kind (never an "
                                                             "input file or a folder)")
    return parser


def check_json_path(path, inputs, force):
    """UserError, before any scoring, when writing the results to `path` (--json) would destroy something: one of
    the `inputs`, a file that is not a JSON this command wrote (unless `force`), a folder, or a path whose folder
    is missing (which would fail only after the scoring)."""
    refuse_inputs(path, inputs, "--json")
    try:
        refuse_foreign(path, lambda existing: force or _written_here(existing), "metrics JSON")
    except UserError as error:  # its message begins with the path: say which option gave it
        raise UserError(f"--json {error}") from None
    if not Path(path).parent.is_dir():
        raise UserError(f"--json {path}: there is no folder {Path(path).parent}; create it or pick another path")


def _written_here(path):
    """Whether `path` holds a JSON object with the keys of the scores or of UDR, as this command writes them. Its
    first byte tells a file of another kind (an array, a table) without reading it all."""
    try:
        with open(path, "rb") as file:
            if file.read(1) != b"{":
                return False
            file.seek(0)
            saved = json.load(file)
    except (OSError, ValueError):  # unreadable, not JSON, not text: not ours
        return False
    return isinstance(saved, dict) and set(saved) in (SCORES_KEYS, UDR_KEYS)


def load_array(path, role):
    """The array stored at `path` (.npy, .npz, .csv) as [n, columns]; `role` names the array wanted from an .npz that
    holds several."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as file:
                array = _read_npy(file, path, role)
        elif path.suffix == ".npz":
            array = _read_npz(path, role)
        elif path.suffix in (".csv", ".txt"):
            array = _read_csv(path)
        else:
            raise UserError(f"cannot read {path}: save the {role} as .npy, .npz or .csv")
    except FileNotFoundError:
        raise UserError(f"cannot read {path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error) as error:  # the last two: a damaged .npz
        raise UserError(f"cannot read {path} ({error}); it must hold the {role} as numbers") from None
    return array.reshape(-1, 1) if array.ndim == 1 else array


def _read_npy(file, name, role):
    """The array of a .npy stream, read without unpickling anything. NumPy itself calls any file without its header
    "pickled (object) data", which misleads for a text file or random bytes named .npy: say what the file is not,
    or that it holds Python objects, which only unpickling (running whatever code they hold) could load."""
    if file.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
        raise UserError(f"{name} is not a NumPy .npy file (it does not begin with NumPy's header); save the {role} "
                        f"with numpy.save, or as .csv")
    file.seek(0)
    version = np.lib.format.read_magic(file)  # 2.0's reader reads 3.0's header too: it differs in field names only
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    if header(file)[2].hasobject:
        raise UserError(f"{name} holds Python objects (an array of dtype object), not numbers; save the {role} as a "
                        f"numeric array: numpy.save(path, numpy.asarray({role}, dtype=float))")
    file.seek(0)
    return np.lib.format.read_array(file, allow_pickle=False)


def _read_npz(path, role):
    """The array named `role` in an .npz archive, else its only one (each a .npy file in a zip archive)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a NumPy .npz file (it is not a zip archive); save the {role} with "
                        f"numpy.savez, or as .npy") from None
    with archive:
        members = {member.removesuffix(".npy"): member for member in archive.namelist()}
        if len(members) != 1 and role not in members:
            held = f"the arrays {', '.join(members)}" if members else "no arrays"
            raise UserError(f"{path} holds {held}; name the {role} array {role!r} or save it alone")
        name = role if role in members else next(iter(members))
        with archive.open(members[name]) as file:
            return _read_npy(file, f"{path}'s {name}", role)


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
        # Intermixed: options may come between the files (CODES --json PATH FACTORS), as users type them.
        args = _parser().parse_intermixed_args(sys.argv[1:] if argv is None else argv)
        if args.correlation and not args.udr:
            raise UserError("--correlation is UDR's: add --udr")
        if args.force and not args.json:
            raise UserError("--force lets --json replace a file: add --json PATH")
        if args.json:
            check_json_path(args.json, args.arrays, args.force)
        table, results = _udr(args) if args.udr else _scores(args)
        if args.json:
            try:
                text = json.dumps(results, indent=2)  # in one step: a failed write leaves the earlier file whole
                replace_atomically(args.json, lambda temporary: Path(temporary).write_text(text))
            except OSError as error:
                raise UserError(f"cannot write {args.json} ({error.strerror or error}); pick another --json path") \
                    from None
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table, end="")
    return 0
