"""Run a test's work on several threads at once and hand back what they raised."""

import threading


def run_on_threads(work, n: int) -> list:
    """Start `work(k)` for k in range(n) on n threads, wait for all; return the exceptions raised."""
    errors = []

    def guarded(k):
        try:
            work(k)
        except Exception as exc:  # reported to the caller, who asserts there is none
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
