"""The test images an analysis reads, and their posteriors."""

import numpy as np

from vae_tf.errors import UserError

BATCH = 250  # images encoded or decoded per call
MIN_IMAGES = 10  # the interpolation figure alone uses ten test images


def evaluation_images(params, count):
    """The first `count` test images [n, H, W, C] of the run's data set, their labels name -> [n], and how many
    came from each split: a data set whose test split holds fewer than MIN_IMAGES (a small folder) is topped up
    from its validation, then its training images."""
    from vae_tf.datasets import evaluation_batches, source_for

    source, parts, labels, taken = source_for(params), [], {}, {}
    for name in ("test", "validation", "train"):
        if taken and sum(taken.values()) >= min(count, MIN_IMAGES):
            break
        split = source.fixed_split(name)
        images = np.concatenate([b.numpy() for b in evaluation_batches(split, BATCH, count - sum(taken.values()))])
        parts.append(images)
        taken[name] = len(images)
        for label, values in split.labels.items():
            labels.setdefault(label, []).append(np.asarray(values[:len(images)]))
    return np.concatenate(parts), {name: np.concatenate(values) for name, values in labels.items()}, taken


class Encoded:
    """Test images encoded. The Gaussian part's `mean` [n, D] (float64) is the code the figures decode and the metrics
    read (`model.represent`: the posterior mean; through a flow, its image; a layered model's innovations), its
    `posterior_mean` and `log_std` [n, D] are the posterior's (a flow's base q_0; a layered model's layers along the
    mean path), which the KL per dimension, the decomposition and the active units read (a flow's active units are
    z_K's: `FlowGaussian.active_units`); all its `gaussian_parameters`; each categorical's `probabilities` q(c|x)
    [n, K], and `categories`, each categorical's most probable category [n]."""

    def __init__(self, model, images):
        self.kl = None  # per image and dimension [n, D], for a layered model: each layer's KL to its prior
        if getattr(model, "layered", False):  # every layer's posterior along the mean path, bottom first
            chunks = [model.code_posterior(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
            self.mean, self.posterior_mean, self.log_std, self.kl = (
                np.concatenate([c[j].numpy() for c in chunks]).astype(np.float64) for j in range(4))
            self.gaussian_parameters = (self.posterior_mean, self.log_std)
            self.probabilities, self.categories, self.sizes = [], [], []
            return
        chunks = [model.encode(images[i:i + BATCH]) for i in range(0, len(images), BATCH)]
        heads = [np.concatenate([chunk[h].numpy() for chunk in chunks]).astype(np.float64)
                 for h in range(len(model.latent.heads))]
        gaussian, *categorical = model.latent.split(heads)
        self.posterior_mean, self.log_std = gaussian[:2]
        # The code the decoder reads: the mean, or through a flow, the flow's image of the mean.
        self.mean = (
            self.posterior_mean if len(gaussian) == 2 else
            model.latent.gaussian.mode([np.float32(p) for p in gaussian]).numpy().astype(np.float64))
        self.gaussian_parameters = gaussian
        exp = [np.exp(logits - logits.max(axis=1, keepdims=True)) for (logits,) in categorical]
        self.probabilities = [e / e.sum(axis=1, keepdims=True) for e in exp]  # softmax
        self.categories = [np.argmax(q, axis=1) for q in self.probabilities]
        self.sizes = [q.shape[1] for q in self.probabilities]

    def kl_per_dimension(self):
        """Each dimension's KL averaged over the images [D] (nats): to N(0, 1) in closed form, or a layered model's
        to each layer's prior."""
        if self.kl is not None:
            return self.kl.mean(axis=0)
        from vae_tf.latent_space import kl_per_dimension
        return kl_per_dimension(self.posterior_mean, self.log_std)

    def modal_categories(self):
        """Each categorical's most common category among the images, one-hot side by side [Σ K]."""
        return np.concatenate([np.eye(size)[np.bincount(categories, minlength=size).argmax()]
                               for size, categories in zip(self.sizes, self.categories)] or [np.zeros(0)])

    def with_categoricals(self, codes, categoricals=None):
        """Gaussian codes [..., latent_size] -> whole codes [..., code_size]: the categoricals set to `categoricals`
        (one-hot side by side [Σ K]; default their modal categories)."""
        categoricals = self.modal_categories() if categoricals is None else categoricals
        codes = np.asarray(codes)
        return np.concatenate([codes, np.broadcast_to(categoricals, codes.shape[:-1] + categoricals.shape)], axis=-1)

    def modes(self):
        """Each image's deterministic code [n, code_size]: its Gaussian mode and its most probable categories."""
        one_hot = [np.eye(size)[categories] for size, categories in zip(self.sizes, self.categories)]
        return np.concatenate([self.mean, *one_hot], axis=1)


def decode(model, codes):
    """codes [..., code_size] -> images [..., H, W, C]."""
    codes = np.asarray(codes, np.float32)
    images = model.decode(codes.reshape(-1, codes.shape[-1])).numpy()
    return images.reshape(codes.shape[:-1] + images.shape[1:])


def test_images(params, num_images):
    """(images, labels, splits taken) of `evaluation_images`, or UserError when the data set cannot give the latent
    figures enough images: read before an analysis writes anything."""
    images, labels, taken = evaluation_images(params, num_images)
    if len(images) < MIN_IMAGES:
        raise UserError(f"{params.dataset} has only {len(images)} images in all; the latent figures need at least "
                        f"{MIN_IMAGES}: add images to the data set")
    return images, labels, taken


def encoded_test_images(model, params, test, say):
    """The `test_images` (with a note when the test split was topped up from other splits) and their `Encoded`
    posteriors."""
    images, labels, taken = test
    if len(taken) > 1:
        say(f"note: the test split of {params.dataset} has only {taken['test']} images, so the latent figures and "
            f"the test figures also use " + " and ".join(f"{n} {name}" for name, n in list(taken.items())[1:])
            + " images (training images flatter the reconstructions)")
    return images, labels, taken, Encoded(model, images)
