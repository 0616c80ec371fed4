"""Data sets as `tf.data` pipelines of float32 images in [0, 1], shape (H, W, C).

Every data set is a registry entry whose splits are indexable (`images(positions)`), so the training
stream is a pure function of (seed, step): a resumed run continues at exactly the batch it stopped at,
with no iterator state to save. Data sets that come as files are read into memory once, as uint8 at
the size the model sees (binary ones as packed bits), and gathered from there; shapes2d is drawn into
memory the same way (packed bits).
"""

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

from vae_tf import shapes2d
from vae_tf.errors import UserError
from vae_tf.objectives import stream_seed

SPLITS = ("train", "validation", "test")


class Split:
    """One split: `num_examples` images addressable by position through `images(positions) -> [n, H, W, C]`,
    and `labels`: name -> int array [num_examples] (class labels or ground-truth factors; empty when unknown)."""

    def __init__(self, num_examples, images, labels=None):
        self.num_examples = num_examples
        self.images = images
        self.labels = labels or {}


def _resident(array):
    """A large array as a variable held in host memory: captured by tf.data functions as a resource, not embedded as
    a graph constant (which is limited to 2 GB), and gathered from without the GIL."""
    with tf.device("/cpu:0"):
        return tf.Variable(array, trainable=False)


def _array_split(images, labels=None):
    """A Split over uint8 images [n, H, W, C] in memory (0..255), gathered with TensorFlow ops."""
    stored = _resident(images)

    def gather(positions):
        return tf.cast(tf.gather(stored, positions), tf.float32) / 255.0

    return Split(len(images), gather, labels)


def _bit_split(packed, shape, labels=None):
    """A Split over binary images stored as np.packbits rows [n, ceil(H·W·C / 8)], unpacked with TensorFlow ops."""
    size = int(np.prod(shape))
    stored = _resident(packed)
    shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)  # np.packbits puts the first pixel in the high bit

    def gather(positions):
        rows = tf.gather(stored, positions)  # [n, bytes]
        bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(rows[:, :, None], shifts), 1)  # [n, bytes, 8]
        return tf.cast(tf.reshape(tf.reshape(bits, (-1, bits.shape[1] * 8))[:, :size], (-1,) + tuple(shape)),
                       tf.float32)

    return Split(len(packed), gather, labels)


def partition_positions(num_examples, name):
    """Positions of a fixed 90/5/5 train/validation/test partition of range(num_examples), in a shuffled order
    (grid-ordered data sets such as shapes2d would otherwise show one shape in every snapshot)."""
    order = np.random.default_rng(20181001).permutation(num_examples)
    held_out = num_examples // 20
    bounds = {"test": (0, held_out), "validation": (held_out, 2 * held_out), "train": (2 * held_out, num_examples)}
    return order[slice(*bounds[name])]


