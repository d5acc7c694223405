"""Shared by the benchmark scripts: print seconds and ratios side by side, and the peak memory."""
from __future__ import annotations

import resource


def print_ratios(rows: list[tuple[str, float]], refs: dict[str, float]) -> None:
    """rows: (what, seconds); refs: column title -> reference seconds (each row is divided by it)."""
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'what':{width}s} {'seconds':>8s} " + " ".join(f"{t:>12s}" for t in refs))
    for name, sec in rows:
        print(f"{name:{width}s} {sec:8.1f} " + " ".join(f"{sec / ref:12.2f}" for ref in refs.values()))
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
