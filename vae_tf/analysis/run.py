"""`analyze(run_dir)`: every figure of a run and its summary.json, in stages shown on a progress bar."""

from pathlib import Path

from tqdm import tqdm

from vae_tf import latent_space
from vae_tf.analysis.classifier import classifier_report, feature_runs
from vae_tf.analysis.encoding import MIN_IMAGES, encoded_test_images, test_images
from vae_tf.analysis.model_figures import draw_latent_space, draw_model_figures
from vae_tf.analysis.report import (LIKELIHOOD_IMAGES, LIKELIHOOD_SAMPLES, categorical_summary, likelihood_summary,
                                    run_summary, summary_lines)
from vae_tf.analysis.training_figures import draw_training_figures, draw_training_gif, read_logs
from vae_tf.errors import UserError
from vae_tf.runs import STUDY_JSON, RunDir, latent_history, open_run, write_json


def analysis_folder(run_dir, output=None):
    """Where a run's analysis goes: `output`/<run folder's name> when given (a read-only run's figures elsewhere),
    else None, the run's own analysis/. A folder that is a run or a study itself is refused: figures would mix with
    its files."""
    if not output:
        return None
    folder = Path(output) / Path(run_dir).resolve().name
    if RunDir(folder).params_json.exists() or (folder / STUDY_JSON).exists():
        raise UserError(f"--output {output} would put the figures of {run_dir} into {folder}, a run or study folder "
                        f"itself: pick a folder that holds no runs")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output {output}: {folder} is a file; pick another folder")
    return folder


def analyze(run_dir, checkpoint="latest", num_images=latent_space.TEST_IMAGES, progress=True, note=print, tsne=True,
            likelihood=(LIKELIHOOD_IMAGES, LIKELIHOOD_SAMPLES), output=None, label_baselines=None, figures=True):
    """Write every figure of a run into `<run>/analysis/` (or `output`); returns the summary (None when only graphs
    could be drawn). `label_baselines` (a list of run folders, maybe empty) fits logistic regression on a
    classifying run's labelled images, on pixels and on each listed run's means (`classifier.logistic_baselines`).
    `figures` False draws the training graphs and writes summary.json without the figures drawn from the model (an
    autoregressive decoder draws those pixel by pixel: about 2 minutes a run at 28 × 28).

    User problems (not a run, no log, unreadable weights) raise UserError before anything is written; a missing
    checkpoint or snapshot folder gets a one-line `note` and the figures that need it are skipped.
    """
    from vae_tf.checkpoints import missing_checkpoint, train_seconds

    run, params, log, validation, model, test, features = _inputs(run_dir, checkpoint, num_images, output,
                                                                    label_baselines)
    run.analysis.mkdir(parents=True, exist_ok=True)
    run.analysis_incomplete.write_text("analyze.py was interrupted here: the files in this folder may mix this "
                                       "analysis with an older one; rerun it to finish\n")
    stages = ["graphs", "training.gif"] + (["encoding"] + (["figures", "latent space"] if figures else [])
                                           + ["likelihood"] if model else [])
    bar = tqdm(stages, desc=f"analyze {run.name}", unit="stage", disable=not progress, leave=False)
    say = note if not progress else _beside_bars(note)

    def stage(name):
        bar.set_postfix_str(name)
        bar.update()

    try:  # closed however this ends, so an error line never lands on the bar's line
        bar.set_postfix_str("graphs")
        draw_training_figures(run, params, log, validation, say)
        stage("training.gif")
        draw_training_gif(run, say)
        if model is None:
            bar.update()
            say(f"note: {missing_checkpoint(run, params, checkpoint)} (--checkpoint); only the graphs were drawn")
            run.analysis_incomplete.unlink()
            return None
        stage("encoding")
        images, labels, taken, encoded = encoded_test_images(model, params, test, say)
        kl = encoded.kl_per_dimension()
        active = (latent_space.active_units(encoded.posterior_mean) if getattr(model, "layered", False) else
                  model.latent.gaussian.active_units(encoded.gaussian_parameters, params.seed))  # a flow's on z_K
        categoricals = categorical_summary(model, encoded, labels)
        dimension = None  # the dimension latent_traversal.png shows, when it is drawn
        if figures:
            stage("figures")
            dimension = draw_model_figures(run, params, model, images, encoded, kl, active, categoricals)
            stage("latent space (t-SNE)" if tsne else "latent space")
            draw_latent_space(run, params, encoded, labels, tsne, [part.name for part in model.latent.categoricals])
        # A model that classifies (M2) reports q(y|x): its accuracy, confusion matrix and conditional generation.
        classifier = (classifier_report(run, params, model, images, labels, encoded, features)
                      if model.classifies else None)
        stage(f"likelihood (K = {likelihood[1]} on {min(likelihood[0], len(images))} images)")
        likelihood_figures = likelihood_summary(model, images, *likelihood, progress, folder=run.analysis)
        summary = run_summary(params, checkpoint, model, log, validation, images, encoded, categoricals, kl, active,
                              taken, num_images, dimension, likelihood_figures, latent_history(run.latents_csv))
        if classifier is not None:
            summary["classifier"] = classifier
        summary["train_seconds"] = train_seconds(run)
        bar.update()
        write_json(run.analysis / "summary.json", {**summary, "figures": figures,
                                                   "stamp": run.checkpoint_stamp(checkpoint)})
        run.analysis_incomplete.unlink()
        say(summary_lines(summary))
        return summary
    finally:
        bar.close()


def _inputs(run_dir, checkpoint, num_images, output, label_baselines):
    """Everything an analysis reads, each user problem refused before anything is written: (run, params, log.csv's
    figures, validation.csv's, the model or None without a checkpoint, its test images, the label baselines' runs)."""
    from vae_tf.checkpoints import load_run

    run, params = open_run(run_dir, checkpoint, output)
    if num_images < MIN_IMAGES:
        raise UserError(f"num_images must be at least {MIN_IMAGES} (the interpolation figure alone uses ten), "
                        f"got {num_images}")
    has_checkpoint = run.has_checkpoint(checkpoint)
    # A run shipped as its checkpoint alone (no log.csv) still gets every figure drawn from the model.
    log, validation = read_logs(run) if run.log_csv.exists() or not has_checkpoint else (None, {})
    # Unreadable weights, or test images the data set cannot give, are refused before anything is written.
    model = load_run(run.path, checkpoint) if has_checkpoint else None
    test = test_images(params, num_images) if model else None
    if label_baselines is not None and not (model and model.classifies):
        raise UserError(f"--label_baselines compares a semi-supervised run's classifier with logistic regression on "
                        f"its labelled images; {run.path} is a {params.model} run"
                        + ("" if model else " without a checkpoint") + ": analyse it without --label_baselines")
    features = feature_runs(params, label_baselines) if label_baselines is not None else None
    return run, params, log, validation, model, test, features


def _beside_bars(note):
    """`note`, written while tqdm lifts its bars off the terminal, so the line never shares one with a bar."""
    def say(text):
        with tqdm.external_write_mode():
            note(text)
    return say
