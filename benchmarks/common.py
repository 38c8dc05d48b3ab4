"""Helpers shared by the benchmark scripts: timing medians and saving JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# MUSICFLOW_BENCH_RESULTS sends results elsewhere (a smoke test that must not overwrite the real ones).
RESULTS = Path(os.environ.get("MUSICFLOW_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def median_time(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform()}


def save(name: str, result: dict) -> Path:
    """Print ``result`` and write it to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "script": Path(sys.argv[0]).stem, "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"saved {path}")
    return path
