"""The one timing loop the step benchmarks share."""

import time


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