def _fit(images, size, channels):
    """uint8 images [n, h, w, c] -> uint8 [n, size, size, channels]: centre-crop to a square, antialiased resize."""
    images = tf.convert_to_tensor(images)
    height, width = images.shape[1], images.shape[2]
    side = min(height, width)
    images = tf.image.crop_to_bounding_box(images, (height - side) // 2, (width - side) // 2, side, side)
    if images.shape[-1] != channels:
        images = tf.image.rgb_to_grayscale(images) if channels == 1 else tf.image.grayscale_to_rgb(images)
    if side != size:
        images = tf.image.resize(tf.cast(images, tf.float32), (size, size), method="area" if size < side else "bilinear",
                                 antialias=True)
        images = tf.cast(tf.round(tf.clip_by_value(images, 0, 255)), tf.uint8)
    return images.numpy()


BINARIZATION_SEED = 20181001  # the fixed binarisation of held-out images


def fixed_binarization(split, seed=BINARIZATION_SEED):
    """The split with each image's pixels drawn once as Bernoulli(grey level) with `seed` (the likelihood papers'
    fixed binarisation of held-out images), stored as packed bits."""
    rng, rows, shape = np.random.default_rng(seed), [], None
    for start in range(0, split.num_examples, 4096):
        grey = split.images(tf.range(start, min(start + 4096, split.num_examples), dtype=tf.int64)).numpy()
        shape = grey.shape[1:]
        rows.append(np.packbits((rng.uniform(size=grey.shape) < grey).reshape(len(grey), -1), axis=1))
    return _bit_split(np.concatenate(rows), shape, split.labels)


class Source:
    """A data set: its native image size and channels, and `split(name) -> Split` at the requested size.

    `fixed_split(name)` is the split as evaluation sees it: with `binarize`, its pixels drawn once and kept
    (`fixed_binarization`); training binarises each batch afresh instead (`TrainingStream`)."""

    native_size = 64
    value_labels = {}  # label name -> the string each of its values stands for, for the figures' legends
    channels = 1

    def __init__(self, image_size=None, data_dir=None, channels=None, download=False, binarize=False):
        self.size = image_size or self.native_size
        self.out_channels = channels or self.channels
        self.data_dir, self.download, self.binarize = data_dir, download, binarize

    def fixed_split(self, name):
        split = self.split(name)
        return fixed_binarization(split) if self.binarize else split


class Shapes2D(Source):
    """The embedded procedural data set (see `vae_tf.shapes2d`). A split is drawn into memory once, as packed bits
    (the 90% training split: 85 MB at 32×32, 340 MB at 64×64), so a training step gathers its batch instead of
    drawing it; at sizes whose split would pass RESIDENT_BYTES it is drawn batch by batch."""

    native_size = shapes2d.NATIVE_SIZE
    value_labels = shapes2d.factor_labels()
    # The training split is held up to image_size 128 (1.36 GB, twice while a run holds it: _drawn_split's cache
    # and the run's variable).
    RESIDENT_BYTES = 1_500_000_000

    def split(self, name):
        partition = partition_positions(shapes2d.NUM_IMAGES, name)
        labels = dict(zip(shapes2d.FACTOR_NAMES, shapes2d.index_to_factors(partition).T))
        size, channels = self.size, self.out_channels
        if len(partition) * shapes2d.packed_row_bytes(size) <= self.RESIDENT_BYTES:
            images = _bit_split(_drawn_split(name, size), (size, size, 1)).images
        else:
            indices, render = tf.constant(partition, tf.int64), shapes2d.compiled(size)[0]
            images = lambda positions: render(tf.gather(indices, positions))  # noqa: E731
        tiled = (lambda positions: tf.tile(images(positions), [1, 1, 1, channels])) if channels > 1 else images
        return Split(len(partition), tiled, labels)

    def ground_truth(self):
        return shapes2d.Shapes2DGroundTruth(self.size, self.out_channels)


@functools.lru_cache(maxsize=4)
def _drawn_split(name, size):
    """A shapes2d split drawn as packed bits, kept for the next run in this process (a notebook, a sweep, the tests)
    at the same size: the last four splits drawn. Read-only, so that no caller can change a later run's data."""
    packed = shapes2d.render_packed(partition_positions(shapes2d.NUM_IMAGES, name), size)
    packed.flags.writeable = False
    return packed


class Tfds(Source):
    """A tensorflow-datasets image set, read into memory at the model's size."""

    tfds_name = None
    tfds_splits = {"train": "train[:95%]", "validation": "train[95%:]", "test": "test"}
    crop = None  # (top, left, height, width) applied before resizing

    def split(self, name):
        dataset = _tfds_dataset(self.tfds_name, self.tfds_splits[name], self.data_dir, self.download)
        keep = [key for key in ("image", "label") if key in dataset.element_spec]
        batches, labels = [], []
        for batch in dataset.map(lambda example: {key: example[key] for key in keep}).batch(1024).as_numpy_iterator():
            images = batch["image"]
            if self.crop:
                top, left, height, width = self.crop
                images = images[:, top:top + height, left:left + width]
            batches.append(_fit(images, self.size, self.out_channels))
            labels.append(batch.get("label"))
        return _array_split(np.concatenate(batches), {"label": np.concatenate(labels)} if "label" in keep else None)


IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path):
    """An IDX file (LeCun's MNIST format; gzipped or not) -> uint8 array. The format is a 4-byte magic number (0, 0,
    type 0x08 = unsigned byte, the number of dimensions), one big-endian int32 per dimension, then the data. No
    well-kept reader is on PyPI (Keras' own loaders slice these files at fixed offsets too), so it is read here, with
    its header checked."""
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes; replace it with the data set's original file")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise UserError(f"{path} holds {body.size} bytes for shape {shape}: the file is truncated; fetch it again")
    return body.reshape(shape)


