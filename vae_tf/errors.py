"""The exception types the entry points turn into one line, and the one line for a failed write."""

import errno


class UserError(Exception):
    """Bad input (a parameter, a path, a run folder): the entry points print it as one line and exit 2."""


class TrainingDiverged(Exception):
    """The loss or its gradients became non-finite; the run keeps its last good checkpoint."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; training saved a checkpoint at a clean step boundary and stopped."""


# The errors of a write the user can fix (space, a read-only mount, permissions, a path in the way, a failing disk);
# any other OSError (a missing file, a broken pipe) is a bug or another problem, and keeps its traceback.
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EIO})


def cannot_write(error, retry, elsewhere):
    """One line for an OSError met while writing into a run folder: the path, the reason and what to do.

    retry: what rerunning the same command does once the cause is gone ("resume from step 300");
    elsewhere: where the work can go instead ("pick another --output_dir").
    """
    number, path = error.errno, error.filename or "the run folder"
    if number in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = f"free some space, then rerun the same command to {retry}"
    elif number == errno.EROFS:
        fix = f"the file system is mounted read-only: remount it writable and rerun to {retry}, or {elsewhere}"
    elif number in (errno.EACCES, errno.EPERM):
        fix = f"a read-only folder or another user's: work on a copy of the run, or {elsewhere}"
    elif number in (errno.ENOTDIR, errno.EEXIST):
        fix = f"a file stands where a folder should be: move it away, or {elsewhere}"
    elif number == errno.EISDIR:
        fix = f"a folder stands where a file should be: move it away, or {elsewhere}"
    else:
        fix = f"fix the storage, then rerun the same command to {retry}"
    return f"cannot write {path} ({error.strerror or error}); {fix}"
