"""Every speed figure of the README's Speed section, from one command.

Run: ``.venv/bin/python benchmarks/run_all.py [--out docs/benchmarks] [--profiles ci,nightly] [--skip NAME,...]``.

Runs, one after another (so they do not share the cores): the harness overhead
(``bench_overhead``), the compile counts, cold and warm (``bench_compile``), checks per second
of each profile on 1 and 2 cores with a plot (``bench_profiles``), and the reference and
tolerance model from 10³ to 10⁸ elements with a plot (``bench_scaling``).  Each writes its
rows as JSON into ``--out`` and prints its table; the plots go to ``docs/``.  ``--skip`` leaves
steps out by name (``overhead``, ``compile``, ``profiles``, ``scaling``).  Takes about two
hours on a 2-core machine with the nightly profile (each engine's nightly run stops after 8
minutes, on 1 core and on 2), about half an hour without it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


#: A nightly run of a compiling engine compiles for nearly every example and would take hours:
#: each engine's nightly rate is measured over its first 8 minutes (the engines that do not
#: compile finish well within them).  onnxruntime is measured there too.
PROFILE_OPTIONS = {
    "nightly": ["--limit-seconds", "480", "--frameworks", "torch,keras,keras-jax,keras-torch,tf-keras,flax,nnx,onnxruntime"],
}


def steps(out: Path, profiles: list[str]) -> dict[str, list[list[str]]]:
    """Each step's commands (a step may run its script once per profile)."""
    profile_runs = [
        ["bench_profiles.py", "--profile", profile, "--cores", "1,2", "--json", str(out / f"profiles-{profile}.json"),
         "--plot", str(ROOT / "docs" / f"profile-{profile}.png"), *PROFILE_OPTIONS.get(profile, [])]
        for profile in profiles
    ]  # fmt: skip
    return {
        "overhead": [["bench_overhead.py", "--json", str(out / "overhead.json")]],
        "compile": [["bench_compile.py", "--warm", "--json", str(out / "compile.json")]],
        "profiles": profile_runs,
        "scaling": [["bench_scaling.py", "--json", str(out / "scaling.json"), "--plot", str(ROOT / "docs" / "reference-scaling.png")]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--profiles", default="ci,nightly")
    parser.add_argument("--skip", default="", help="steps to leave out: overhead, compile, profiles, scaling")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plan = steps(args.out, [p.strip() for p in args.profiles.split(",") if p.strip()])
    skipped = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skipped - set(plan)
    if unknown:
        parser.error(f"unknown step(s) to skip: {', '.join(sorted(unknown))}; expected some of {', '.join(plan)}")
    failed = []
    for name, commands in plan.items():
        if name in skipped:
            continue
        for command in commands:
            print(f"== {name}: {' '.join(command)}", flush=True)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], cwd=ROOT)
            print(f"== {name}: exit {done.returncode} after {time.perf_counter() - start:.0f} s", flush=True)
            if done.returncode:
                failed.append(name)
    if failed:
        print(f"steps that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
