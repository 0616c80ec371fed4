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
    """Draw one image [H, W, C] in [0, 1] (a grid from image_grid) on a matplotlib axis, without ticks; returns the
    AxesImage, whose pixels `set_data` replaces."""
    axis.set_xticks([])
    axis.set_yticks([])
    return axis.imshow(_displayed(image), cmap="gray", vmin=0.0, vmax=1.0)


def _displayed(image):
    image = np.clip(np.asarray(image), 0.0, 1.0)
    return image[..., 0] if image.shape[-1] == 1 else image


class SnapshotFigure:
    """The labelled three-panel snapshot as RGB uint8 arrays [H, W, 3], drawn on one figure that every later step
    reuses: building a figure and its layout costs several times drawing it, and a run draws hundreds. Each instance
    owns its figure and canvas, outside pyplot's global state; use one instance from one thread at a time."""

    def __init__(self):
        self.canvas, self.images, self.title, self.background = None, [], None, None

    def __call__(self, originals, reconstructions, generations, step):
        panels = [np.asarray(images) for images in (originals, reconstructions, generations)]
        cells = max(len(images) for images in panels)  # a validation split of few images still lines up
        grids = [image_grid(images, cells=cells) for images in panels]
        if self.canvas is None or [image.get_array().shape for image in self.images] != [_displayed(grid).shape
                                                                                           for grid in grids]:
            self._build(grids)
        # Blitting: the panel titles stay in the saved background; only the images and the step are drawn again.
        self.canvas.restore_region(self.background)
        for image, grid in zip(self.images, grids):
            image.set_data(_displayed(grid))
            self.canvas.figure.draw_artist(image)
        self.title.set_text(f"step {step}")
        self.canvas.figure.draw_artist(self.title)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def _build(self, grids):
        figure = Figure(figsize=(9, 3.4), dpi=100)
        self.canvas = FigureCanvasAgg(figure)
        axes = figure.subplots(1, 3)
        self.images = []
        for axis, grid, title in zip(axes, grids, ("originals", "reconstructions", "generations")):
            self.images.append(show_images(axis, grid))
            axis.set_title(title)
            axis.axis("off")
        self.title = figure.suptitle("step 0", fontsize=13)
        figure.tight_layout(rect=(0, 0, 1, 0.94))
        for artist in (*self.images, self.title):
            artist.set_animated(True)  # left out of the background drawn next
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(figure.bbox)
