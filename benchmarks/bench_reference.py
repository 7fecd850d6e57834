"""Benchmark: the reference's cost on 10⁷ elements (target: forward + backward in 1–2 s).

Run: ``.venv/bin/python benchmarks/bench_reference.py [--elements N] [--repeat R]``.
A benchmark, not a test: timings depend on the machine, so nothing here asserts a time.
It prints the best of ``repeat`` runs for each step and the elements per second.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import reference


def best_of(repeat: int, function) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    channels = 64
    batch = max(2, args.elements // (channels * 32 * 32))
    shape = (batch, channels, 32, 32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    gamma, beta = rng.uniform(0.5, 2, channels), rng.uniform(-1, 1, channels)
    size = x.size
    steps = {
        "forward (training)": lambda: reference.batch_norm_train(x, gamma, beta, axis=1, eps=1e-5),
        "forward (inference)": lambda: reference.batch_norm_eval(x, gamma, beta, np.zeros(channels), np.ones(channels), axis=1),
        "backward (includes its forward)": lambda: reference.batch_norm_backward(x, gamma, beta, dy, axis=1, eps=1e-5),
        "float32 rounding + forward + backward": lambda: reference.batch_norm_backward(
            x, gamma, beta, dy, axis=1, eps=1e-5, dtype="float32"
        ),
    }
    print(f"reference on {size:,} elements, shape {shape}, best of {args.repeat}")
    for name, step in steps.items():
        seconds = best_of(args.repeat, step)
        print(f"  {name:40} {seconds:7.3f} s   {size / seconds / 1e6:8.1f} M elements/s")


if __name__ == "__main__":
    main()
