"""The models, one module per family, by name (`params.model`); `build_model` makes the compiled one of a run.

What a model offers the rest of vae_tf is written down once, in `vae_tf.models.base` and docs/model.md.
"""

import keras

from vae_tf.models.adgm import ADGM
from vae_tf.models.base import Model
from vae_tf.models.layered import Hierarchical, Ladder
from vae_tf.models.m2 import M2
from vae_tf.models.vae import VAE

# name -> model class (`params.model`; vae_tf.params.MODELS lists the names for checking before TensorFlow loads).
MODELS = {"vae": VAE, "m2": M2, "adgm": ADGM, "hierarchical": Hierarchical, "ladder": Ladder}


def build_model(params, image_shape=None, dataset_size=0):
    """The compiled model for `params`; `image_shape` defaults to the data set's (after `image_size`); `dataset_size`
    (the training split's, 0 = unknown) weights the minibatch estimators."""
    if image_shape is None:
        from vae_tf.datasets import image_shape_of
        image_shape = image_shape_of(params)
    keras.utils.set_random_seed(params.seed)
    model = MODELS[params.model](params, image_shape, dataset_size)
    optimizer = keras.optimizers.Adam(params.learning_rate, beta_1=params.adam_beta_1)
    if model.loss_scaled:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer)
    model.optimizer.build(model.optimized_variables())
    model.learning_rate_at = learning_rate_schedule(params)
    return model


def learning_rate_schedule(params):
    """None for a constant learning rate; for `learning_rate_schedule="cosine"` the learning rate of step s,
    learning_rate · ½(1 + cos(π·min(s, num_steps)/num_steps)) (SGDR's annealing without restarts, Loshchilov &
    Hutter 2017, eq. 5). It follows the run's current num_steps: extending a run stretches what is left of it."""
    if params.learning_rate_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(params.learning_rate, params.num_steps)
    return None


__all__ = ["ADGM", "Hierarchical", "Ladder", "M2", "MODELS", "Model", "VAE", "build_model", "learning_rate_schedule"]