class IdxSource(Tfds):
    """MNIST-style data read from its four IDX files when they are on this machine — in data_dir, in `SYSTEM_DIR`
    (a Debian package's), or in Keras' download cache — else from tensorflow-datasets. Splits in the proportions
    tensorflow-datasets uses: the first 95% of the training file, its last 5% for validation, the test file. (Its own
    train[:95%] holds other images, as it shuffles the file when it prepares it: train a run from one source.)"""

    SYSTEM_DIR, PACKAGE_HINT = None, None  # where a system package puts the files, and how to install it
    KERAS_CACHE = None  # where under ~/.keras/datasets keras.datasets keeps them: a folder of IDX files, or an npz

    def _keras_cache(self):
        return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / self.KERAS_CACHE

    def idx_folder(self):
        """The first folder holding all four IDX files (each plain or .gz), or None."""
        candidates = [self.data_dir, self.SYSTEM_DIR, self.KERAS_CACHE and self._keras_cache()]
        for folder in (Path(c) for c in candidates if c):
            if all(self._file(folder, name) for names in IDX_FILES.values() for name in names):
                return folder
        return None

    @staticmethod
    def _file(folder, name):
        return next((folder / (name + suffix) for suffix in (".gz", "") if (folder / (name + suffix)).is_file()), None)

    def _arrays(self, name):
        """(images uint8 [n, 28, 28], labels [n]) of the file pair of split `name`, or None when not on this machine."""
        part = "test" if name == "test" else "train"
        folder = self.idx_folder()
        if folder is not None:
            return tuple(read_idx(self._file(folder, file)) for file in IDX_FILES[part])
        npz = self.KERAS_CACHE and self._keras_cache()
        if npz and npz.suffix == ".npz" and npz.is_file():  # keras.datasets.mnist's cache
            with np.load(npz) as archive:
                return archive[f"x_{part}"], archive[f"y_{part}"]
        return None

    def split(self, name):
        arrays = self._arrays(name)
        if arrays is None:
            return self._tfds_split(name)
        images, labels = arrays
        if name != "test":
            cut = len(images) * 95 // 100
            part = slice(None, cut) if name == "train" else slice(cut, None)
            images, labels = images[part], labels[part]
        return _array_split(_fit(images[..., None], self.size, self.out_channels), {"label": labels.astype(np.int64)})

    def _tfds_split(self, name):
        try:
            return super().split(name)
        except UserError as error:
            raise UserError(f"{self.tfds_name}: its files are in neither data_dir, "
                            + (f"{self.SYSTEM_DIR} ({self.PACKAGE_HINT}), " if self.SYSTEM_DIR else "")
                            + f"nor ~/.keras/datasets/{self.KERAS_CACHE}, and {error}") from None


class Mnist(IdxSource):
    tfds_name, native_size, KERAS_CACHE = "mnist", 28, "mnist.npz"
    value_labels = {"label": [str(digit) for digit in range(10)]}


class FashionMnist(IdxSource):
    tfds_name, native_size = "fashion_mnist", 28
    value_labels = {"label": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                              "Bag", "Ankle boot"]}  # Xiao et al. 2017
    SYSTEM_DIR, PACKAGE_HINT = "/usr/share/datasets/fashion-mnist", "apt-get install dataset-fashion-mnist"
    KERAS_CACHE = "fashion-mnist"


