"""The ``bnconf`` command line: ``run``, ``explain``, ``replay`` and ``report``.

Exit codes: 0 success (nothing unexpected), 1 something was found (a discrepancy or an
error), 2 bad usage or bad input, with a message naming the problem and no traceback.

The commands that start engines in this process (``explain``, ``replay``, ``port`` and
``observe``) keep the frameworks' own log output in a log file (``frameworklog``), named in
one line at the end when it holds anything; the CLI's own messages are printed after it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance.generation.profiles import DEFAULT_PROFILE, PROFILES
from datamodel import jsoncodec

from .exitcodes import EXIT_FOUND, EXIT_INTERRUPTED, EXIT_NOTHING_CHECKED, EXIT_OK, EXIT_USAGE
from .run import DEFAULT_CASE_TIMEOUT


class UsageError(Exception):
    """Bad usage or bad input: printed as ``bnconf: error: ...`` with exit code 2."""


class CommandFailed(Exception):
    """A command that ends with one line, ``bnconf: ...``, and exit code ``code`` (not a usage error)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("(", "").replace(")", "").split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 100,200,3, got {text!r}") from None
    if not shape or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 100,200,3, got {text!r}")
    return shape


def _frameworks(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of frameworks, e.g. torch,keras,flax")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnconf", description="Batch-norm conformance harness.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the conformance suite and write records and the report")
    run.add_argument("--frameworks", type=_frameworks, help="comma-separated frameworks (default: all registered)")
    run.add_argument("--quick", action="store_true",
                     help="leave out the slow variants (compiled modes that recompile per ε, eager JAX); each is still "
                          "compared with its engine's default by the execution property")  # fmt: skip
    run.add_argument("--device", choices=("cpu", "gpu", "all"), default="cpu", help="device to run on (default: cpu)")
    run.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE, help=f"hypothesis profile (default: {DEFAULT_PROFILE})")
    run.add_argument("--out", default="bnconf-out", help="output directory (default: bnconf-out)")
    run.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS", help=ONE_OFF_HELP)
    run.add_argument("--jobs", type=int, default=1, help="framework processes to run at once (default: 1)")
    run.add_argument("--case-timeout", type=float, default=DEFAULT_CASE_TIMEOUT, metavar="SECONDS",
                     help=f"kill a framework's process when one check runs longer (default: {DEFAULT_CASE_TIMEOUT:g})")

    explain = commands.add_parser("explain", help="batch norm for one input shape: one engine in detail, or several side by side")
    explain.add_argument("framework", nargs="?", help="one engine in detail, e.g. torch (default: every engine, side by side)")
    explain.add_argument("--frameworks", type=_frameworks, help="comma-separated engines to put side by side")
    explain.add_argument("--input-shape", type=_shape, required=True, help="per-sample shape without the batch axis, e.g. 100,200,3")
    explain.add_argument("--layout", choices=("channels_first", "channels_last"), help="where the channels are (default: the framework's)")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")

    replay = commands.add_parser("replay", help="run one case file on each framework and compare with the reference")
    replay.add_argument("case", help="path of a case file (JSON)")
    replay.add_argument("--frameworks", type=_frameworks, help="comma-separated frameworks (default: the case's, else all)")
    replay.add_argument("--device", choices=("cpu", "gpu"), help="override the case's device")
    replay.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replay.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS", help=ONE_OFF_HELP)

    port = commands.add_parser("port", help="move a batch norm's configuration and state to another engine, and prove it")
    port.add_argument("source", help="the engine the state comes from, e.g. torch")
    port.add_argument("destination", help="the engine it goes to, e.g. keras")
    port.add_argument("--input-shape", type=_shape, required=True, help="per-sample input shape in the source's layout, e.g. 3,32,32")
    port.add_argument("--state", type=Path, help="the source's saved state: a case file (.json), .npz of its variables, or PyTorch's .pt state_dict")
    port.add_argument("--layout", choices=("channels_first", "channels_last"), help="the source's layout (default: its own)")
    port.add_argument("--to-layout", choices=("channels_first", "channels_last"), help="the destination's layout (default: its own)")
    port.add_argument("--eps", type=float, help="the source's ε (default: from the state file, else the source's default)")
    port.add_argument("--momentum", type=float, help="the source's momentum in its own form (default: from the state file, else its default)")
    port.add_argument("--data", type=Path, help="a .npy batch in the source's layout to prove the port on (default: generated)")
    port.add_argument("--snippet", action="store_true", help="also print the destination's standalone loading snippet")
    port.add_argument("--json", action="store_true", help="print JSON instead of text")

    observe = commands.add_parser("observe", help="run one case on one engine and print every quantity as JSON (plumbing)")
    observe.add_argument("case", help="path of a case file (JSON)")
    observe.add_argument("--frameworks", type=_frameworks, required=True, help="the one engine to run")

    matrix = commands.add_parser("matrix", help="run the CI matrix's cells that can run here, and merge them")
    matrix.add_argument("--cells", type=_frameworks, help="comma-separated cell names (default: every cell)")
    matrix.add_argument("--jobs", type=int, default=1, help="cells to run at once (default: 1)")
    matrix.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE, help=f"hypothesis profile (default: {DEFAULT_PROFILE})")
    matrix.add_argument("--out", default="bnconf-out/matrix", help="output directory (default: bnconf-out/matrix)")
    matrix.add_argument("--case-timeout", type=float, default=DEFAULT_CASE_TIMEOUT, metavar="SECONDS",
                        help=f"kill a cell's process when one check runs longer (default: {DEFAULT_CASE_TIMEOUT:g})")
    matrix.add_argument("--list", action="store_true", help="list the cells and whether each can run here, then stop")
    matrix.add_argument("--matrix-file", type=Path, default=None, metavar="PATH",
                        help="the matrix to read (default: conformance/data/matrix.toml)")  # fmt: skip

    report = commands.add_parser("report", help="render (and merge) result files into one report")
    report.add_argument("results", nargs="+", help="records files (JSON lines) or run directories")
    report.add_argument("-o", "--out", required=True, help="output directory")
    return parser


