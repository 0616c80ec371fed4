"""What a trained encoder's latent space looks like, as pure NumPy functions of its encodings.

Shapes: `mean` and `log_std` are the posterior parameters [n, latent] of n encoded images.
"""

import numpy as np

TEST_IMAGES = 1000  # test images analyze.py encodes for the latent figures, as the β-VAE project's traversal did
ACTIVE_VARIANCE = 0.01  # Burda et al. 2016, "Importance Weighted Autoencoders", §5.2
# Draws of each posterior for `variance_of_posterior_means`: an inactive unit's estimate then errs by about √(2/n)/S,
# 0.0014 on n = 1,000 images, a seventh of ACTIVE_VARIANCE.
ACTIVE_DRAWS = 32
# nats: below this the codes carry next to no information about the images, however many units look active: the KL
# bounds I(x; z), and a code of under 1 nat tells fewer than e kinds of image apart (300 steps of the default run: 4
# units over Burda's variance threshold, KL 0.19 nats, every reconstruction the same grey blob).
COLLAPSED_KL = 1.0


def kl_per_dimension(mean, log_std):
    """KL(q(z_d|x) ‖ N(0, 1)) averaged over the n images -> [latent] (nats); it sums to the KL loss.

    The same closed form as `vae_tf.losses.gaussian_kl`, kept per dimension: ½(mean² + exp(2·log_std) − 1) − log_std.
    """
    return np.mean(0.5 * (np.square(mean) + np.exp(2.0 * log_std) - 1.0) - log_std, axis=0)


def active_units(mean, threshold=ACTIVE_VARIANCE):
    """Which dimensions are active [latent] (bool): the variance over the data of E[z_d | x] exceeds `threshold`.

    Burda et al. 2016: an inactive dimension's posterior mean ignores the image, so the decoder cannot use it.
    """
    return np.var(mean, axis=0) > threshold


def variance_of_posterior_means(draws):
    """The variance over n images of E[z_d | x] [latent] where it has no closed form (a flow's z_K), from S draws of
    each image's posterior, draws [S, n, latent]: what `active_units` compares with its threshold.

    The mean of an image's S draws errs by a variance σ²_x/S, which inflates the variance over the images by
    (1 − 1/n)·mean_x σ²_x/S: subtracted, σ²_x estimated by the draws' unbiased variance, the estimate is unbiased for
    the exact means' variance (an inactive unit of σ ≈ 1 would otherwise count as active below S = 100 draws)."""
    samples, n = draws.shape[:2]
    monte_carlo = (1.0 - 1.0 / n) * np.mean(np.var(draws, axis=0, ddof=1), axis=0) / samples
    return np.var(np.mean(draws, axis=0), axis=0) - monte_carlo


def traversal_dimension(mean):
    """The β-VAE project's choice of the dimension to traverse: the largest |average posterior mean|."""
    return int(np.argmax(np.abs(np.mean(mean, axis=0))))


def traversal_range(mean, log_std, dimension, seed=0):
    """(max, min) of dimension `dimension` over sampled codes z = mean + σ·ε, as the β-VAE project read it."""
    noise = np.random.default_rng(seed).standard_normal(mean.shape[0])
    sampled = mean[:, dimension] + np.exp(log_std[:, dimension]) * noise
    return float(sampled.max()), float(sampled.min())


REMEDIES = ("kl_schedule='linear' (annealing) or 'cyclical', free_bits, aggressive, svi_steps, a smaller beta, a "
            "weaker decoder, or for a PixelCNN pixelcnn_conditioning='spatial' and pixel_dropout (docs/collapse.md)")


DENSITIES_AT_ONCE = 2 ** 22  # float64: 32 MB a tensor (blocks of 8 MB were slower here, of 128 MB no faster)
ROUNDING_NATS = 1e-6  # index_code_mi's largest rounding error of one log q(z_i|x_j) it leaves


