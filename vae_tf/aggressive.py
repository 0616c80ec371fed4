"""Aggressive inference-network training (He et al. 2019, "Lagging Inference Networks and Posterior Collapse in
Variational Autoencoders", Algorithm 1), `params.aggressive`.

Early in training the encoder lags behind the decoder's true posterior, and the decoder learns to do without z
before the encoder has anything to give it. The remedy: train the encoder alone, a fresh batch per update, until its
loss stops improving, then update the decoder once; repeat, and return to training both together once I(x; z) on
the validation images stops rising (`AggressiveTraining.check`, once every `aggressive_check_updates` decoder
updates: their code checks once an epoch of them).

Every training step is one update, of the encoder, the decoder or both, so `num_steps` counts the inner encoder
updates too (what the method costs). The encoder keeps the run's optimizer, whose counter is the step; the decoder
has an Adam of its own, as in the paper's code, so that its moments and their bias correction count its own, rarer,
updates. The choice is made inside the compiled step from the state below, which the checkpoint holds: a resumed run
updates what an uninterrupted one would.
"""

import math

import keras
import tensorflow as tf

# He et al.'s image experiments: the encoder's losses are summed over windows of 10 updates, and the inner loop ends
# when a window's sum exceeds the one before, or after 99 updates (their `while sub_iter < 100`).
WINDOW = 10
MOST_ENCODER_UPDATES = 99
# Their image experiments check I(x; z) once an epoch of decoder updates and end the aggressive phase at the fifth
# check under the best so far (which starts at 0).
PATIENCE = 5

FIGURES = ("aggressive", "encoder_updates")  # log.csv's columns of an aggressive run


class AggressiveTraining:
    """The schedule of updates of one model, and the decoder's optimizer.

    State (tf.Variables, in the checkpoint through `checkpointables`): `on`, whether the aggressive phase lasts;
    `updates`, the encoder updates since the decoder's last; `window` and `previous`, the current and the last whole
    window's summed losses; `decoder_due`, whether the next step updates the decoder; `decoder_updates`, He et al.'s
    outer iterations; `next_check`, the decoder update from which I(x; z) is next checked; `best_information` and
    `misses`, the best check so far and the checks under it."""

    def __init__(self, model):
        self.model = model
        # The inference network: the encoder, and a flow's weights of its own (IAF's); the prior's are generative.
        flow = getattr(model, "flow", None)
        self.encoder_variables = list(model.encoder.trainable_variables) + list(getattr(flow, "trainable_variables",
                                                                                        []))
        encoder = {id(v) for v in self.encoder_variables}
        self.decoder_variables = [v for v in model.trainable_variables if id(v) not in encoder]
        # The learning rate is read from the run's optimizer at every update: a schedule sets that one.
        self.decoder_optimizer = keras.optimizers.Adam(lambda: model.optimizer.learning_rate,
                                                       beta_1=model.params.adam_beta_1)
        self.decoder_optimizer.build(self.decoder_variables)
        self.on = tf.Variable(True, trainable=False, name="aggressive")
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="encoder_updates")
        self.window = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="window_loss")
        self.previous = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="previous_window_loss")
        self.decoder_due = tf.Variable(False, trainable=False, name="decoder_due")
        p = model.params
        # A model built without its training split's size (dataset_size 0: load_run, tests) checks after every
        # decoder update; train.py always knows the size.
        self.check_every = p.aggressive_check_updates or max(1, math.ceil(model.dataset_size / p.batch_size))
        self.decoder_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="decoder_updates")
        self.next_check = tf.Variable(self.check_every, dtype=tf.int64, trainable=False, name="next_check")
        self.best_information = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="best_information")
        self.misses = tf.Variable(0, dtype=tf.int64, trainable=False, name="information_misses")

    def checkpointables(self):
        return {"decoder_optimizer": self.decoder_optimizer, "aggressive_on": self.on,
                "aggressive_updates": self.updates, "aggressive_window": self.window,
                "aggressive_previous": self.previous, "aggressive_decoder_due": self.decoder_due,
                "aggressive_decoder_updates": self.decoder_updates, "aggressive_next_check": self.next_check,
                "aggressive_best_information": self.best_information, "aggressive_misses": self.misses}

    def apply(self, gradients, variables, loss):
        """Apply one step's `gradients` (of `variables`, the model's trainable ones) to the networks this step
        updates; `loss` is the step's loss, which the inner loop watches."""
        by_variable = {id(v): g for v, g in zip(variables, gradients)}
        encoder = [(by_variable[id(v)], v) for v in self.encoder_variables]
        decoder = [(by_variable[id(v)], v) for v in self.decoder_variables]
        optimizer = self.model.optimizer

        def encoder_alone():
            optimizer.apply_gradients(encoder)
            updates = self.updates.assign_add(1)
            window = self.window.assign_add(tf.cast(loss, tf.float64))
            ended = tf.equal(updates % WINDOW, 0)
            # He et al. compare the mean loss of two windows of equal size: the sums do the same.
            worse = ended & (window > self.previous)
            self.previous.assign(tf.where(ended, window, self.previous))
            self.window.assign(tf.where(ended, tf.zeros_like(window), window))
            self.decoder_due.assign(worse | (updates >= MOST_ENCODER_UPDATES))
            return tf.constant(0)

        def decoder_alone():
            self.decoder_optimizer.apply_gradients(decoder)
            optimizer.iterations.assign_add(1)  # the encoder's optimizer counts the run's steps
            self.decoder_updates.assign_add(1)
            self.updates.assign(0)
            self.window.assign(0.0)
            self.previous.assign(math.inf)
            self.decoder_due.assign(False)
            return tf.constant(0)

        def both():
            optimizer.apply_gradients(encoder)
            self.decoder_optimizer.apply_gradients(decoder)
            self.decoder_updates.assign_add(1)
            return tf.constant(0)

        tf.cond(self.on, lambda: tf.cond(self.decoder_due, decoder_alone, encoder_alone), both)

    def figures(self):
        return {"aggressive": tf.cast(self.on, tf.float32), "encoder_updates": tf.cast(self.updates, tf.float32)}

    def check(self, information):
        """At a validation with I(x; z) = `information` (nats): when the phase lasts and `next_check` decoder updates
        have passed, count a check (He et al.'s: under the best so far is a miss, else the new best) and end the
        phase at the PATIENCE-th miss (one fall, their text experiments' rule, ends it on the noise of the first
        checks, when the code holds almost nothing). Returns whether this check ended it."""
        done = int(self.decoder_updates.numpy())
        if not bool(self.on.numpy()) or done < int(self.next_check.numpy()) or not math.isfinite(information):
            return False  # a non-finite estimate is no check: the next validation's is
        self.next_check.assign((done // self.check_every + 1) * self.check_every)
        if information < float(self.best_information.numpy()):
            self.misses.assign_add(1)
        else:
            self.best_information.assign(information)
        if int(self.misses.numpy()) < PATIENCE:
            return False
        self.on.assign(False)  # both networks train together from the next step on
        self.updates.assign(0)
        self.decoder_due.assign(False)
        return True
