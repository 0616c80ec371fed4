"""The training snapshot: originals | reconstructions | generations from one fixed noise batch."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def image_grid(images, columns=4, cells=0):
    """Images [n, H, W, C] in [0, 1] -> one grid [rows·H, columns·W, C] with a 1-px separating border, at least
    `cells` places long (the empty ones blank), so that grids of fewer images line up with fuller ones."""
    n, height, width, channels = images.shape
    rows = -(-max(n, cells) // columns)
    grid = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[1 + r * (height + 1):1 + r * (height + 1) + height, 1 + c * (width + 1):1 + c * (width + 1) + width] = image
    return grid


def show_images(axis, image):
    """Draw one image [H, W, C] in [0, 1] (a grid from image_grid) on a matplotlib axis, without ticks."""
    image = np.clip(np.asarray(image), 0.0, 1.0)
    axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0, vmax=1.0)
    axis.set_xticks([])
    axis.set_yticks([])


def snapshot_figure(originals, reconstructions, generations, step):
    """A labelled three-panel figure as an RGB uint8 array [H, W, 3]. Safe to call from any thread: the figure is
    drawn on its own canvas, outside pyplot's global state."""
    figure = Figure(figsize=(9, 3.4), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3)
    panels = [np.asarray(images) for images in (originals, reconstructions, generations)]
    cells = max(len(images) for images in panels)  # a validation split of few images still lines up
    for axis, images, title in zip(axes, panels, ("originals", "reconstructions", "generations")):
        show_images(axis, image_grid(images, cells=cells))
        axis.set_title(title)
        axis.axis("off")
    figure.suptitle(f"step {step}", fontsize=13)
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
