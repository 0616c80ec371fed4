"""What the analysis adds for a model that classifies (one that offers `classify`, such as M2): the test accuracy of
q(y|x) and its confusion matrix, and Kingma et al. 2014's conditional generation figure (each row the z of one test
image, each column one class y)."""

import numpy as np

from vae_tf import figures
from vae_tf.analysis.encoding import BATCH, decode
from vae_tf.figures import save_figure

CONDITIONAL_ROWS = 8  # test images whose z the conditional generation figure decodes with every class


def classifier_report(run, params, model, images, labels, encoded):
    """summary.json's `classifier` entry (the label, its classes, the test accuracy and confusion matrix: rows the
    true class, columns the predicted one), with confusion_matrix.png and conditional_generation.png drawn."""
    from sklearn.metrics import confusion_matrix

    from vae_tf.datasets import class_names
    names = class_names(params)
    truth = np.asarray(labels[params.label_factor])
    probabilities = np.concatenate([model.classify(images[i:i + BATCH]).numpy() for i in range(0, len(images), BATCH)])
    predicted = probabilities.argmax(axis=1)
    confusion = confusion_matrix(truth, predicted, labels=range(len(names)))
    accuracy = float(np.mean(predicted == truth))
    save_figure(figures.confusion_matrix(confusion, names, f"{run.name}: q(y|x) on {len(truth)} test images, "
                                                           f"accuracy {accuracy:.1%}"),
                run.analysis / "confusion_matrix.png")
    save_figure(_conditional_generation(model, images, encoded, names), run.analysis / "conditional_generation.png")
    return {"label": params.label_factor, "classes": names, "images": len(truth), "accuracy": accuracy,
            "confusion_matrix": confusion.tolist()}


def _conditional_generation(model, images, encoded, names):
    """Rows: a test image, then its z (the mean of q(z|x, ŷ)) decoded with each class in turn (Kingma et al. 2014,
    fig. 1): what changes along a row is what the class controls, what stays is what z holds."""
    count = min(CONDITIONAL_ROWS, len(images))
    classes = np.eye(len(names))
    codes = np.concatenate([np.repeat(encoded.mean[:count, None], len(names), axis=1),
                            np.broadcast_to(classes, (count,) + classes.shape)], axis=-1)
    rows = np.concatenate([images[:count, None], decode(model, codes)], axis=1)
    return figures.image_rows(rows, "each test image (left), its z decoded with each class", column_labels=[
        "test image"] + list(names))


def summary_line(report):
    return (f"  q(y|x) classifies {report['label']} with test accuracy {report['accuracy']:.1%} "
            f"({report['images']} images, {len(report['classes'])} classes)")
