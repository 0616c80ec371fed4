"""MkDocs hooks (mkdocs.yml `hooks:`): the parameter tables of docs/parameters.md, generated at every build.

The page holds the marker below; this replaces it with one table per group of `vae_tf.params.Params` fields, each row
a field's name, default and help text (the same text `python train.py --help` prints), read from the dataclass
itself, so the page cannot drift from the code. `vae_tf.params` imports no TensorFlow (only the standard library and
`vae_tf.errors`), so the hook costs a few milliseconds and needs no GPU or data.
"""

import dataclasses
import html
import importlib
import sys
import typing
from pathlib import Path

MARKER = "<!-- generated: parameter tables -->"

# Headings of the tables: each starts at the named field and runs to the next group's first field, in the dataclass's
# order. A renamed or removed field here only merges two groups; every field of Params is listed whatever this says.
GROUPS = {
    "run_name": "Run folder and data",
    "encoder_layers": "Encoder, decoder and latent code",
    "categorical_sizes": "Categorical latents (JointVAE)",
    "labels": "Semi-supervised models (M2, ADGM)",
    "activation": "Layers and reconstruction loss",
    "objective": "Objective and KL schedule",
    "tc_alpha": "Each objective's own weights",
    "batch_size": "Optimiser and length",
    "plot_step": "Snapshots, validation, checkpoints, MIG",
    "seed": "Seeds, determinism, failures",
    "strategy": "Devices and speed",
}


def on_config(config):
    # Read the vae_tf of this tree, whether or not it is the one installed.
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown, page, config, files):
    if MARKER not in markdown:
        return markdown
    params = importlib.import_module("vae_tf.params")
    if page.file.src_uri in _built:  # `mkdocs serve` rebuilds in one process: read the edited file again
        params = importlib.reload(params)
    _built.add(page.file.src_uri)
    return markdown.replace(MARKER, parameter_tables(params))


_built = set()


def parameter_tables(params):
    fields = dataclasses.fields(params.Params)
    hints = typing.get_type_hints(params.Params)
    defaults = params.defaults()
    structural = set(getattr(params, "STRUCTURAL", ()))
    out, rows = [], []

    def flush():
        if rows:
            out.append('<table class="parameters">\n<thead><tr><th>name</th><th>default</th><th>type</th>'
                       '<th>meaning</th></tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table>\n")
            rows.clear()

    for field in fields:
        if field.name in GROUPS or not out and not rows:
            flush()
            out.append(f"### {GROUPS.get(field.name, 'Parameters')}\n")
        meaning = html.escape(field.metadata.get("help", ""))
        if field.name in structural:
            meaning += ' <em>Fixed for a run: a resumed run may not change it.</em>'
        rows.append(f'<tr id="{field.name}"><td><code>{field.name}</code></td>'
                    f"<td><code>{html.escape(repr(defaults[field.name]))}</code></td>"
                    f"<td>{html.escape(_type_name(hints[field.name]))}</td><td>{meaning}</td></tr>")
    flush()
    return "\n".join(out)


def _type_name(hint):
    if hint is type(None):
        return "None"
    if typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))
