"""The one timing loop the step benchmarks share, and the type of their counts on the command line."""

import argparse
import time


def at_least(minimum):
    """An argparse type: an integer of at least `minimum`, else the usual one-line usage error (exit 2)."""
    def count(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return count


def seconds_per_call(step, calls, warmup=5):
    """Seconds per call of the compiled `step` over `calls` calls, after `warmup` (tracing and first calls); its
    last result is fetched to the host before the clock stops."""
    import tensorflow as tf

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(calls):
        result = step()
    tf.nest.map_structure(lambda t: t.numpy(), result)
    return (time.perf_counter() - start) / calls
