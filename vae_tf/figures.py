"""The analysis figures, as functions from arrays to matplotlib figures (writing them is the caller's job)."""

import matplotlib

matplotlib.use("Agg")  # files only: analysis runs on machines with no screen
import matplotlib.patches
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from vae_tf.runs import replace_atomically
from vae_tf.snapshots import image_grid, show_images


def _smooth(values, window):
    """Running mean of the finite values among the last `window` steps (NaN where there is none)."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    sums = np.cumsum(np.insert(np.where(finite, values, 0.0), 0, 0.0))
    counts = np.cumsum(np.insert(finite, 0, False).astype(np.int64))
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums[end] - sums[start]) / (counts[end] - counts[start])


def _log_scale_if_decades(axis, *curves):
    """Log y-axis when every value is positive and they span more than one and a half decades (a factor 30); when some
    are 0 or rounded just below it (a collapsed code's KL), a log axis above 10⁻³ that is linear below it."""
    values = np.concatenate([np.asarray(c, np.float64) for c in curves])
    values = values[np.isfinite(values)]
    if not values.size or values.max() <= 0:
        return
    if values.min() > 0 and values.max() / values.min() > 30:
        axis.set_yscale("log")
    elif -1e-6 * values.max() <= values.min() <= 0 and values.max() > 30e-3:
        axis.set_yscale("symlog", linthresh=1e-3)
    else:
        return
    axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # decades labelled, not every minor tick


def _curve(axis, steps, values, title, label=None, colour=None, scale=True):
    """A per-step figure: the raw values faintly, their running mean on top; `scale` picks a log axis if needed."""
    window = max(1, len(values) // 100)
    line, = axis.plot(steps, values, alpha=0.25 if window > 1 else 1.0, linewidth=0.6, color=colour)
    if window > 1:
        axis.plot(steps, _smooth(values, window), linewidth=1.2, color=line.get_color(), label=label)
    elif label:
        line.set_label(label)
    axis.set_title(title)
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)
    if scale:
        _log_scale_if_decades(axis, values)


def _band(axis, steps, average, low, high, title):
    axis.fill_between(steps, low, high, alpha=0.3, label="min to max over the batch")
    axis.plot(steps, average, linewidth=1.0, label="average")
    axis.set_title(title)
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    _log_scale_if_decades(axis, low, high)


LOSS_UNITS = {"bernoulli": "nats", "squared_error": "summed squared error", "absolute_error": "summed absolute error"}


def graphs(log, validation, title, reconstruction_loss="bernoulli"):
    """The originals' grid against step, plus a fourth row (validation loss, gradient norm) and a fifth (the KL's
    decomposition, and the objective's own figures such as FactorVAE's discriminator).

    log, validation: column -> list of floats (`vae_tf.runs.read_log`); validation may be empty. The losses' axes
    are in nats for the Bernoulli loss; squared and absolute error are logged as the originals' sums.
    """
    from vae_tf.models.base import STATISTICS_FIGURES
    from vae_tf.models.vae import LOSS_FIGURES

    figure, axes = plt.subplots(5, 2, figsize=(12, 17.5), dpi=100)
    steps = log["step"]
    _curve(axes[0, 0], steps, log["loss"], "total loss", label="training")
    if validation.get("step"):  # the held-out loss on the same axis shows overfitting at a glance
        axes[0, 0].plot(validation["step"], validation["loss"], marker=".", color="C3", label="validation")
        axes[0, 0].legend(loc="best", fontsize=8)
    _curve(axes[0, 1], steps, log["kl_loss"], "KL loss")
    _curve(axes[1, 0], steps, log["reconstruction_loss"], "reconstruction loss")
    axes[1, 1].plot(steps, log["kl_weight"], linewidth=1.2)
    axes[1, 1].set(title="KL weight", xlabel="step")
    axes[1, 1].grid(alpha=0.3)
    _log_scale_if_decades(axes[1, 1], log["kl_weight"])  # a 10000 -> 1 decrease spans four decades
    _band(axes[2, 0], steps, log["std_avg"], log["std_min"], log["std_max"], "posterior standard deviation")
    _band(axes[2, 1], steps, log["mean_avg"], log["mean_min"], log["mean_max"], "posterior mean")
    if validation.get("step"):
        axes[3, 0].plot(validation["step"], validation["loss"], marker=".", label="validation")
        axes[3, 0].legend(loc="best", fontsize=8)
        _log_scale_if_decades(axes[3, 0], validation["loss"])
    else:
        axes[3, 0].text(0.5, 0.5, "no validation in this run", ha="center", va="center", transform=axes[3, 0].transAxes)
    axes[3, 0].set(title="validation loss", xlabel="step")
    axes[3, 0].grid(alpha=0.3)
    _curve(axes[3, 1], steps, log["grad_norm"], "gradient norm")
    _decomposition(axes[4, 0], log)
    for axis in (axes[0, 0], axes[1, 0], axes[3, 0]):
        axis.set_ylabel(LOSS_UNITS[reconstruction_loss])
    for axis in (axes[0, 1], axes[4, 0]):
        axis.set_ylabel("nats")
    own = [name for name in log if name not in ("step", "wall_time") + LOSS_FIGURES + STATISTICS_FIGURES]
    for name in own:
        _curve(axes[4, 1], steps, log[name], ", ".join(own), label=name, scale=False)
    if own:
        axes[4, 1].legend(loc="best", fontsize=8)
    else:
        _note(axes[4, 1], "this objective logs no figures of its own", "the objective's own figures")
    figure.suptitle(title, fontsize=14)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return figure


def _note(axis, text, title):
    axis.text(0.5, 0.5, text, ha="center", va="center", transform=axis.transAxes)
    axis.set(title=title, xticks=[], yticks=[])


def _decomposition(axis, log):
    """The KL's three parts per step (Chen et al. 2018), with the KL they sum to on average."""
    title = "KL decomposition (minibatch estimates)"
    if "total_correlation" not in log:
        _note(axis, "not logged by this run (trained by an earlier vae_tf)", title)
        return
    for name, label in (("index_code_mi", "index-code MI"), ("total_correlation", "total correlation"),
                        ("dimension_wise_kl", "dimension-wise KL"), ("kl_loss", "KL (their sum on average)")):
        _curve(axis, log["step"], log[name], title, label=label, scale=False)
    axis.legend(loc="best", fontsize=8)


def image_rows(rows, title, row_labels=None, column_labels=None):
    """Images [rows, columns, H, W, C] in [0, 1] as one labelled grid."""
    rows = np.asarray(rows)
    count, columns = rows.shape[:2]
    figure, axes = plt.subplots(count, 1, figsize=(1.1 * columns + 1.8, 1.15 * count + 0.8), dpi=100, squeeze=False)
    for r, axis in enumerate(axes[:, 0]):
        show_images(axis, image_grid(rows[r], columns=columns))
        if row_labels is not None:
            axis.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=9)
        for spine in axis.spines.values():
            spine.set_visible(False)
    if column_labels is not None:
        width = rows.shape[3] + 1
        axes[0, 0].set_xticks([1 + width * c + width / 2 for c in range(columns)], column_labels, fontsize=8)
        axes[0, 0].xaxis.tick_top()
    figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.45 / figure.get_size_inches()[1]))
    return figure