ONE_OFF_HELP = ("run an adapter class that is not installed (importable from here or PYTHONPATH); "
                "repeatable; without --frameworks only these adapters run")


def register_one_off_adapters(targets: list[str]) -> list[str]:
    """Register each ``module:Class`` adapter for this process and the processes it starts.

    The current directory is put on the import path (as ``python -m`` would), the class is
    imported and checked, and its ``name`` is added to ``BNCONF_ADAPTERS`` so that suite
    processes find it too.  Returns the names, in order.
    """
    import importlib
    import os

    from adapters.base import Adapter
    from adapters.registry import ENVIRONMENT_VARIABLE, registered

    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    names, entries = [], []
    for target in targets:
        module_name, sep, class_name = target.partition(":")
        if not sep or not module_name or not class_name:
            raise UsageError(f"--adapter expects MODULE:CLASS, got {target!r}")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise UsageError(f"--adapter {target}: cannot import it ({type(error).__name__}: {error})") from None
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            raise UsageError(f"--adapter {target}: expected a subclass of adapters.base.Adapter, got {cls!r}")
        if not cls.name:
            raise UsageError(f"--adapter {target}: the class sets no `name`")
        names.append(cls.name)
        entries.append(f"{cls.name}={target}")
    os.environ[ENVIRONMENT_VARIABLE] = ",".join(filter(None, [*entries, os.environ.get(ENVIRONMENT_VARIABLE)]))
    registered.cache_clear()
    return names


def _check_frameworks(specs: list[str]) -> None:
    from adapters.registry import UnknownFrameworkError, validate_spec

    for spec in specs:
        try:
            validate_spec(spec)
        except UnknownFrameworkError as error:
            raise UsageError(str(error)) from None


def _check_ledger() -> None:
    """Load the ledger before any engine starts: a broken one is a one-line usage error, not an
    internal error in every engine's process."""
    from conformance.judging.ledger import LedgerError, default_ledger

    try:
        default_ledger()
    except LedgerError as error:
        raise UsageError(str(error)) from None


