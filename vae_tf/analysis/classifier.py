"""What the analysis adds for a model that classifies (one that offers `classify`: M2, ADGM): the test accuracy of
q(y|x) and its confusion matrix, Kingma et al. 2014's conditional generation figure (each row the z of one test
image, each column one class y), and, on request, the accuracy of logistic regression fitted on the same labelled
images: the baselines a semi-supervised model has to beat."""

import warnings

import numpy as np

from vae_tf import figures
from vae_tf.errors import UserError
from vae_tf.analysis.encoding import BATCH, decode
from vae_tf.figures import save_figure

CONDITIONAL_ROWS = 8  # test images whose z the conditional generation figure decodes with every class
REGULARISATION = np.logspace(-4, 2, 7)  # the inverse regularisation strengths C cross-validation picks from
FOLDS = 5


def feature_runs(params, runs):
    """[(run folder, its model)] of `--label_baselines`' runs, loaded and checked before the analysis writes anything:
    each must be a run of the same images (data set, size, channels, binarisation)."""
    from vae_tf.checkpoints import load_run
    from vae_tf.runs import open_run

    loaded = []
    for folder in runs:
        other = open_run(folder)[1]
        same = ("dataset", "image_size", "channels", "binarize")
        different = [f"{name} {getattr(other, name)!r} (not {getattr(params, name)!r})" for name in same
                     if getattr(other, name) != getattr(params, name)]
        if different:
            raise UserError(f"--label_baselines {folder} was trained on other images: {', '.join(different)}; "
                            f"name a run of the same data")
        loaded.append((str(folder), load_run(folder)))
    return loaded


def logistic_baselines(run, params, images, labels, features):
    """{"pixels" or "means of run i": test accuracy} of logistic regression fitted on the run's own labelled training
    images (labelled.csv,
    binarised once as evaluation sees held-out images when the run binarises), on their pixels and on each of
    `features`' [(run folder, model)] posterior means (`represent`; run i the i-th, from 1); its C picked by FOLDS-fold cross-validation on
    those labelled images alone, the features standardised."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from vae_tf.datasets import source_for
    table = np.loadtxt(run.labelled_csv, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    train = source_for(params).fixed_split("train").images(table[:, 0]).numpy()
    truth = np.asarray(labels[params.label_factor])
    inputs = {"pixels": lambda x: x.reshape(len(x), -1)}
    for i, (_, model) in enumerate(features, 1):
        inputs[f"means of run {i}"] = lambda x, model=model: np.concatenate(
            [model.represent(x[i:i + BATCH]).numpy() for i in range(0, len(x), BATCH)])
    accuracies = {}
    for name, transform in inputs.items():
        fitted = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=REGULARISATION, cv=FOLDS, max_iter=2000,
                                                                      scoring="accuracy"))
        with warnings.catch_warnings():  # scikit-learn 1.9 announces a change of its fitted attributes, unused here
            warnings.simplefilter("ignore", FutureWarning)
            fitted.fit(transform(train), table[:, 1])
        accuracies[name] = float(np.mean(fitted.predict(transform(images)) == truth))
    return accuracies


def classifier_report(run, params, model, images, labels, encoded, features=None):
    """summary.json's `classifier` entry (the label, its classes, the test accuracy and confusion matrix: rows the
    true class, columns the predicted one, and with `features` (a list, maybe empty) the `logistic_baselines`), with
    confusion_matrix.png and conditional_generation.png drawn."""
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
    report = {"label": params.label_factor, "classes": names, "images": len(truth), "accuracy": accuracy,
              "confusion_matrix": confusion.tolist()}
    if features is not None:
        report["labelled_images"] = params.labels
        report["baselines"] = logistic_baselines(run, params, images, labels, features)
        report["feature_runs"] = [folder for folder, _ in features]
    return report


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
    lines = [f"  q(y|x) classifies {report['label']} with test accuracy {report['accuracy']:.1%} "
             f"({report['images']} images, {len(report['classes'])} classes)"]
    runs = {f"means of run {i}": f"the means of {folder}" for i, folder in enumerate(report.get("feature_runs", []), 1)}
    lines += [f"  logistic regression on {runs.get(name, name)}, fitted on the same {report['labelled_images']} "
              f"labelled images: {accuracy:.1%}" for name, accuracy in report.get("baselines", {}).items()]
    return "\n".join(lines)