class CelebA(Tfds):
    """Aligned CelebA: the centre 128×128 of the 218×178 image, resized (antialiased) to 64×64×3."""

    tfds_name, channels = "celeb_a", 3
    tfds_splits = {"train": "train", "validation": "validation", "test": "test"}
    crop = ((218 - 128) // 2, (178 - 128) // 2, 128, 128)


DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"


class DSprites(Source):
    """The official dSprites: the npz archive from data_dir when present, else tensorflow-datasets' `dsprites`."""

    value_labels = shapes2d.factor_labels()  # the same factor grid

    def _load(self):
        """(binary images uint8 [n, 64, 64], factor classes int [n, k]) with one-valued factors (colour) dropped."""
        path = Path(self.data_dir) if self.data_dir else None
        if path is not None and path.suffix != ".npz":
            path = path / DSPRITES_FILE
        if path is not None and path.is_file():
            try:
                with np.load(path) as archive:
                    images, classes = archive["imgs"], archive["latents_classes"]
            except (KeyError, ValueError, OSError) as error:
                raise UserError(f"{path} is not a dSprites archive ({error}); it needs the arrays 'imgs' and "
                                f"'latents_classes'") from None
        else:
            dataset = _tfds_dataset("dsprites", "train", self.data_dir, self.download)
            names = ["label_shape", "label_scale", "label_orientation", "label_x_position", "label_y_position"]
            images, classes = [], []
            for batch in dataset.batch(4096).as_numpy_iterator():
                images.append(batch["image"][..., 0])
                classes.append(np.stack([batch[n] for n in names], axis=1))
            images, classes = np.concatenate(images), np.concatenate(classes)
        classes = np.asarray(classes)
        return images, classes[:, classes.max(axis=0) > 0]

    def _images(self):
        if not hasattr(self, "_cache"):
            images, classes = self._load()
            if self.size != images.shape[1] or self.out_channels != 1:
                binary = (images > 0).astype(np.uint8) * 255
                fitted = np.concatenate([_fit(binary[i:i + 4096, ..., None], self.size, self.out_channels)
                                         for i in range(0, len(images), 4096)])
                self._cache = (None, fitted, classes)
            else:
                self._cache = (np.packbits(images.reshape(len(images), -1) > 0, axis=1), None, classes)
        return self._cache

    def split(self, name):
        packed, fitted, classes = self._images()
        positions = partition_positions(len(classes), name)
        labels = dict(zip(shapes2d.FACTOR_NAMES, classes[positions].T))
        if packed is not None:
            return _bit_split(packed[positions], (self.size, self.size, 1), labels)
        return _array_split(fitted[positions], labels)

    def ground_truth(self):
        packed, fitted, classes = self._images()
        return ArrayGroundTruth(classes, _bit_split(packed, (self.size, self.size, 1)) if packed is not None
                                else _array_split(fitted), (self.size, self.size, self.out_channels),
                                shapes2d.FACTOR_NAMES)


class ArrayGroundTruth:
    """The ground-truth interface (docs/datasets.md, Ground-truth factors) over stored images with a complete grid
    of factor classes."""

    def __init__(self, classes, split, observation_shape, factor_names):
        self.factors_num_values = [int(n) for n in classes.max(axis=0) + 1]
        self.num_factors = len(self.factors_num_values)
        self.factor_names = tuple(factor_names)
        self.observation_shape = observation_shape
        if len(classes) != np.prod(self.factors_num_values):
            raise UserError(f"the data set's factors do not form a complete grid ({len(classes)} images for "
                            f"{self.factors_num_values} factor values)")
        self._row = np.empty(len(classes), np.int64)
        self._row[np.ravel_multi_index(tuple(classes.T), self.factors_num_values)] = np.arange(len(classes))
        self._split = split

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(n, size=num) for n in self.factors_num_values], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        rows = self._row[np.ravel_multi_index(tuple(np.asarray(factors).T), self.factors_num_values)]
        return self._split.images(tf.constant(rows)).numpy()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class Folder(Source):
    """Every image file under data_dir (recursive), centre-cropped and resized; split by file path."""

    channels = 3

    def _files(self):
        if self.data_dir is None or not Path(self.data_dir).is_dir():
            raise UserError(f"data_dir {self.data_dir!r} is not a folder; point --data_dir at a folder of images")
        root = Path(self.data_dir)
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if len(files) < 3:
            raise UserError(f"found {len(files)} image files (png, jpg, bmp, gif) under {root}; "
                            f"a folder data set needs at least 3")
        # A file's split depends on its path alone: adding files never moves the others between splits.
        return sorted(files, key=lambda p: zlib.crc32(str(p.relative_to(root)).encode()))

    def split(self, name):
        files = self._files()
        held_out = max(1, len(files) // 20)
        chosen = {"test": files[:held_out], "validation": files[held_out:2 * held_out],
                  "train": files[2 * held_out:]}[name]
        images, unreadable = [], []
        for path in chosen:
            try:
                image = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
            except (tf.errors.InvalidArgumentError, OSError):
                unreadable.append(path)
                print(f"skipping unreadable image {path}")
                continue
            images.append(_fit(image[None], self.size, self.out_channels)[0])
        if unreadable:
            print(f"{name} split: skipped {len(unreadable)} unreadable file(s), kept {len(images)}")
        if not images:
            raise UserError(f"no readable image in the {name} split of {self.data_dir}")
        return _array_split(np.stack(images))


DATASETS = {"shapes2d": Shapes2D, "mnist": Mnist, "fashion_mnist": FashionMnist, "celeb_a": CelebA,
            "dsprites": DSprites, "folder": Folder}


def _tfds_dataset(name, split, data_dir, download):
    """A prepared tensorflow-datasets split, or one clear error saying how to get it."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        try:
            builder.download_and_prepare()
        except Exception as error:  # network, disk and manual-download errors of every kind tfds raises
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise UserError(f"tensorflow-datasets could not download and prepare {name!r} ({first}); "
                            f"shapes2d and folder work offline") from None
    try:
        return builder.as_dataset(split=split, shuffle_files=False)
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError):
        raise UserError(f"data set {name!r} is not prepared in {builder.data_dir_root}: it needs a one-time download "
                        f"(rerun with --download=True on a machine with internet) or --data_dir pointing at prepared "
                        f"tensorflow-datasets data; shapes2d and folder work offline") from None


def _source(name, image_size=None, data_dir=None, channels=None, download=False, binarize=False):
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](image_size=image_size, data_dir=data_dir, channels=channels, download=download,
                          binarize=binarize)


def source_for(params):
    return _source(params.dataset, params.image_size, params.data_dir, params.channels, params.download,
                   params.binarize)


def image_shape_of(params):
    """(H, W, C) of the images the model sees for these params."""
    source_class = DATASETS[params.dataset]
    size = params.image_size or source_class.native_size
    return (size, size, params.channels or source_class.channels)


def epoch_order(num_examples, seed, epoch):
    """Positions 0..n-1 [n] int64 in epoch `epoch`'s seeded order: a fresh one every epoch."""
    return tf.random.experimental.stateless_shuffle(tf.range(num_examples, dtype=tf.int64),
                                                    seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))


