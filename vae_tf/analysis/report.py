"""summary.json and the lines analyze.py prints: the test set's losses, likelihood, KL decomposition, active units,
each categorical's agreement with the labels, whether the posterior collapsed."""

import numpy as np

from vae_tf import latent_space
from vae_tf.analysis.classifier import summary_line as classifier_line
from vae_tf.analysis.encoding import BATCH
from vae_tf.analysis.image_likelihoods import estimate_likelihoods
from vae_tf.runs import RunDir, final_figures, read_json

LIKELIHOOD_IMAGES = 100  # test images whose log p(x) summary.json estimates
LIKELIHOOD_SAMPLES = 500  # importance samples per image for it (vae_tf.log_likelihood)
DECOMPOSITION = ("index_code_mi", "total_correlation", "dimension_wise_kl")  # the KL's parts (Chen et al. 2018)
# Encoded test images the decomposition takes as its data set: its estimate computes n × n × latent_size densities
# (2000 codes of 40 dimensions: 2 s here; all 10,000 of a --num_images=10000 analysis would take 25 times that) and
# its index-code MI is at most log n, so one n keeps analyses comparable.
DECOMPOSITION_IMAGES = 2000


def test_losses(model, images, encoded):
    """Reconstruction loss of the posterior's mode and KL (Gaussian and categorical parts), averaged over the encoded
    test images; a learned prior's or a flow's KL is estimated at one draw of each posterior."""
    import tensorflow as tf

    modes = encoded.modes()
    logits = tf.concat([model.likelihood_logits(modes[i:i + BATCH].astype(np.float32), images[i:i + BATCH])
                        for i in range(0, len(modes), BATCH)], 0)
    reconstruction = model.reconstruction_fn(tf.constant(images), logits).numpy()
    gaussian = model.latent.gaussian
    if encoded.kl is not None or gaussian.closed_form:  # a layered model's along its mean path
        kl = np.sum(encoded.kl_per_dimension())
    else:  # a learned prior or a flow: the one-sample estimate at a draw of each image's posterior
        noise = np.random.default_rng(0).standard_normal(encoded.mean.shape)
        parameters = [tf.constant(p, tf.float32) for p in encoded.gaussian_parameters]
        kl = float(np.mean(gaussian.kl(parameters, tf.constant(noise, tf.float32)).numpy()))
    return float(np.mean(reconstruction)), float(kl + sum(map(latent_space.categorical_kl, encoded.probabilities)))


def categorical_summary(model, encoded, labels):
    """Per categorical: its size, KL, whether it is active, how its images spread over its categories, how often its
    category agrees with each labelled factor (each category mapped to its majority value) and the mutual information
    between its category and each factor (nats)."""
    return [{"name": part.name, "size": part.size, "kl": latent_space.categorical_kl(probabilities),
             "active": latent_space.categorical_active(probabilities),
             "category_shares": (np.bincount(categories, minlength=part.size) / len(categories)).tolist(),
             "agreement": {name: latent_space.majority_agreement(categories, values) for name, values in labels.items()},
             "information": {name: latent_space.category_information(categories, values)
                             for name, values in labels.items()}}
            for part, probabilities, categories in zip(model.latent.categoricals, encoded.probabilities,
                                                       encoded.categories)]


def run_summary(params, checkpoint, model, log, validation, images, encoded, categoricals, kl, active, taken,
                num_images, dimension, likelihood, history=()):
    """summary.json's content: the model as train.py described it (which KL is a one-sample estimate), the final
    training figures and the test set's losses, `likelihood` (`likelihood_summary`'s), decomposition and active
    units, and whether the posterior collapsed (the test images' KL and active units) or was collapsing when training
    stopped (`history`: latents.csv's [(active units, I(x; z), KL)])."""
    reconstruction, total_kl = test_losses(model, images, encoded)
    # A flow's I(x; z) in latents.csv is q_0's, not its code's: no trend read from it.
    _, collapse = latent_space.collapse_state(int(active.sum()) + sum(c["active"] for c in categoricals), total_kl,
                                              history if model.latent.gaussian.code_information else ())
    decomposition = test_decomposition(encoded.posterior_mean, encoded.log_std, params.seed)
    return {
        "run": params.run_name, "model": model.describe(), "checkpoint": checkpoint, "prior": params.prior,
        "flow": params.flow,
        "checkpoint_step": int(model.optimizer.iterations.numpy()) if model.optimizer else None,
        "final_training": final_figures(log, validation) if log is not None else None,
        "test": {"images": len(images), "requested_images": num_images, "images_by_split": taken,
                 "reconstruction_loss": reconstruction, "kl_loss": total_kl,
                 "decomposition_images": min(len(images), DECOMPOSITION_IMAGES),
                 **decomposition},
        **likelihood,
        "kl_per_dimension": kl.tolist(),
        **(_layers(model.sizes, kl, active) if getattr(model, "layered", False) else {}),
        "active_units": int(active.sum()), "active_dimensions": np.flatnonzero(active).tolist(),
        "traversal_dimension": dimension, "collapsed": collapse is not None, "collapse": collapse,
        **({"categoricals": categoricals} if categoricals else {}),
    }


def _layers(sizes, kl, active):
    """A layered model's KL (nats, along the mean path) and active units of each stochastic layer, bottom first."""
    bounds = np.cumsum([0, *sizes])
    return {"layers": [{"size": size, "kl": float(kl[start:end].sum()), "active_units": int(active[start:end].sum())}
                       for size, start, end in zip(sizes, bounds, bounds[1:])]}


