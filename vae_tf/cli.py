"""Command-line handling for train.py, analyze.py and study.py: `--name=value` for every parameter, presets,
one-line errors, exit codes."""

import argparse
import sys
from pathlib import Path

from vae_tf import params as params_module
from vae_tf.errors import WRITE_FAILURES, TrainingDiverged, TrainingInterrupted, UserError, cannot_write


def _import_tensorflow():
    """TensorFlow, quietly, once options are known to need it (`--help` and `--list-presets` do not)."""
    import vae_tf
    try:
        vae_tf.import_tensorflow()
    except KeyboardInterrupt:  # Ctrl-C while it loads: one line, not its import traceback
        print("interrupted while starting; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def _current_values(argv):
    """The values a run would start from: the params file named in argv (or params.py), else the built-in defaults;
    and why the file could not be read (None when it was, or when there is none: --help works outside the project)."""
    values = params_module.defaults()
    path = next((word.split("=", 1)[1] for word in argv if word.startswith("--params=")), "params.py")
    try:
        values.update(params_module.read_params_file(path))
    except UserError as error:
        return path, values, str(error) if Path(path).exists() else None
    return path, values, None


def _parser(argv=()):
    path, current, problem = _current_values(argv)
    broken = (f"\n\nWARNING: {problem}\n(the defaults below are the built-in ones, not {path}'s; a run would stop "
              f"on this error)") if problem else ""
    if problem and ("-h" in argv or "--help" in argv):  # above the long usage too, where it is seen
        print(f"warning: {problem}; the defaults shown are the built-in ones", file=sys.stderr)
    parser = _Parser(prog="train.py", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Train a VAE into <output_dir>/<run_name>/ (an existing run is resumed).\n"
                                 "Values come from --params (default params.py), then --preset, then --name=value."
                                 + broken,
                     epilog="Examples:\n"
                            "  python train.py --run_name=beta1 --beta=1 --num_steps=2000\n"
                            "  python train.py --preset=10-Beta-VAE --dataset=shapes2d --num_steps=2000\n"
                            "  python train.py --preset=AE_0 --preset=AE_1 --preset=MSE_0   (one after another)")
    parser.add_argument("--params", default="params.py", help="the params file to start from (default: %(default)s)")
    parser.add_argument("--preset", action="append", metavar="NAME",
                        help="an original experiment (see --list-presets); repeat it to run several in turn, "
                             "each in its own run folder, resuming any that is unfinished")
    parser.add_argument("--list-presets", action="store_true", help="print every preset and what it reproduces")
    group = parser.add_argument_group("parameters (default: the built-in value)" if problem else
                                      f"parameters (default: the value in {path})")
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
    if args.list_presets:
        return [], True
    if args.preset and len(args.preset) > 1 and args.run_name is not None:
        raise UserError("--run_name cannot be combined with several presets: each preset trains into its own "
                        "folder named after it; drop --run_name (or use --output_dir to keep a sweep apart)")
    reserved = ("params", "preset", "list_presets")
    overrides = {name: value for name, value in vars(args).items() if name not in reserved and value is not None}
    # Every parameter is checked before TensorFlow loads (seconds), so a mistyped value is a line at once.
    runs = [params_module.load_params(args.params, preset=preset, overrides=overrides)
            for preset in (args.preset or [None])]
    _import_tensorflow()
    return runs, False


def list_presets():
    from vae_tf.presets import DESCRIPTIONS, PRESETS
    width = max(map(len, PRESETS))
    for name, overrides in PRESETS.items():
        print(f"{name:<{width}}  {overrides['dataset']:<8} {DESCRIPTIONS[name]}")


def _refused(error, retry, elsewhere):
    """A user error or a failed write as one line on stderr, exit code 2: the write's line says how to `retry` and
    where else to write. Any other OSError is not the user's: raised as it is."""
    if isinstance(error, OSError) and error.errno not in WRITE_FAILURES:
        raise error
    print(f"error: {error if isinstance(error, UserError) else cannot_write(error, retry, elsewhere)}", file=sys.stderr)
    return 2


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
            train(params)
    except (UserError, OSError) as error:  # an OSError met outside training's own handling of failed writes
        return _refused(error, "resume", "pick another --output_dir")
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        print(str(error), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        # before the stop-request handlers were installed, or a second Ctrl-C that would not wait for a checkpoint
        print("interrupted; rerun the same command to start, or to resume from the run's last checkpoint",
              file=sys.stderr)
        return 130
    return 0


def _analyze_parser():
    from vae_tf.latent_space import TEST_IMAGES
    from vae_tf.params import CHECKPOINTS
    parser = _Parser(prog="analyze.py", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Draw every figure of saved runs into <run>/analysis/, from the run folder alone.",
                     epilog="Examples:\n"
                            "  python analyze.py predictions/shapes2d_beta4\n"
                            "  python analyze.py predictions/shapes2d_beta4 --metrics --quick --export\n"
                            "  python analyze.py predictions/shapes2d_ae predictions/shapes2d_beta4 --compare\n"
                            "  python analyze.py predictions/smoke --compare   (every run of a study)\n"
                            "  python analyze.py predictions/beta4_seed0 predictions/beta4_seed1 --compare --udr\n"
                            "  python analyze.py --baselines --dataset=shapes2d --quick")
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run folders, e.g. predictions/shapes2d_beta4")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS,
                        help="which weights to analyse: the last training checkpoint, the best validation one, "
                             "or model.keras (default: latest)")
    parser.add_argument("--num_images", type=int, metavar="N",
                        help=f"test images to encode for the latent figures (default: {TEST_IMAGES})")
    parser.add_argument("--export", action="store_true",
                        help="also copy the figures under the originals' names into images/Training Results/ and "
                             "images/latent_traversal/, replacing earlier exports of the run")
    parser.add_argument("--export_dir", metavar="DIR", help="the folder --export writes into (default: images)")
    parser.add_argument("--likelihood_images", type=int, metavar="N",
                        help="test images whose importance-sampled log p(x) summary.json reports (default: 100; at "
                             "most --num_images)")
    parser.add_argument("--likelihood_samples", type=int, metavar="K",
                        help="importance samples per image for it (default: 500; the likelihood papers use 5000)")
    parser.add_argument("--no_tsne", action="store_true",
                        help="leave t-SNE out of latent_space.png (PCA stays): most of the analysis time on a CPU")
    parser.add_argument("--no_figures", action="store_true",
                        help="summary.json and the training graphs only, not the figures drawn from the model (a "
                             "PixelCNN decoder draws those pixel by pixel: about 2 minutes a run at 28 x 28)")
    parser.add_argument("--compare", action="store_true",
                        help="instead of the per-run figures: overlay the runs' curves and tabulate their final "
                             "figures (comparison.png and comparison.md beside the runs, or in --output); a study "
                             "folder stands for all of its runs")
    parser.add_argument("--udr", action="store_true",
                        help="with --compare: also rank the runs by UDR (Duan et al. 2020), how alike their codes of "
                             "the same 1,000 test images are (udr.json beside comparison.md); any data set")
    parser.add_argument("--metrics", action="store_true",
                        help="also score disentanglement into analysis/metrics.json and metrics.csv (the default "
                             "metrics: all but the downstream tasks); needs a data set with ground-truth factors")
    parser.add_argument("--metric_names", metavar="NAMES",
                        help="score only these comma-separated metrics (implies --metrics; with --baselines, the "
                             "baselines' metrics); a run's other scores of the same weights and protocol are kept, "
                             "e.g. --metric_names=mig,sap skips DCI's minutes of boosted trees")
    parser.add_argument("--quick", action="store_true", help="use the quick metric protocol (smaller samples)")
    parser.add_argument("--baselines", action="store_true",
                        help="score the baseline representations (pixels, PCA, FastICA, an untrained model, the "
                             "true factors) on --dataset")
    parser.add_argument("--dataset", metavar="NAME", help="the data set for --baselines (default: params.py's)")
    parser.add_argument("--label_baselines", nargs="*", metavar="VAE_RUN",
                        help="for a semi-supervised run (m2, adgm): also fit logistic regression on its labelled "
                             "images, on their pixels and on each VAE_RUN's posterior means, and report its test "
                             "accuracy beside q(y|x)'s")
    parser.add_argument("--output", metavar="DIR", help="where to write: each run's figures into DIR/<run> instead of "
                                                        "<run>/analysis (a read-only run, say); --compare's and "
                                                        "--baselines' files into DIR (default: the runs' folder, or "
                                                        "predictions/ for --baselines)")
    return parser


def _check_combination(args):
    """Options that would be silently ignored in this combination are an error instead."""
    if args.num_images is not None and args.num_images < 10:
        raise UserError(f"--num_images must be at least 10, got {args.num_images}")
    for flag, value in (("--likelihood_images", args.likelihood_images), ("--likelihood_samples", args.likelihood_samples)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.compare:
        from vae_tf.analysis import runs_of
        args.runs = runs_of(args.runs)
        if len(args.runs) < 2:
            raise UserError("--compare needs at least two run folders (or a study folder holding them)")
        given = [flag for flag, value in (("--metrics", args.metrics), ("--metric_names", args.metric_names),
                                          ("--export", args.export),
                                          ("--checkpoint", args.checkpoint), ("--num_images", args.num_images),
                                          ("--no_tsne", args.no_tsne), ("--no_figures", args.no_figures),
                                          ("--label_baselines", args.label_baselines is not None),
                                          ("--likelihood_images", args.likelihood_images),
                                          ("--likelihood_samples", args.likelihood_samples))
                 if value]
        if given:
            raise UserError(f"--compare only tabulates what the runs already hold; analyse them with "
                            f"{' '.join(given)} first, then compare")
    if args.output and not args.compare:  # each run's figures go to DIR/<its folder's name>: one name, one run
        names = [Path(run).resolve().name for run in args.runs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise UserError(f"--output would write the figures of several runs named {', '.join(repeated)} into one "
                            f"folder: analyse them one at a time, each with its own --output")
    if args.no_figures and args.export:
        raise UserError("--no_figures leaves out the figures that --export copies: drop one of them")
    if args.udr and not args.compare:
        raise UserError("--udr ranks several runs against each other: use it with --compare and at least two runs")
    if args.metric_names is not None:
        from vae_tf.metrics import METRICS
        names = [name.strip() for name in args.metric_names.split(",") if name.strip()]
        unknown = [name for name in names if name not in METRICS]
        if unknown or not names:
            raise UserError(f"--metric_names takes comma-separated metrics from {', '.join(METRICS)}; got "
                            f"{args.metric_names!r}")
        args.metric_names, args.metrics = names, args.metrics or not args.baselines
    if args.quick and not (args.metrics or args.baselines):
        raise UserError("--quick picks the metric protocol: use it with --metrics or --baselines")
    if args.dataset and not args.baselines:
        raise UserError("--dataset is for --baselines (a run's data set comes from its params.json)")
    if args.export_dir and not args.export:
        raise UserError("--export_dir is where --export writes; add --export")


def analyze_main(argv=None):
    """Entry point of analyze.py; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _analyze_parser().parse_args(argv)
        if not args.runs and not args.baselines:
            raise UserError("name at least one run folder, e.g. python analyze.py predictions/shapes2d_beta4 "
                            "(or use --baselines --dataset=shapes2d)")
        _check_combination(args)
        _import_tensorflow()
        from vae_tf import analysis
        from vae_tf.latent_space import TEST_IMAGES
        from vae_tf.runs import RunDir, open_run
        from vae_tf.datasets import check_ground_truth
        if args.metrics:  # before any slow work: a run whose data has no factors cannot be scored
            for run in args.runs:
                check_ground_truth(open_run(run)[1].dataset)
        if args.baselines:
            check_ground_truth(analysis.baseline_params(args.dataset, args.runs[0] if args.runs else None).dataset)
        if args.compare:
            print(analysis.compare(args.runs, args.output, udr=args.udr), end="")
        else:
            for run in args.runs:
                checkpoint, num_images = args.checkpoint or "latest", args.num_images or TEST_IMAGES
                likelihood = (args.likelihood_images or analysis.LIKELIHOOD_IMAGES,
                              args.likelihood_samples or analysis.LIKELIHOOD_SAMPLES)
                output = analysis.analysis_folder(run, args.output)
                current = (args.metrics and args.label_baselines is None
                           and analysis.is_current(run, checkpoint, num_images, likelihood, output))
                if current:
                    print(f"the figures in {RunDir(run, output).analysis} are those of this checkpoint; scoring only")
                    print(analysis.summary_lines(analysis.read_summary(run, output)))
                else:
                    analysis.analyze(run, checkpoint, num_images, tsne=not args.no_tsne, likelihood=likelihood,
                                     output=output, label_baselines=args.label_baselines,
                                     figures=not args.no_figures)
                if args.metrics:
                    print(analysis.score_run(run, checkpoint, args.quick, names=args.metric_names, output=output),
                          end="")
                if not current:
                    written = "summary.json and the training graphs" if args.no_figures else "figures"
                    print(f"{written} written to {RunDir(run, output).analysis}")
                for path in analysis.export(run, args.export_dir or "images", output) if args.export else []:
                    print(f"exported {path}")
        if args.baselines:
            print(analysis.score_baselines(args.dataset, args.runs[0] if args.runs else None, args.quick,
                                           args.output, names=args.metric_names), end="")
    except (UserError, OSError) as error:  # figures already written are whole: each replaces its file in one step
        return _refused(error, "finish the analysis", "analyse a copy of the run in a writable folder")
    except KeyboardInterrupt:
        print("interrupted; the analysis folder holds a file INCOMPLETE until a rerun finishes it (figures already "
              "written are whole), the run folder is otherwise unchanged", file=sys.stderr)
        return 130
    return 0


def _study_parser():
    parser = _Parser(prog="study.py", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Train every run of a study file on Ray (each an ordinary run folder), score them, and "
                                 "write results.csv, study_summary.json, study.md and the figures into the study "
                                 "folder. A restarted study skips finished runs and resumes unfinished ones.",
                     epilog="Examples:\n"
                            "  python study.py studies/smoke.py\n"
                            "  python study.py studies/shapes2d_objectives.py --address=auto   (an existing cluster)\n"
                            "  python study.py --aggregate predictions/smoke   (rebuild the results from the runs)")
    parser.add_argument("study", nargs="?", metavar="STUDY_FILE", help="a study file, e.g. studies/smoke.py")
    parser.add_argument("--output_dir", metavar="DIR", help="the study folder (default: predictions/<study name>)")
    parser.add_argument("--address", metavar="ADDRESS",
                        help="a Ray cluster to run on: host:port of its head, or auto (default: RAY_ADDRESS if set, "
                             "else a Ray instance on this machine for the study's duration)")
    parser.add_argument("--retry_failed", action="store_true", help="train the runs recorded as failed again")
    parser.add_argument("--aggregate", metavar="FOLDER", help="only rebuild the results of this study folder")
    parser.add_argument("--force", action="store_true",
                        help="rebuild results.csv even when it lists runs whose folders are gone, leaving them out "
                             "(without it, such a rebuild is refused and nothing is written)")
    return parser


def study_main(argv=None):
    """Entry point of study.py; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _study_parser().parse_args(argv)
        if bool(args.study) == bool(args.aggregate):
            raise UserError("name a study file (python study.py studies/smoke.py), or a study folder with --aggregate")
        if args.aggregate:
            from vae_tf.study import results
            results.check_study_folder(args.aggregate)
            summary = results.aggregate(args.aggregate, args.force)
            print(f"{args.aggregate}: {summary['finished']} finished, {summary['failed']} failed, "
                  f"{summary['unfinished']} unfinished; results.csv, study_summary.json and study.md rewritten")
            return 0
        from vae_tf.study.spec import load_study
        load_study(args.study)  # a missing or broken study file is a line at once, before TensorFlow loads (seconds)
        _import_tensorflow()
        from vae_tf.study.runner import run_study
        folder = run_study(args.study, args.output_dir, args.address, args.retry_failed, force=args.force)
        print(f"results in {folder}/results.csv, {folder}/study.md")
    except (UserError, OSError) as error:
        return _refused(error, "run the study", "pass another --output_dir")
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume: finished runs are kept, unfinished ones resume from "
              "their checkpoints", file=sys.stderr)
        return 130
    return 0
