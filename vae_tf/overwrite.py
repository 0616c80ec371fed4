"""The one rule every command follows before it writes: it never writes over a file it was given as input, over a
file of another kind, or a results file with less than the file holds, unless the user asks (`--force`).

Each check reads only; a command runs all of them before its first write, so a refused command leaves every file as
it was.
"""

import os
from pathlib import Path

from vae_tf.errors import UserError


def same_file(a, b):
    """Whether two paths name the same existing file (a link or another spelling of it included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs(output, inputs, option):
    """UserError when `output` (the value of `option`) is one of the `inputs` the command reads."""
    for path in inputs:
        if same_file(output, path):
            raise UserError(f"{option} {output} is one of the files this command reads; writing there would destroy "
                            f"it: pick another path for {option}")


def refuse_foreign(path, is_ours, kind, force_option="--force", instead="pick another path"):
    """UserError when `path` exists but is not a `kind` file this command writes (`is_ours(path)` is False): a
    mistyped output path must not replace a user's other file. `instead`: what the user can do otherwise;
    `force_option` None: never replaced."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; name a {kind} file to write")
    if path.exists() and not is_ours(path):
        ask = f", or add {force_option} to replace it" if force_option else ""
        raise UserError(f"{path} exists and is not a {kind}; {instead}{ask}")


def refuse_fewer(path, held, kept, what, force_option="--force"):
    """UserError when rewriting the results file `path` would drop entries it holds: `held` are the entries in the
    file, `kept` those the new file would hold (e.g. the runs of a study's results.csv); `what` names one entry and
    several, e.g. ("run", "runs")."""
    lost = [entry for entry in held if entry not in set(kept)]
    if lost:
        shown = ", ".join(map(str, lost[:3])) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
        what = what[0] if len(lost) == 1 else what[1]
        raise UserError(f"{path} holds {len(lost)} {what} that rebuilding it would drop ({shown}): their folders, or "
                        f"their records (trial.json), are gone from {Path(path).parent}; restore them, or add "
                        f"{force_option} to rebuild it without them")


def begins_with(prefix):
    """An `is_ours` test for `refuse_foreign`: the file begins with `prefix` (bytes), as every file of that kind the
    command writes does."""
    def test(path):
        with open(path, "rb") as file:
            return file.read(len(prefix)) == prefix
    return test
