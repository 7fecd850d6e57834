"""The pytest plugin of the conformance suite: options, report header, fixtures.

Registered through the ``pytest11`` entry point, so ``pytest conformance/suite`` picks it up.
Options (group ``bnconf``): ``--bnconf-frameworks``, ``--bnconf-device``,
``--bnconf-profile`` and ``--bnconf-results``.  A suite test that asks for the ``adapter``
fixture runs once per framework spec and device; a framework that is not installed, or a
device that is not present, is skipped with the reason.

The plugin is loaded in *every* pytest run of an environment where bn-conformance is
installed, so it minds its own business: unless the conformance suite is among the paths
being collected or a ``--bnconf-*`` option is given, it loads no hypothesis profile, opens
no session, imports no adapter or framework, prints no header line and parametrizes no test
(``is_active``).  Its options and fixtures are merely registered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.generation import profiles

_SESSION_KEY = pytest.StashKey["ConformanceSession"]()
_ACTIVE_KEY = pytest.StashKey[bool]()
SUITE_DIR = (Path(__file__).parent.parent / "suite").resolve()
_OPTIONS = ("--bnconf-frameworks", "--bnconf-device", "--bnconf-profile", "--bnconf-results")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bnconf", "batch-norm conformance")
    group.addoption(
        "--bnconf-frameworks", default=None, metavar="SPECS",
        help="comma-separated framework specs, NAME or NAME:VARIANT (default: every registered adapter and variant)",
    )  # fmt: skip
    group.addoption(
        "--bnconf-device", default=None, choices=("cpu", "gpu", "all"),
        help="device(s) to run on; a missing device is skipped with the reason (default: cpu)",
    )  # fmt: skip
    group.addoption(
        "--bnconf-profile", default=None, choices=profiles.PROFILES,
        help=f"hypothesis profile: dev, ci or nightly (default: {profiles.DEFAULT_PROFILE}, or --hypothesis-profile)",
    )  # fmt: skip
    group.addoption(
        "--bnconf-results", default=None, metavar="PATH",
        help="append one JSON-lines result record per check to PATH (default: keep in memory)",
    )  # fmt: skip


def _profile(config: pytest.Config) -> str:
    return config.getoption("--bnconf-profile") or config.getoption("--hypothesis-profile", None) or profiles.DEFAULT_PROFILE


def _device_option(config: pytest.Config) -> str:
    return config.getoption("--bnconf-device") or "cpu"


def _collected_paths(config: pytest.Config) -> list[Path]:
    """The filesystem paths this run collects (module names resolved under ``--pyargs``)."""
    import importlib.util

    paths = []
    for arg in config.args:
        target = str(arg).split("::")[0]
        if config.getoption("pyargs", False) and not Path(target).exists():
            try:
                spec = importlib.util.find_spec(target)
            except (ImportError, ValueError):
                spec = None
            if spec is not None and spec.origin:
                origin = Path(spec.origin)
                paths.append(origin.parent if origin.name == "__init__.py" else origin)
            continue
        paths.append(Path(config.invocation_params.dir, target))
    return [path.resolve() for path in paths]


def collects_suite(config: pytest.Config) -> bool:
    """Whether a collected path is the suite, lies inside it, or contains it."""
    return any(path.is_relative_to(SUITE_DIR) or SUITE_DIR.is_relative_to(path) for path in _collected_paths(config))


def is_active(config: pytest.Config) -> bool:
    """A conformance run: the suite is collected, or a ``--bnconf-*`` option was given."""
    active = config.stash.get(_ACTIVE_KEY, None)
    if active is None:
        explicit = any(config.getoption(option) is not None for option in _OPTIONS)
        active = config.stash[_ACTIVE_KEY] = explicit or collects_suite(config)
    return active


@pytest.hookimpl(tryfirst=True)  # before hypothesis' own plugin reads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    if not is_active(config):
        return
    from .session import ConformanceSession

    profiles.register()
    hypothesis_profile = config.getoption("--hypothesis-profile", None)
    if config.getoption("--bnconf-profile") or not hypothesis_profile:
        profiles.load(_profile(config))
    results = config.getoption("--bnconf-results")
    details = {
        "hypothesis_profile": _profile(config),
        "hypothesis_seed": config.getoption("--hypothesis-seed", None),
        "device": _device_option(config),
        "frameworks": config.getoption("--bnconf-frameworks"),
    }
    from conformance.judging.ledger import LedgerError

    try:
        config.stash[_SESSION_KEY] = ConformanceSession(Path(results) if results else None, run_details=details)
    except LedgerError as error:  # one line naming the file and entry, not an INTERNALERROR traceback
        raise pytest.UsageError(str(error)) from None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the run's completion marker; a process killed before this point leaves none,
    and its report says the run is partial.  Ctrl-C gets here too, marked interrupted."""
    conformance = session.config.stash.get(_SESSION_KEY, None)
    if conformance is not None:
        try:
            outcome = pytest.ExitCode(exitstatus).name.lower()
        except ValueError:
            outcome = f"exit status {exitstatus}"
        conformance.finish(int(exitstatus), outcome, interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.close()


def framework_specs(config: pytest.Config) -> list[str]:
    from adapters.registry import all_specs

    option = config.getoption("--bnconf-frameworks")
    return [s.strip() for s in option.split(",") if s.strip()] if option else all_specs()


def devices(config: pytest.Config) -> list[str]:
    option = _device_option(config)
    return ["cpu", "gpu"] if option == "all" else [option]


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not is_active(config):
        return []
    from adapters.registry import get_adapter

    lines = [f"bnconf: profile {_profile(config)}, device {_device_option(config)}"]
    for spec in framework_specs(config):
        try:
            adapter = get_adapter(spec)
            lines.append(f"bnconf adapter {spec}: {adapter.version()} (devices here: {', '.join(sorted(adapter.available_devices()))})")
        except Exception as error:
            lines.append(f"bnconf adapter {spec}: unavailable ({error})")
    return lines


def _in_suite(path: Path | str | None) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(SUITE_DIR)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only the suite's tests (those asking for ``adapter``) run per framework and device; a
    # test elsewhere with a fixture of the same name is none of this plugin's business.
    if "adapter" in metafunc.fixturenames and is_active(metafunc.config) and _in_suite(metafunc.definition.path):
        metafunc.parametrize("bnconf_framework", framework_specs(metafunc.config), scope="session")
        metafunc.parametrize("bnconf_device", devices(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def adapter(bnconf_framework: str, bnconf_device: str):
    """The adapter of the framework spec under test; skipped with the reason when it cannot run here."""
    framework, device = bnconf_framework, bnconf_device
    from adapters.registry import FrameworkUnavailableError, get_adapter

    try:
        instance = get_adapter(framework)
    except FrameworkUnavailableError as error:
        pytest.skip(str(error))
    if device not in instance.available_devices():
        pytest.skip(f"{framework}: device {device} is not available on this machine")
    if device not in instance.capabilities.devices:
        pytest.skip(f"{framework}: does not run on {device}")
    return instance


def _is_suite_test(item: pytest.Item) -> bool:
    """A test of the suite, run once per framework spec (it has the ``bnconf_framework`` parameter)."""
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "bnconf_framework" in callspec.params


_BLOB = re.compile(r"@reproduce_failure\('[^']+', b'[^']+'\)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    session = item.config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.current_test = item.nodeid
        if _is_suite_test(item):  # its whole run counts as in flight
            session.mark_inflight(item.callspec.params.get("bnconf_framework"), "setup", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed suite test, record its minimal counterexample with hypothesis' blob."""
    report = yield
    session = item.config.stash.get(_SESSION_KEY, None)
    interrupted = call.excinfo is not None and call.excinfo.errisinstance(KeyboardInterrupt)
    if session is not None and report.when == "call" and report.failed and _is_suite_test(item) and not interrupted:
        # (an interrupted test failed because of Ctrl-C, not because of the harness: the
        # run_end record already says the run was interrupted)
        text = report.longreprtext or ""
        match = _BLOB.search(text)
        if session.record_counterexample(item.nodeid, match.group(0) if match else None) is None and (
            "ConformanceFailure" not in text
        ):
            framework = item.callspec.params.get("bnconf_framework")
            last_line = text.strip().splitlines()[-1] if text.strip() else "no message"
            session.record_harness_failure(item.nodeid, framework, f"the suite test failed without a finding: {last_line[:500]}")
    return report


@pytest.fixture(scope="session")
def max_elements(request: pytest.FixtureRequest) -> int:
    """The element bound of one generated batch under the active profile."""
    return profiles.max_elements(_profile(request.config))


@pytest.fixture(scope="session")
def pooled_configurations(request: pytest.FixtureRequest) -> bool:
    """Whether the active profile takes compile configurations from the fixed pool (see ``profiles.pooled``)."""
    return profiles.pooled(_profile(request.config))


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest):
    """The session that runs checks and writes records (see ``conformance.plugin.session``)."""
    return request.config.stash[_SESSION_KEY]