def confusion_matrix(counts, names, title):
    """A confusion matrix [true, predicted] of counts: each cell its count, coloured by its share of the true class."""
    counts = np.asarray(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.55 * len(names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size), dpi=100)
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(counts):
        axis.text(column, row, str(count), ha="center", va="center", fontsize=8,
                  color="white" if shares[row, column] > 0.5 else "black")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    axis.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.colorbar(image, ax=axis, label="share of the true class")
    figure.tight_layout()
    return figure


def latent_space(projections, colours, title, value_labels=None):
    """One panel per (projection method, colouring): projections name -> [n, 2]; colours name -> int labels [n];
    value_labels name -> the string each label index stands for (a factor's values), shown on its colour bar."""
    value_labels = value_labels or {}
    columns = colours or {None: None}
    figure, axes = plt.subplots(len(projections), len(columns), figsize=(3.6 * len(columns), 3.4 * len(projections)),
                                dpi=100, squeeze=False)
    for r, (method, points) in enumerate(projections.items()):
        for c, (name, labels) in enumerate(columns.items()):
            axis = axes[r, c]
            if labels is None:
                axis.scatter(points[:, 0], points[:, 1], s=5, alpha=0.8)
            else:
                _coloured_scatter(figure, axis, points, labels, name, value_labels.get(name))
            axis.set_title(method if name is None else f"{method}, coloured by {name}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    return figure


def _coloured_scatter(figure, axis, points, labels, name, names):
    """Points coloured by integer labels, with a colour bar naming the factor and the values its ticks stand for."""
    classes = int(np.max(labels)) + 1
    few = classes <= 10  # categorical: one distinct colour per class
    scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, s=5, alpha=0.8,
                           cmap=plt.get_cmap("tab10", classes) if few else "viridis",
                           vmin=-0.5 if few else 0, vmax=classes - 0.5 if few else classes - 1)
    ticks = list(range(classes)) if few else sorted({round(t) for t in np.linspace(0, classes - 1, 5)})
    bar = figure.colorbar(scatter, ax=axis, fraction=0.046, pad=0.02, ticks=ticks)
    if names is not None:
        bar.set_ticklabels([names[t] for t in ticks])
    bar.set_label(name, fontsize=8)