class TrainingStream:
    """The endless training stream as a function of the step, made of TensorFlow ops that run inside the compiled
    training step (no tf.data iterator, no host in the loop): batch `step` holds positions step·B .. step·B + B − 1
    of the concatenated epochs, each epoch a fresh seeded order of the split (`epoch_order`).

    The current epoch's order is kept in a variable and redrawn when the epoch changes; a batch that spans epochs
    draws the orders it needs. With `binarize`, each batch's pixels are drawn as Bernoulli(grey level) from a seed of
    (seed, step): dynamic binarisation (Salakhutdinov & Murray 2008), the same on a resumed run.
    """

    BINARIZATION_STREAM = 6  # one of the run's random streams (vae_tf.objectives lists them)

    def __init__(self, split, batch_size, seed, binarize=False):
        self.split, self.batch_size, self.seed, self.binarize = split, batch_size, seed, binarize
        with tf.device("/cpu:0"):
            self.order = tf.Variable(tf.zeros([split.num_examples], tf.int64), trainable=False)
            self.order_epoch = tf.Variable(tf.constant(-1, tf.int64), trainable=False)

    def _order(self, epoch):
        return epoch_order(self.split.num_examples, self.seed, epoch)

    def positions(self, step):
        """step (scalar int) -> positions [B] int64 of the batch's images in the split."""
        n = self.split.num_examples
        index = tf.cast(step, tf.int64) * self.batch_size + tf.range(self.batch_size, dtype=tf.int64)
        epochs, offsets = index // n, index % n
        first, last = epochs[0], epochs[-1]

        def redraw():
            with tf.control_dependencies([self.order.assign(self._order(first))]):
                return self.order_epoch.assign(first)

        with tf.control_dependencies([tf.cond(tf.equal(self.order_epoch, first), lambda: self.order_epoch, redraw)]):
            cached = tf.gather(self.order, offsets)

        def spanning():
            orders = tf.map_fn(self._order, tf.range(first, last + 1), fn_output_signature=tf.int64)  # [E, n]
            return tf.gather_nd(orders, tf.stack([epochs - first, offsets], axis=1))

        return tf.cond(tf.equal(first, last), lambda: cached, spanning)

    def batch(self, step):
        """step (scalar int) -> the batch's images [B, H, W, C]."""
        return self.images_at(self.positions(step), step)

    def images_at(self, positions, step):
        """The images at `positions` [B] as step `step` sees them (binarised with its seed)."""
        images = self.split.images(positions)
        if not self.binarize:
            return images
        seed = stream_seed(self.seed, step, self.BINARIZATION_STREAM)
        return tf.cast(tf.random.stateless_uniform(tf.shape(images), seed=seed) < images, tf.float32)


