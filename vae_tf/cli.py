"""Command-line handling for train.py: `--name=value` for every parameter, presets, one-line errors, exit codes."""

import argparse
import sys

from vae_tf import params as params_module
from vae_tf.errors import TrainingDiverged, TrainingInterrupted, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def _current_values(argv):
    """The values a run would start from: the params file named in argv (or params.py), else the built-in defaults."""
    values = params_module.Params().to_dict()
    path = next((word.split("=", 1)[1] for word in argv if word.startswith("--params=")), "params.py")
    try:
        values.update(params_module.read_params_file(path))
    except UserError:
        pass  # --help still works outside the project folder; a real run reports the problem
    return path, values


def _parser(argv=()):
    path, current = _current_values(argv)
    parser = _Parser(prog="train.py", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Train a VAE into <output_dir>/<run_name>/ (an existing run is resumed).\n"
                                 "Values come from --params (default params.py), then --preset, then --name=value.",
                     epilog="Examples:\n"
                            "  python train.py --run_name=beta1 --beta=1 --num_steps=2000\n"
                            "  python train.py --preset=10-Beta-VAE --dataset=shapes2d --num_steps=2000\n"
                            "  python train.py --preset=AE_0 --preset=AE_1 --preset=MSE_0   (one after another)")
    parser.add_argument("--params", default="params.py", help="the params file to start from (default: %(default)s)")
    parser.add_argument("--preset", action="append", metavar="NAME",
                        help="an original experiment (see --list-presets); repeat it to run several in turn, "
                             "each in its own run folder, resuming any that is unfinished")
    parser.add_argument("--list-presets", action="store_true", help="print every preset and what it reproduces")
    group = parser.add_argument_group(f"parameters (default: the value in {path})")
    for name in params_module.names():
        group.add_argument(f"--{name}", metavar="VALUE",
                           help=f"{params_module.help_text(name)} (default: {current[name]!r})")
    return parser


def parse_train_args(argv):
    """argv -> (list of Params to train in order, list_presets flag); raises UserError for anything wrong."""
    parser = _parser(argv)
    args, unknown = parser.parse_known_args(argv)
    for word in unknown:
        name = word[2:].split("=", 1)[0] if word.startswith("--") else word
        params_module.check_name(name, "the command line")
    if args.preset and len(args.preset) > 1 and args.run_name is not None:
        raise UserError("--run_name cannot be combined with several presets: each preset trains into its own "
                        "folder named after it; drop --run_name (or use --output_dir to keep a sweep apart)")
    reserved = ("params", "preset", "list_presets")
    overrides = {name: value for name, value in vars(args).items() if name not in reserved and value is not None}
    runs = [params_module.load_params(args.params, preset=preset, overrides=overrides)
            for preset in (args.preset or [None])]
    return runs, args.list_presets


def list_presets():
    from vae_tf.presets import DESCRIPTIONS, PRESETS
    width = max(map(len, PRESETS))
    for name, overrides in PRESETS.items():
        print(f"{name:<{width}}  {overrides['dataset']:<8} {DESCRIPTIONS[name]}")


def train_main(argv=None):
    """Entry point of train.py; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        runs, wants_list = parse_train_args(argv)
        if wants_list:
            list_presets()
            return 0
        from vae_tf.training import train
        for params in runs:
            run_dir = train(params)
            print(f"run saved in {run_dir}; load it with vae_tf.load_run({str(run_dir)!r})")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        print(str(error), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before training started; the run folder was not changed", file=sys.stderr)
        return 130
    return 0