def kl_per_dimension(kl, active, title, names=None):
    """A bar per latent (Gaussian dimension or categorical, named by `names`, default their indices): its average KL
    (nats), active ones in colour, inactive in grey."""
    figure, axis = plt.subplots(figsize=(max(5.0, 0.45 * len(kl) + 2), 3.6), dpi=100)
    axis.bar(np.arange(len(kl)), kl, color=["tab:blue" if a else "tab:gray" for a in active])
    axis.set(xlabel="latent", ylabel="average KL (nats)", title=title)
    axis.set_xticks(np.arange(len(kl)), names)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(handles=[plt.Rectangle((0, 0), 1, 1, color="tab:blue"), plt.Rectangle((0, 0), 1, 1, color="tab:gray")],
                labels=["active (Var E[code|x] > 0.01)", "inactive"], fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def _run_colours(count):
    """A colour per run, distinct for up to 20: the default cycle for ten runs or fewer, else tab20's ten dark colours
    then its ten light ones."""
    if count <= 10:
        return [f"C{index}" for index in range(count)]
    tab20 = plt.get_cmap("tab20").colors
    return [tab20[(2 * index) % 20 + (2 * index) // 20 % 2] for index in range(count)]


def comparison(logs, title):
    """KL and reconstruction loss of several runs against step, overlaid: logs run name -> log columns."""
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.6), dpi=100)
    for (name, log), colour in zip(logs.items(), _run_colours(len(logs))):
        _curve(axes[0], log["step"], log["kl_loss"], "KL loss (nats)", label=name, colour=colour, scale=False)
        _curve(axes[1], log["step"], log["reconstruction_loss"], "reconstruction loss", label=name, colour=colour,
               scale=False)
    for axis, column in zip(axes, ("kl_loss", "reconstruction_loss")):  # one scale for every run's curve
        _log_scale_if_decades(axis, *[log[column] for log in logs.values()])
        axis.legend(loc="best", fontsize=8)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    return figure


def _cropped(picture):
    """A saved figure [H, W, C] less its blank margins (rows and columns as white as its top-left pixel)."""
    content = np.any(np.abs(picture - picture[:1, :1]) > 1e-3, axis=-1)
    rows, columns = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    if not len(rows):
        return picture
    return picture[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def stacked_pictures(paths, title):
    """Saved figures one above the other, each under its name: paths run name -> a PNG (each run's samples.png)."""
    pictures = {name: _cropped(plt.imread(path)) for name, path in paths.items()}
    width = max(picture.shape[1] for picture in pictures.values())
    heights = [picture.shape[0] + 30 for picture in pictures.values()]  # 30 pixels for each name
    figure, axes = plt.subplots(len(pictures), 1, figsize=(width / 100 + 0.4, max(sum(heights) / 100 + 0.6, 2)),
                                dpi=100, squeeze=False, gridspec_kw={"height_ratios": heights})
    for axis, (name, picture) in zip(axes[:, 0], pictures.items()):
        axis.imshow(picture)
        axis.set_axis_off()
        axis.set_title(name, loc="left", fontsize=11, fontweight="bold")
    figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.45 / figure.get_size_inches()[1]))
    return figure


