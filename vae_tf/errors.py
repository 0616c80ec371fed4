"""The one exception type for mistakes a user can fix."""


class UserError(Exception):
    """Bad input (a parameter, a path, a run folder): the entry points print it as one line and exit 2."""


class TrainingDiverged(Exception):
    """The loss or its gradients became non-finite; the run keeps its last good checkpoint."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; training saved a checkpoint at a clean step boundary and stopped."""
