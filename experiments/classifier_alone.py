"""A semi-supervised preset's classifier q(y|x) trained on its labelled images alone, without the unlabelled ones:
what the labels give without M2's generative model, and which network generalises from them
(docs/experiments/semi-supervised.md).

    python experiments/classifier_alone.py --preset=shapes2d_m2 --steps=4000
    python experiments/classifier_alone.py --preset=shapes2d_m2 --steps=4000 --classifier_layers=None

The labelled images are the run's own (`labelled_positions` of the preset's labels and seed; `--every_label`: every
training image), the network `classifier_layers` (None: `encoder_layers`), trained as M2's cross-entropy term with
Adam at the preset's learning rate and batch size; the test accuracy is printed every `--every` steps.
"""

import argparse

import numpy as np
import tensorflow as tf

import vae_tf
from vae_tf import networks
from vae_tf.datasets import class_names, labelled_positions, source_for

TEST_IMAGES = 10_000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="shapes2d_m2")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--labels", help="labelled images in all; default: the preset's")
    parser.add_argument("--every_label", action="store_true", help="train on every training image's label")
    parser.add_argument("--classifier_layers", help="e.g. None (the encoder's layers); default: the preset's")
    args = parser.parse_args()
    overrides = {name: value for name, value in (("labels", args.labels), ("classifier_layers", args.classifier_layers))
                 if value is not None}
    p = vae_tf.load_params("params.py", preset=args.preset, overrides=overrides)
    source = source_for(p)
    train, test = source.fixed_split("train"), source.fixed_split("test")
    truth = np.asarray(train.labels[p.label_factor])
    positions = np.arange(train.num_examples) if args.every_label else labelled_positions(train, p)
    count = min(TEST_IMAGES, test.num_examples)
    test_images, test_truth = test.images(np.arange(count)), np.asarray(test.labels[p.label_factor])[:count]
    layers = p.classifier_layers or p.encoder_layers
    network = networks.build_encoder(test_images.shape[1:], layers, [("logits", len(class_names(p)))], p.activation)
    optimizer = tf.keras.optimizers.Adam(p.learning_rate)

    @tf.function
    def step(images, classes):
        with tf.GradientTape() as tape:
            logits = network(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(classes, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, network.trainable_variables), network.trainable_variables))

    rng = np.random.default_rng(p.seed)
    print(f"{args.preset}: {len(positions)} labelled images of {p.label_factor}, classifier layers {layers}")
    for done in range(1, args.steps + 1):
        batch = rng.choice(positions, p.batch_size)
        step(train.images(batch), truth[batch])
        if done % args.every == 0:
            predicted = np.concatenate([network(test_images[i:i + 1000]).numpy().argmax(1)
                                        for i in range(0, count, 1000)])
            print(f"step {done}: test accuracy {np.mean(predicted == test_truth):.2%} on {count} test images",
                  flush=True)


if __name__ == "__main__":
    main()