def likelihood_summary(model, images, count=LIKELIHOOD_IMAGES, samples=LIKELIHOOD_SAMPLES, progress=False,
                       folder=None):
    """Mean importance-sampled log p(x) (K = `samples`) and ELBO (nats) of the first `count` test images, with the
    standard error of the mean log p(x) over the images (ddof 1). `folder`: keep each image's figures in
    folder/likelihood.csv and resume them (`estimate_likelihoods`)."""
    from vae_tf.likelihood import elbo, log_likelihood

    subset = images[:count]
    if folder is None:
        log_p, bound = log_likelihood(model, subset, samples, progress=progress), elbo(model, subset, progress=progress)
    else:
        log_p, bound = estimate_likelihoods(model, subset, samples, folder, progress=progress)
    error = float(np.std(log_p, ddof=1) / np.sqrt(len(log_p))) if len(log_p) > 1 else None
    return {"test_log_likelihood": float(np.mean(log_p)), "test_log_likelihood_standard_error": error,
            "test_elbo": float(np.mean(bound)), "likelihood_samples": samples, "likelihood_images": len(subset)}


def test_decomposition(mean, log_std, seed):
    """The KL's decomposition on the first DECOMPOSITION_IMAGES encoded test images, taken as the data set (one sample
    each)."""
    return latent_space.kl_parts(mean[:DECOMPOSITION_IMAGES], log_std[:DECOMPOSITION_IMAGES], seed)


def read_summary(run_dir, output=None):
    """The run's analysis/summary.json (or `output`'s), or {} when there is none yet."""
    return read_json(RunDir(run_dir, output).analysis / "summary.json")


def is_current(run_dir, checkpoint, num_images, likelihood=(LIKELIHOOD_IMAGES, LIKELIHOOD_SAMPLES), output=None):
    """Whether the run's analysis (in `output`, default <run>/analysis) finished for these weights of `checkpoint`,
    this many images and this likelihood estimate (images, samples), with its figures: then --metrics need not redraw
    it."""
    run = RunDir(run_dir, output)
    summary = read_summary(run_dir, output)
    images = min(likelihood[0], summary.get("test", {}).get("images", 0))
    return (not run.analysis_incomplete.exists() and summary.get("figures", True)
            and summary.get("checkpoint") == checkpoint
            and summary.get("stamp") == run.checkpoint_stamp(checkpoint)
            and summary.get("test", {}).get("requested_images") == num_images
            and (summary.get("likelihood_images"), summary.get("likelihood_samples")) == (images, likelihood[1]))


def summary_lines(summary):
    """What analyze.py prints at the end: the test figures of `summary.json` in a few lines (nats)."""
    test = summary["test"]
    categorical_kl = sum(c["kl"] for c in summary.get("categoricals", []))
    kl = (f"KL {test['kl_loss']:.2f} = categorical {categorical_kl:.2f} + Gaussian {test['kl_loss'] - categorical_kl:.2f}"
          f"; the Gaussian KL's parts:" if "categoricals" in summary else f"KL {test['kl_loss']:.2f} =")
    if "layers" in summary:  # each layer's KL is to its own prior: the N(0, I) decomposition of the code is not it
        kl = ("KL " + " + ".join(f"z_{l + 1} {layer['kl']:.2f}" for l, layer in enumerate(summary["layers"]))
              + " (each layer's to its prior); the whole code's to N(0, I):")
    elif summary.get("prior", "normal") != "normal" or summary.get("flow", "none") != "none":
        # the decomposition is the base Gaussian's to N(0, I), whose parts do not add up to this KL
        through = " and ".join(([f"the learned prior {summary['prior']}"] if summary.get("prior", "normal") != "normal"
                                else []) + ([f"the flow {summary['flow']}"] if summary.get("flow", "none") != "none"
                                            else []))
        kl = f"KL {test['kl_loss']:.2f} with {through} (a one-sample estimate); the base Gaussian's to N(0, I):"
    error = summary.get("test_log_likelihood_standard_error")  # None from an analysis before it was kept
    return "\n".join([
        f"{summary['run']} at step {summary['checkpoint_step']}"
        + (f" (the run: {summary['train_seconds'] / 60:.1f} min of training)" if summary.get("train_seconds") else "")
        + f", {test['images']} test images:",
        f"  reconstruction loss {test['reconstruction_loss']:.2f}, {kl} index-code MI "
        f"{test['index_code_mi']:.2f} + total correlation {test['total_correlation']:.2f} + dimension-wise KL "
        f"{test['dimension_wise_kl']:.2f} (nats"
        + (f"; the parts on the first {test['decomposition_images']} images)"
           if test.get("decomposition_images", test["images"]) < test["images"] else ")"),
        f"  log-likelihood {summary['test_log_likelihood']:.2f}" + (f" ± {error:.2f}" if error is not None else "")
        + f" nats (K = {summary['likelihood_samples']} on {summary['likelihood_images']} images"
        + ("; ± its standard error over the images" if error is not None else "")
        + f"), ELBO {summary['test_elbo']:.2f}",
        f"  {summary['active_units']} of {len(summary['kl_per_dimension'])} dimensions active"
        + ("" if "layers" not in summary else " (" + ", ".join(
            f"z_{l + 1} {layer['active_units']} of {layer['size']}" for l, layer in enumerate(summary["layers"])) + ")")
        + "; "
        + (summary["collapse"] or "no posterior collapse")]
        + [f"  categorical {c['name']} ({c['size']} categories, KL {c['kl']:.2f} nats): its category agrees with "
           + ", ".join(f"{name} {share:.1%}" for name, share in c["agreement"].items())
           + " of the images (each category read as its majority value)"
           + ("; its mutual information with " + ", ".join(f"{name} {value:.3f}" for name, value in
                                                            c["information"].items()) + " nats"
              if "information" in c else "") for c in summary.get("categoricals", [])]
        + ([classifier_line(summary["classifier"])] if "classifier" in summary else []))
