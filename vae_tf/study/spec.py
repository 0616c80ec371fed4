"""What a study is: a base configuration, the axes swept over it, the seeds, and how each finished run is scored.

A study file (`studies/<name>.py`) is Python that assigns `study = Study(...)`. Its runs are the union of the
grid's products (a dict of axes is their Cartesian product; a list of dicts, the union of each one's product, so
that each objective sweeps its own hyper-parameter, as disentanglement_lib's sweeps chain one product per model),
each with `samples` draws of the `random` axes, each with every seed. Every run is an ordinary run folder named
after its values, e.g. `objective=beta_vae-beta=4-seed=0`.
"""

import dataclasses
import itertools
import json
import math
import runpy
from pathlib import Path

import numpy as np

from vae_tf import params as params_module
from vae_tf.errors import UserError

RESOURCES = ("num_cpus", "num_gpus", "memory")  # what a run may ask of Ray (memory in bytes)
SET_BY_STUDY = ("run_name", "output_dir", "seed")  # parameters the study sets itself


@dataclasses.dataclass(frozen=True)
class Uniform:
    """A number drawn uniformly from [low, high)."""
    low: float
    high: float

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))


@dataclasses.dataclass(frozen=True)
class LogUniform:
    """A positive number whose logarithm is uniform: as likely in [1e-4, 1e-3) as in [1e-3, 1e-2)."""
    low: float
    high: float

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of `options`, each equally likely."""
    options: tuple

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of a study: its folder name, the values that set it apart (swept axes and seed), its overrides."""
    name: str
    values: dict
    overrides: dict


@dataclasses.dataclass
class Study:
    """A grid of runs. Every field but `grid` has a default.

    grid: {parameter: [values]} swept as a Cartesian product, or a list of such dicts (the union of their products).
    base: parameter overrides shared by every run, over vae_tf's defaults (after `preset`, if one is named).
    random: {parameter: Uniform | LogUniform | Choice}, drawn `samples` times for each grid point with the
        generator np.random.default_rng(random_seed), so a restarted study draws the same values.
    seeds: each configuration is trained once per seed (the `seed` parameter).
    metrics: names from vae_tf.metrics.METRICS scored on each finished run (analysis/metrics.json), with the quick
        protocol unless quick_metrics is False.
    likelihood_images, likelihood_samples: estimate the test log p(x) on that many test images with that many
        importance samples (0 images: not estimated).
    resources: what each run asks of Ray ({"num_cpus": 1} is one CPU core; fractions share a device); Ray runs
        as many at once as the cluster's resources allow.
    select_by: the metric that picks the best run per objective in study_summary.json (default: the first metric).
    """
    grid: object
    base: dict = dataclasses.field(default_factory=dict)
    preset: str = None
    random: dict = dataclasses.field(default_factory=dict)
    samples: int = 1
    random_seed: int = 0
    seeds: list = dataclasses.field(default_factory=lambda: [0])
    metrics: list = dataclasses.field(default_factory=list)
    quick_metrics: bool = True
    likelihood_images: int = 0
    likelihood_samples: int = 100
    resources: dict = dataclasses.field(default_factory=lambda: {"num_cpus": 1})
    select_by: str = None

    def __post_init__(self):
        self.grid = [self.grid] if isinstance(self.grid, dict) else self.grid
        if not isinstance(self.grid, (list, tuple)) or not all(isinstance(part, dict) for part in self.grid):
            raise UserError("a study's grid is a dict {parameter: [values]} or a list of such dicts")
        if not self.grid or any(not part or not all(part.values()) for part in self.grid):
            raise UserError("the study's grid is empty (an empty dict, or an axis without values): give every axis "
                            "at least one value")
        for part in self.grid:
            for name, values in part.items():
                if not isinstance(values, (list, tuple)):
                    raise UserError(f"grid axis {name} must be a list of values, got {values!r}")
        for name, distribution in self.random.items():
            if not isinstance(distribution, (Uniform, LogUniform, Choice)):
                raise UserError(f"random axis {name} must be a Uniform, LogUniform or Choice, got {distribution!r}")
        for name in self.axes() + list(self.base):
            params_module.check_name(name, "the study")
            if name in SET_BY_STUDY:
                raise UserError(f"the study sets {name} itself ({', '.join(SET_BY_STUDY)}); list seeds in "
                                f"`seeds`, and use --output_dir for where the runs go")
        _require(isinstance(self.samples, int) and self.samples >= 1, f"samples must be >= 1, got {self.samples!r}")
        _require(isinstance(self.seeds, (list, tuple)) and self.seeds and all(isinstance(s, int) for s in self.seeds)
                 and len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct integers, got {self.seeds!r}")
        unknown = set(self.resources) - set(RESOURCES)
        _require(not unknown, f"unknown resources {sorted(unknown)}; a run may ask for {', '.join(RESOURCES)}")
        _require(all(isinstance(v, (int, float)) and v >= 0 for v in self.resources.values()),
                 f"resources must be numbers >= 0, got {self.resources!r}")
        _require(self.likelihood_images >= 0 and self.likelihood_samples >= 1,
                 "likelihood_images must be >= 0 and likelihood_samples >= 1")

    def axes(self):
        """Every swept parameter, grid first, in the order the study gives them."""
        names = [name for part in self.grid for name in part] + list(self.random)
        return list(dict.fromkeys(names))

    def trials(self):
        """Every run of the study, in a fixed order: grid point, then random draw, then seed."""
        rng = np.random.default_rng(self.random_seed)
        trials, names = [], set()
        for part in self.grid:
            for point in itertools.product(*part.values()):
                for _ in range(self.samples):
                    drawn = {name: distribution.sample(rng) for name, distribution in self.random.items()}
                    for seed in self.seeds:
                        values = {**dict(zip(part, point)), **drawn, "seed": seed}
                        name = run_name(values)
                        if name in names:
                            raise UserError(f"the study names run {name} twice: remove the repeated grid value (or "
                                            f"raise the random axes' precision)")
                        names.add(name)
                        trials.append(Trial(name, values, {**self.base, **values}))
        return trials


def _require(condition, message):
    if not condition:
        raise UserError(message)


def _label(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def run_name(values):
    """A run folder's name from its values: `objective=beta_vae-beta=4-seed=0`."""
    return "-".join(f"{name}={_label(value)}" for name, value in values.items()).replace("/", "_")


def load_study(path):
    """(name, Study) from a study file: its `study` variable; the name is the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"study file {str(path)!r} not found; a study is a Python file such as studies/smoke.py")
    try:
        namespace = runpy.run_path(str(path))
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    except Exception as error:  # a study file is the user's code: one line on what went wrong in it
        raise UserError(f"{path} failed to run ({type(error).__name__}: {error}); fix the study file") from None
    study = namespace.get("study")
    if not isinstance(study, Study):
        raise UserError(f"{path} must assign study = Study(...) (from vae_tf.study import Study)")
    return path.stem, study
