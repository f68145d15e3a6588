"""The peak memory of a backward pass (tracemalloc), which the memory-bound tests share."""

import gc
import tracemalloc


def backward_peak(loss) -> int:
    """Bytes allocated at the peak of ``loss.backward()``, beyond what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        loss.backward()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