def layer_kl(log, title):
    """A layered model's KL of each stochastic layer against step (log.csv's kl_layer1, kl_layer2, …), one curve each."""
    layers = sorted((name for name in log if name.startswith("kl_layer")), key=lambda name: int(name[len("kl_layer"):]))
    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=100)
    for name, colour in zip(layers, _run_colours(len(layers))):
        _curve(axis, log["step"], log[name], "KL of each layer (nats)", label=f"z_{name[len('kl_layer'):]}",
               colour=colour, scale=False)
    _log_scale_if_decades(axis, *[log[name] for name in layers])
    axis.legend(loc="best", fontsize=8)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    return figure


def mig_curves(curves, title):
    """MIG and each factor's normalised gap against training time, one line per run: curves run name -> mig.csv
    columns. A ring marks a score where the factor's most informative latent is also that of a factor with a larger
    gap (which the latent stands for better), a dot where it is not, so the figure shows when each factor separates."""
    factors = [column[len("mig_"):] for column in next(iter(curves.values())) if column.startswith("mig_")]
    columns = min(len(factors) + 1, 3)
    rows = -(-(len(factors) + 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), dpi=100, sharex=True,
                                sharey=True, squeeze=False)
    for axis in axes.flat[len(factors) + 1:]:
        axis.set_visible(False)
    axes = axes.flat
    for (name, curve), colour in zip(curves.items(), _run_colours(len(curves))):
        minutes = np.asarray(curve["train_seconds"]) / 60
        axes[0].plot(minutes, curve["mig"], marker="o", markersize=3, color=colour, label=name)
        latents = np.array([curve[f"latent_{factor}"] for factor in factors])  # [factors, scores]
        all_gaps = np.array([curve[f"mig_{factor}"] for factor in factors])
        for axis, factor, best, gaps in zip(axes[1:], factors, latents, all_gaps):
            own = ~((latents == best) & (all_gaps > gaps)).any(axis=0)
            axis.plot(minutes, gaps, color=colour, linewidth=1.0)
            axis.scatter(minutes[own], gaps[own], s=14, color=colour, zorder=3)
            axis.scatter(minutes[~own], gaps[~own], s=14, facecolors="none", edgecolors=colour, zorder=3)
    for axis, label in zip(axes, ["MIG"] + factors):
        axis.set_title(label)
        axis.set_xlabel("training time (min)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("normalised mutual-information gap")
    axes[0].legend(loc="best", fontsize=8)
    figure.suptitle(f"{title}\n(rings: a factor with a larger gap has the same best latent; dots: none has)",
                    fontsize=11)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    return figure


def accuracy_against_labels(series, title):
    """Test accuracy against the labelled images a classifier learnt from, one line per series (series name ->
    [(labelled images, accuracy)], e.g. a model and each baseline), through the mean accuracy at each count; every
    run a dot, so seeds show their spread."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for (name, points), colour in zip(series.items(), _run_colours(len(series))):
        labels, accuracies = (np.asarray(values, float) for values in zip(*points))
        counts = np.unique(labels)
        axis.plot(counts, [accuracies[labels == count].mean() for count in counts], color=colour, marker="o",
                  label=name)
        axis.scatter(labels, accuracies, s=14, color=colour, zorder=3)
    axis.set_xscale("log")
    axis.set_xticks(sorted({count for points in series.values() for count, _ in points}))
    axis.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axis.set_xlabel("labelled training images")
    axis.set_ylabel("test accuracy")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="best", fontsize=8)
    axis.set_title(title, fontsize=11)
    figure.tight_layout()
    return figure


def _objective_colours(objectives):
    """One colour per objective, in order of first appearance."""
    names = list(dict.fromkeys(objectives))
    return dict(zip(names, _run_colours(len(names))))


def study_scores(groups, objective_of, title):
    """Each score's spread over seeds, per configuration (Locatello et al. 2019, Figs. 7 and 14 in spirit): box plots
    with every run as a dot. groups {score: {configuration: values [seeds]}}; objective_of {configuration: objective}
    colours the boxes."""
    colours = _objective_colours(objective_of.values())
    configurations = list(objective_of)
    figure, axes = plt.subplots(len(groups), 1, figsize=(max(6.0, 0.55 * len(configurations) + 2), 2.6 * len(groups)),
                                dpi=100, sharex=True, squeeze=False)
    for axis, (score, by_configuration) in zip(axes[:, 0], groups.items()):
        data = [np.asarray(by_configuration[c])[np.isfinite(by_configuration[c])] for c in configurations]
        boxes = axis.boxplot(data, positions=range(len(configurations)), widths=0.6, patch_artist=True,
                             showfliers=False, medianprops={"color": "black"})
        for box, configuration in zip(boxes["boxes"], configurations):
            box.set_facecolor(colours[objective_of[configuration]])
            box.set_alpha(0.45)
        for position, values in enumerate(data):
            axis.scatter(np.full(len(values), position), values, s=10, color="black", zorder=3)
        axis.set_ylabel(score)
        axis.grid(alpha=0.3, axis="y")
    axes[-1, 0].set_xticks(range(len(configurations)), configurations, rotation=60, ha="right", fontsize=7)
    handles = [matplotlib.patches.Patch(color=colour, alpha=0.45, label=name) for name, colour in colours.items()]
    axes[0, 0].legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=len(colours),
                      frameon=False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def study_reconstruction(scores, reconstruction, objectives, title):
    """Each score against the reconstruction loss, one dot per run coloured by objective (Locatello et al. 2019,
    Fig. 8 in spirit). scores {score: [runs]}, reconstruction [runs], objectives [runs]."""
    colours = _objective_colours(objectives)
    figure, axes = plt.subplots(1, len(scores), figsize=(3.6 * len(scores), 3.4), dpi=100, squeeze=False)
    for axis, (score, values) in zip(axes[0], scores.items()):
        for objective, colour in colours.items():
            chosen = np.array([o == objective for o in objectives])
            axis.scatter(np.asarray(reconstruction)[chosen], np.asarray(values)[chosen], s=14, color=colour,
                         label=objective)
        axis.set_xlabel("reconstruction loss")
        axis.set_ylabel(score)
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def rank_correlation(matrix, labels, title):
    """A heat map of rank correlations [k, k] between the scores `labels` (Locatello et al. 2019, Fig. 3 in spirit)."""
    figure, axis = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.6 + 0.8 * len(labels)), dpi=100)
    image = axis.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    for (i, j), value in np.ndenumerate(matrix):
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                  color="white" if abs(value) > 0.6 else "black")
    figure.colorbar(image, ax=axis, fraction=0.046)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def save_figure(figure, path):
    """Write a figure to `path` in one step (readers never see half a file) and free it."""
    replace_atomically(path, lambda temporary: figure.savefig(temporary))
    plt.close(figure)