def kl_parts(mean, log_std, seed=0):
    """{index_code_mi, total_correlation, dimension_wise_kl} (nats): the KL's decomposition (Chen et al. 2018,
    `vae_tf.losses.kl_decomposition`) with the n encoded images taken as the whole data set, one z drawn from each
    q(z|x) with `seed`. Its index_code_mi is I(x; z) under the aggregate posterior (Hoffman & Johnson 2016), what
    He et al. 2019 monitor for collapse; it is at most log n (`index_code_mi` gives it alone, faster). Its
    n × n × latent_size densities are taken DENSITIES_AT_ONCE at a time (a validation of 3,000 codes of 40 dimensions
    held 12 GB at once)."""
    import tensorflow as tf

    from vae_tf.losses import kl_decomposition

    n, size = np.shape(mean)
    terms = kl_decomposition(tf.constant(_draws(mean, log_std, seed), tf.float64), tf.constant(mean, tf.float64),
                             tf.constant(log_std, tf.float64), -np.log(n),  # every weight 1/n: no n × n matrix
                             rows=max(1, DENSITIES_AT_ONCE // (n * size)))
    return {name: float(value) for name, value in terms.items()}


def index_code_mi(mean, log_std, seed=0):
    """I(x; z) (nats): `kl_parts`' index_code_mi at the same draws, E_i[log q(z_i|x_i) − log (1/n) Σ_j q(z_i|x_j)],
    without its n × n × latent_size densities (what each validation of a run computes: 12 times faster at 3,000 codes of
    40 dimensions, benchmarks/bench_validation.py). log q(z_i|x_j) is a quadratic form in z_i, Σ_d −½ z_id² / σ_jd² +
    z_id μ_jd / σ_jd² − ½ μ_jd² / σ_jd² − log σ_jd − ½ log 2π, so two matrix products give the n × n of them,
    DENSITIES_AT_ONCE at a time (the expansion of `priors.mixture_log_density`, which compiled steps use; here on the
    host, for any n, and exact for narrow posteriors). Its terms, up to (z² + μ²) / σ² each, cancel to (z − μ)² / σ²:
    each row's own term is computed directly, and so is any other whose rounding could reach ROUNDING_NATS (narrow
    posteriors) where it counts, within 40 nats of the row's own term (beyond, each adds under e⁻⁴⁰ of it). z and the
    means are first centred on the means' average, which makes the terms, and so the entries computed directly,
    fewer."""
    mean, log_std = np.asarray(mean, np.float64), np.asarray(log_std, np.float64)
    n, size = mean.shape
    z = _draws(mean, log_std, seed)
    centre = mean.mean(axis=0)
    z, mean = z - centre, mean - centre
    precision = np.exp(-2.0 * log_std)  # [n, D]
    weighted, magnitude = mean * precision, np.sum(mean ** 2 * precision, axis=1)  # [n, D], [n]
    normaliser = np.sum(-0.5 * np.log(2 * np.pi) - log_std, axis=1)  # [n]: log N's terms without z
    log_q_given_x = _log_normal(z, mean, precision, normaliser)  # [n]
    rows, entries, log_q = max(1, DENSITIES_AT_ONCE // n), max(1, DENSITIES_AT_ONCE // size), []
    # Sums of D products and three sums after them err by at most this times the size of their terms.
    epsilon = (size + 4) * np.finfo(np.float64).eps
    for start in range(0, n, rows):
        block = z[start:start + rows]
        squares = np.square(block) @ precision.T  # [rows, n]
        pairwise = normaliser - 0.5 * (squares + magnitude) + block @ weighted.T
        own = np.arange(len(block))
        pairwise[own, start + own] = log_q_given_x[start:start + rows]  # the row's largest term or near it: exact
        if epsilon * (squares.max() + magnitude.max()) > ROUNDING_NATS:  # else (most blocks) none errs by that
            rounding = epsilon * (squares + magnitude)
            rounding[own, start + own] = 0.0
            doubtful = np.nonzero((rounding > ROUNDING_NATS)
                                  & (pairwise + rounding > log_q_given_x[start:start + rows, None] - 40))
            for first in range(0, len(doubtful[0]), entries):
                i, j = (index[first:first + entries] for index in doubtful)
                pairwise[i, j] = _log_normal(block[i], mean[j], precision[j], normaliser[j])
        log_q.append(_logsumexp(pairwise))
    return float(np.mean(log_q_given_x - (np.concatenate(log_q) - np.log(n))))


def _log_normal(z, mean, precision, normaliser):
    """Σ_d log N(z_d; mean_d, σ_d²) of rows [k, D] -> [k], from precision 1/σ² [k, D] and normaliser
    Σ_d (−½ log 2π − log σ_d) [k]."""
    return normaliser - 0.5 * np.sum(np.square(z - mean) * precision, axis=1)


def _draws(mean, log_std, seed):
    """One z from each posterior [n, D], the same for a given seed."""
    return mean + np.exp(log_std) * np.random.default_rng(seed).standard_normal(np.shape(mean))


def _logsumexp(a):
    """log Σ_j exp(a[i, j]) -> [rows], stably (scipy.special.logsumexp took 2.5 times as long on a block here)."""
    top = a.max(axis=1)
    return top + np.log(np.exp(a - top[:, None]).sum(axis=1))


def collapse_state(num_active, total_kl, history=()):
    """(state, sentence): ("collapsed", ...) when no unit is active or the KL is below COLLAPSED_KL whatever the
    active units; ("collapsing", ...) when the run's latents have fallen from their peak (`collapsing(history)`);
    else (None, None). The sentence names the remedies."""
    if num_active == 0 or total_kl < COLLAPSED_KL:
        return "collapsed", (f"The posterior has collapsed ({num_active} active units, KL {total_kl:.3g} nats): the "
                             f"codes ignore the images and the decoder models them alone; remedies: {REMEDIES}.")
    peak = collapsing(history)
    if peak is not None:
        return "collapsing", (f"The posterior is collapsing: {num_active} active units, down from {peak[0]}, and "
                              f"I(x; z) under half its peak of {peak[1]:.3g} nats; remedies: {REMEDIES}.")
    return None, None


def collapsing(history):
    """The (active units, I(x; z)) peak a run's latents have fallen from, or None: `history` [(active units, I(x; z),
    KL)] in step order, the last now (latents.csv). Collapsing: fewer active units than at their peak and under half
    the peak information, both at once (a β-VAE pruning its spare units keeps its information; a collapse loses
    it), from a peak of at least COLLAPSED_KL nats (the first steps' flicker is no trend)."""
    if len(history) < 2:
        return None
    active, information = history[-1][:2]
    peak_active, peak_information = max(h[0] for h in history), max(h[1] for h in history)
    fallen = active < peak_active and information < 0.5 * peak_information
    return (peak_active, peak_information) if fallen and peak_information >= COLLAPSED_KL else None


def training_warning(history, trend=True):
    """The collapse warning of a run's latest validation, or (None, None): `collapse_state` of its last row of
    `history`, except that a code not seen to lose KL since the validation before is not called collapsed (every VAE
    starts with its posteriors on the prior, and a healthy one leaves it). `trend` False: only "collapsed", where
    `history`'s I(x; z) is not the code's (a flow's, measured on q_0)."""
    active, _, kl = history[-1]
    state, sentence = collapse_state(active, kl, history if trend else ())
    if state == "collapsed" and (len(history) < 2 or kl > history[-2][2]):
        return None, None
    return state, sentence


def interpolate(start, end, steps):
    """Codes on the straight line from `start` [latent] to `end` [latent] -> [steps, latent], ends included."""
    weights = np.linspace(0.0, 1.0, steps)[:, None]
    return (1.0 - weights) * start + weights * end


def interpolation_grid(corners, size):
    """Bilinear grid between four codes [4, latent] (top-left, top-right, bottom-left, bottom-right) ->
    [size, size, latent], the β-VAE project's interpolation figure."""
    left = interpolate(corners[0], corners[2], size)
    right = interpolate(corners[1], corners[3], size)
    return np.stack([interpolate(l, r, size) for l, r in zip(left, right)])


def categorical_kl(probabilities):
    """KL(q(c|x) ‖ uniform) averaged over the n images (nats), of probabilities q(c|x) [n, K]: mean Σ q log q + log K
    (the closed form of `vae_tf.latents.Categorical.kl`)."""
    terms = probabilities * np.log(np.where(probabilities > 0, probabilities, 1.0))  # 0 log 0 = 0
    return float(np.mean(np.sum(terms, axis=1)) + np.log(probabilities.shape[1]))


def categorical_active(probabilities, threshold=ACTIVE_VARIANCE):
    """Whether a categorical is active: the variance over the data of E[one-hot c | x] = q(c|x) [n, K], summed over
    its categories, exceeds `threshold` (Burda et al.'s activity, for the one-hot code)."""
    return bool(np.sum(np.var(probabilities, axis=0)) > threshold)


def majority_agreement(categories, labels):
    """How often a categorical's category [n] agrees with a factor's value [n] (both ints), each category mapped to the
    value most of its images have (cluster purity): 1 when every category holds one value, the largest value's share
    when the categories ignore the factor."""
    categories, labels = np.asarray(categories), np.asarray(labels)
    agree = sum(np.bincount(labels[categories == c]).max() for c in np.unique(categories))
    return float(agree / len(labels))


def category_information(categories, labels):
    """I(category; factor) in nats, the plug-in estimate from the joint counts of a categorical's category [n] and a
    factor's value [n] (scikit-learn's `mutual_info_score`): what the category tells of the factor, wherever the
    majority reading of `majority_agreement` misses it (a category of the small sprites tells scale, not which)."""
    from sklearn.metrics import mutual_info_score
    return float(mutual_info_score(np.asarray(labels), np.asarray(categories)))