def cmd_explain(args: argparse.Namespace) -> int:
    from adapters.registry import FrameworkUnavailableError, UnknownFrameworkError, get_adapter
    from datamodel.limits import CaseLimits, LimitSettingError

    from .explain import explain, explain_engines, render_side_by_side, render_text

    try:
        problem = CaseLimits.from_environment().size_problem((2, *args.input_shape))
    except LimitSettingError as error:
        raise UsageError(str(error)) from None
    if problem:  # the engines build (and some allocate) an input of this shape
        raise UsageError(f"--input-shape: {problem}")
    if args.framework and args.frameworks:
        raise UsageError("give one engine (explain ENGINE) or several (--frameworks a,b), not both")
    if not args.framework:
        from adapters.registry import all_specs, registered

        specs = args.frameworks or [s for s in all_specs(list(registered())) if ":" not in s]
        _check_frameworks(specs)
        result = explain_engines(specs, args.input_shape, args.layout)
        print(jsoncodec.dumps(result, indent=2, ensure_ascii=False) if args.json else render_side_by_side(result))
        return EXIT_OK if any("unavailable" not in e for e in result["engines"]) else EXIT_NOTHING_CHECKED
    try:
        adapter = get_adapter(args.framework)
    except UnknownFrameworkError as error:
        raise UsageError(str(error)) from None
    except FrameworkUnavailableError as error:
        raise CommandFailed(str(error), EXIT_FOUND) from None
    try:
        info = explain(adapter, args.input_shape, args.layout)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(jsoncodec.dumps(info, indent=2, ensure_ascii=False) if args.json else render_text(info))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from datamodel.casefile import CaseFileError, load_case

    from .replay import default_frameworks, exit_code, render_table, replay, verdict_line

    try:
        case = load_case(args.case)
    except CaseFileError as error:
        raise UsageError(str(error)) from None
    if args.device:
        case = case.with_(device=args.device)
    _check_ledger()  # the ledger names each finding's kind
    one_off = register_one_off_adapters(args.adapter)
    frameworks = args.frameworks or one_off or default_frameworks(case)
    _check_frameworks(frameworks)
    rows = replay(case, frameworks)
    if args.json:
        print(jsoncodec.dumps({"case": args.case, "summary": verdict_line(rows), "exit_code": exit_code(rows),
                               "results": [row.to_dict() for row in rows]}, indent=2))
    else:
        print(render_table(rows))
        print(verdict_line(rows))
    return exit_code(rows)


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run_suite

    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    one_off = register_one_off_adapters(args.adapter)
    frameworks = args.frameworks or one_off or None
    if frameworks:
        _check_frameworks(frameworks)
    _check_ledger()
    return run_suite(frameworks=frameworks, jobs=args.jobs, device=args.device, profile=args.profile, out=args.out,
                     case_timeout=args.case_timeout, quick=args.quick)


def cmd_report(args: argparse.Namespace) -> int:
    from reports.render import ReportInputError, render_report

    try:
        summary = render_report(args.results, args.out)
    except ReportInputError as error:
        raise UsageError(str(error)) from None
    print(f"read {summary['records_read']} records from {len(args.results)} input(s); report: {summary['html']}")
    print(summary["text"].splitlines()[-1])
    found = summary["totals"]["unexpected"] or summary["ledger"]["not_reproduced"]
    return EXIT_FOUND if found else EXIT_OK


def cmd_matrix(args: argparse.Namespace) -> int:
    from .matrix import MATRIX_FILE, MatrixError, load_matrix, plan, run_matrix, select

    matrix_file = args.matrix_file or MATRIX_FILE
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    try:
        if args.list:
            decided = plan(select(load_matrix(matrix_file), args.cells))
            for cell, overlay in decided.runnable:
                extra = f" (installs {', '.join(overlay)} for this cell)" if overlay else ""
                print(f"{cell.name:32} runs here{extra}")
            for cell, reason in decided.skipped:
                print(f"{cell.name:32} skipped: {reason}")
            return EXIT_OK
        return run_matrix(args.cells, args.jobs, args.profile, args.out, args.case_timeout, matrix_file=matrix_file)
    except MatrixError as error:
        raise UsageError(str(error)) from None


def cmd_observe(args: argparse.Namespace) -> int:
    from datamodel.casefile import CaseFileError, load_case

    from .porting import observe_here

    try:
        case = load_case(args.case)
    except CaseFileError as error:
        raise UsageError(str(error)) from None
    _check_frameworks(args.frameworks[:1])
    print(jsoncodec.dumps(observe_here(args.frameworks[0], case)))
    return EXIT_OK


def cmd_port(args: argparse.Namespace) -> int:
    from .porting import PortError, port, render_port

    _check_frameworks([args.source, args.destination])
    try:
        result = port(args.source, args.destination, args.input_shape, state_path=args.state, layout=args.layout,
                      to_layout=args.to_layout, data_path=args.data, eps=args.eps, momentum=args.momentum)  # fmt: skip
    except PortError as error:
        raise UsageError(str(error)) from None
    if args.json:
        print(jsoncodec.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render_port(result, snippet=args.snippet))
    return result["exit_code"]


#: The commands that start engines in this process: the frameworks' own log output goes to a log file.
ENGINE_COMMANDS = frozenset({"explain", "replay", "port", "observe"})

COMMANDS = {"run": cmd_run, "port": cmd_port, "observe": cmd_observe, "matrix": cmd_matrix, "explain": cmd_explain, "replay": cmd_replay, "report": cmd_report}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .frameworklog import FrameworkLog, captured

    logs: list[FrameworkLog] = []  # the one this command captured, read once fd 2 is back
    try:
        with captured(args.command) if args.command in ENGINE_COMMANDS else contextlib.nullcontext() as log:
            logs.extend([log] if log is not None else [])
            return COMMANDS[args.command](args)
    except UsageError as error:
        parser.exit(EXIT_USAGE, f"bnconf: error: {error}\n")
    except CommandFailed as error:
        print(f"bnconf: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        for note in filter(None, (log.note() for log in logs)):
            print(note, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
