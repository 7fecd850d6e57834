"""Benchmark: the reference and the tolerance model from 10³ to 10⁸ elements, against plain NumPy.

Run: ``.venv/bin/python benchmarks/bench_scaling.py [--largest 1e8] [--json F] [--plot docs/reference-scaling.png]``
(the plot needs matplotlib: ``pip install matplotlib``; without it the table is still printed).

For each size, one training step of float32 data, shape (N, 16, 32, 32)-like with 16
channels, is judged as a check would: the reference runs the whole protocol
(``reference.simulate``: inference, the training step, inference after it, the gradients)
and the tolerance model derives every quantity's allowed error (``allowed_errors``).  The
baseline is "a few NumPy passes": a per-channel mean, a variance, and one normalization
``(x − μ)·s``, which is the least any batch norm does.  Time is the best of ``--repeat`` at
every size: the first run at a new size touches memory the process never had, which on this
project's virtual machines costs more than the arithmetic (2.2 s for a first 800 MB array,
0.07 s for one the allocator reuses);
memory is the peak traced by ``tracemalloc`` (NumPy reports its buffers to it), shown as a
multiple of the input's size.  A benchmark, not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import plotting

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHANNELS = 16


def inputs(elements: int):
    from datamodel.case import CaseData

    per_channel = max(2, elements // CHANNELS)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((per_channel, CHANNELS)).astype(np.float32).astype(np.float64)
    dy = rng.standard_normal(x.shape)
    data = CaseData(batches=[x], gamma=np.ones(CHANNELS), beta=np.zeros(CHANNELS), running_mean=np.zeros(CHANNELS),
                    running_var=np.ones(CHANNELS), dy=dy)  # fmt: skip
    return x, data


def measure(elements: int, repeat: int) -> dict:
    from conformance.judging.tolerance import ToleranceInputs, allowed_errors
    from reference import Conventions, simulate

    x, data = inputs(elements)
    conventions = Conventions()

    def baseline():
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        return (x - mean) * (1 / np.sqrt(var + 1e-5))

    def run_reference():
        return simulate(data.batches, gamma=data.gamma, beta=data.beta, running_mean=data.running_mean,
                        running_var=data.running_var, dy=data.dy, axis=1, eps=1e-5, decay=0.9, dtype="float32",
                        conventions=conventions)  # fmt: skip

    expected = run_reference()
    tolerance_inputs = ToleranceInputs(data=data, axis=1, eps=1e-5, decay=0.9, dtype="float32", conventions=conventions)

    def run_tolerance():
        return allowed_errors(tolerance_inputs, expected)

    row = {"elements": x.size}
    for name, step in (("baseline", baseline), ("reference", run_reference), ("tolerance", run_tolerance)):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        step()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        row[f"{name}_s"] = min(times)
        row[f"{name}_copies"] = peak / x.nbytes
    return row


def plot(rows: list[dict], path: Path) -> bool:
    plt = plotting.pyplot()
    if plt is None:
        return False
    sizes = [r["elements"] for r in rows]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, label in (("baseline", "a few NumPy passes (mean, var, normalize)"), ("reference", "reference: whole protocol"),
                        ("tolerance", "tolerance model: every quantity")):  # fmt: skip
        axes.loglog(sizes, [r[f"{name}_s"] for r in rows], marker="o", label=label)
    axes.set_xlabel("elements (float32 data, 16 channels)")
    axes.set_ylabel("seconds (best of the repeats)")
    axes.set_title("Reference and tolerance model against plain NumPy")
    axes.grid(True, which="both", alpha=0.3)
    plotting.save(figure, axes, path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--largest", type=float, default=1e8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "reference-scaling.png")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    sizes = [int(10**k) for k in range(3, 9) if 10**k <= args.largest]
    rows = []
    print(f"{'elements':>12} {'NumPy s':>9} {'reference s':>12} {'×':>6} {'tolerance s':>12} {'×':>6}   peak memory (input copies): NumPy / reference / tolerance")
    for size in sizes:
        row = measure(size, args.repeat)
        rows.append(row)
        print(f"{row['elements']:>12,} {row['baseline_s']:>9.4f} {row['reference_s']:>12.4f} {row['reference_s'] / row['baseline_s']:>6.1f} "
              f"{row['tolerance_s']:>12.4f} {row['tolerance_s'] / row['baseline_s']:>6.1f}   "
              f"{row['baseline_copies']:.1f} / {row['reference_copies']:.1f} / {row['tolerance_copies']:.1f}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if plot(rows, args.plot):
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