def class_names(params):
    """The classes of `params.label_factor` on the run's data set, the names of its values; UserError when the data
    set has no such label."""
    labels = DATASETS[params.dataset].value_labels
    if params.label_factor not in labels:
        have = f"its labels are {', '.join(labels)}" if labels else "it has no labels"
        raise UserError(f"data set {params.dataset} has no label {params.label_factor!r} for model {params.model}: "
                        f"{have}")
    return labels[params.label_factor]


def labelled_positions(split, params):
    """Positions [labels] (int64) of the training images whose labels a semi-supervised run sees: `labels //
    classes` of each class of `label_factor`, drawn without replacement by the run's seed (the papers' balanced
    subsets: Kingma et al. 2014 take 10 of each digit for 100 labels)."""
    classes = len(class_names(params))
    if params.labels % classes:
        raise UserError(f"labels {params.labels} is not a multiple of the {classes} classes of {params.label_factor} "
                        f"(the same number of each): use {max(classes, params.labels // classes * classes)}")
    values = np.asarray(split.labels[params.label_factor])
    each = params.labels // classes
    rng = np.random.default_rng([params.seed, LABELLED_SEED])
    chosen = []
    for value in range(classes):
        members = np.flatnonzero(values == value)
        if len(members) < each:
            raise UserError(f"labels {params.labels} asks for {each} images of each class, but class {value} of "
                            f"{params.label_factor} has {len(members)} training images: use fewer labels")
        chosen.append(rng.choice(members, each, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


LABELLED_SEED = 2014  # the labelled subset's own random stream (Kingma et al. 2014)


class LabelledStream:
    """A semi-supervised run's training stream: at each step a batch of B training images, used without their labels
    (the unlabelled ELBO), and a batch of B of the labelled images with their classes (the labelled ELBO and the
    classifier), balanced as the papers do: both batches every step, the labelled ones revisited in a fresh order
    each time they are used up. `batch(step) -> (x [B, ...], labelled x [B, ...], classes [B])`."""

    def __init__(self, split, positions, classes, batch_size, seed, binarize=False):
        self.unlabelled = TrainingStream(split, batch_size, seed, binarize)
        positions, classes = tf.constant(positions, tf.int64), tf.constant(classes, tf.int64)
        subset = Split(int(positions.shape[0]), lambda p: split.images(tf.gather(positions, p)))
        # Its own seed: its order and its binarisation are not the unlabelled batch's.
        self.labelled = TrainingStream(subset, batch_size, seed * 7919 + LABELLED_SEED, binarize)
        self.classes = classes

    def batch(self, step):
        at = self.labelled.positions(step)
        return self.unlabelled.batch(step), self.labelled.images_at(at, step), tf.gather(self.classes, at)


def evaluation_batches(split, batch_size, limit=None):
    """The first `limit` images of a split in their fixed order, batched (the last batch may be smaller)."""
    count = split.num_examples if limit is None else min(limit, split.num_examples)
    return (tf.data.Dataset.range(count).batch(batch_size)
            .map(split.images, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def load_dataset(name, split="train", image_size=None, data_dir=None, seed=0, shuffle=True, channels=None,
                 download=False):
    """One pass over a split as a `tf.data.Dataset` of float32 images [H, W, C] in [0, 1].

    `shuffle=True` orders the pass by `seed` (deterministically); `shuffle=False` keeps the split's fixed order.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    data = _source(name, image_size, data_dir, channels, download).split(split)
    if shuffle:
        positions = tf.data.Dataset.from_tensor_slices(epoch_order(data.num_examples, seed, 0))
    else:
        positions = tf.data.Dataset.range(data.num_examples)
    return (positions.batch(256).map(data.images, num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch().prefetch(tf.data.AUTOTUNE))


def load_ground_truth(name, image_size=None, data_dir=None, download=False, channels=None):
    """The ground-truth factor interface (docs/datasets.md, Ground-truth factors) of a data set with known factors
    (shapes2d, dsprites)."""
    source = _source(name, image_size, data_dir, channels, download)
    check_ground_truth(name)
    return source.ground_truth()


def check_ground_truth(name):
    """UserError unless data set `name` has ground-truth factors (cheap: loads nothing)."""
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if not hasattr(DATASETS[name], "ground_truth"):
        raise UserError(f"data set {name!r} has no ground-truth factors; disentanglement metrics need "
                        f"shapes2d, dsprites or your own ground-truth object (vae_tf.metrics)")
