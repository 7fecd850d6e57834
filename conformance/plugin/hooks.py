"""The pytest plugin of the conformance suite: options, report header, fixtures.

Registered through the ``pytest11`` entry point, so ``pytest conformance`` picks it up.
Options (group ``bnconf``): ``--bnconf-frameworks``, ``--bnconf-device``,
``--bnconf-profile`` and ``--bnconf-results``.  A test that asks for the ``adapter``
fixture runs once per framework spec and device; a framework that is not installed, or a
device that is not present, is skipped with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.generation import profiles

_SESSION_KEY = pytest.StashKey["ConformanceSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bnconf", "batch-norm conformance")
    group.addoption(
        "--bnconf-frameworks", default=None, metavar="SPECS",
        help="comma-separated framework specs, NAME or NAME:VARIANT (default: every registered adapter and variant)",
    )  # fmt: skip
    group.addoption(
        "--bnconf-device", default="cpu", choices=("cpu", "gpu", "all"),
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


def pytest_configure(config: pytest.Config) -> None:
    from .session import ConformanceSession

    if config.getoption("--bnconf-profile"):
        profiles.load(config.getoption("--bnconf-profile"))
    elif not config.getoption("--hypothesis-profile", None):
        profiles.load(profiles.DEFAULT_PROFILE)
    results = config.getoption("--bnconf-results")
    details = {
        "hypothesis_profile": _profile(config),
        "hypothesis_seed": config.getoption("--hypothesis-seed", None),
        "device": config.getoption("--bnconf-device"),
        "frameworks": config.getoption("--bnconf-frameworks"),
    }
    config.stash[_SESSION_KEY] = ConformanceSession(Path(results) if results else None, run_details=details)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.close()


def framework_specs(config: pytest.Config) -> list[str]:
    from adapters.registry import all_specs

    option = config.getoption("--bnconf-frameworks")
    return [s.strip() for s in option.split(",") if s.strip()] if option else all_specs()


def devices(config: pytest.Config) -> list[str]:
    option = config.getoption("--bnconf-device")
    return ["cpu", "gpu"] if option == "all" else [option]


def pytest_report_header(config: pytest.Config) -> list[str]:
    from adapters.registry import get_adapter

    lines = [f"bnconf: profile {_profile(config)}, device {config.getoption('--bnconf-device')}"]
    for spec in framework_specs(config):
        try:
            adapter = get_adapter(spec)
            lines.append(f"bnconf adapter {spec}: {adapter.version()} (devices here: {', '.join(sorted(adapter.available_devices()))})")
        except Exception as error:
            lines.append(f"bnconf adapter {spec}: unavailable ({error})")
    return lines if config.getoption("--bnconf-frameworks") or _collects_suite(config) else []


def _collects_suite(config: pytest.Config) -> bool:
    here = (Path(__file__).parent.parent / "suite").resolve()
    return any(Path(str(arg).split("::")[0]).resolve().is_relative_to(here) for arg in config.args)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only tests of the suite (those asking for ``adapter``) run per framework and device.
    if "adapter" in metafunc.fixturenames:
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


_BLOB = re.compile(r"@reproduce_failure\('[^']+', b'[^']+'\)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    session = item.config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.current_test = item.nodeid
        if "adapter" in getattr(item, "fixturenames", ()):  # a suite test: its whole run counts as in flight
            session.mark_inflight(item.callspec.params.get("bnconf_framework"), "setup", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed suite test, record its minimal counterexample with hypothesis' blob."""
    report = yield
    session = item.config.stash.get(_SESSION_KEY, None)
    if session is not None and report.when == "call" and report.failed and "adapter" in item.fixturenames:
        text = report.longreprtext or ""
        match = _BLOB.search(text)
        if session.record_counterexample(item.nodeid, match.group(0) if match else None) is None and (
            "ConformanceFailure" not in text
        ):
            framework = getattr(item, "callspec", None) and item.callspec.params.get("bnconf_framework")
            last_line = text.strip().splitlines()[-1] if text.strip() else "no message"
            session.record_harness_failure(item.nodeid, framework, f"the suite test failed without a finding: {last_line[:500]}")
    return report


@pytest.fixture(scope="session")
def max_elements(request: pytest.FixtureRequest) -> int:
    """The element bound of one generated batch under the active profile."""
    return profiles.max_elements(_profile(request.config))


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest):
    """The session that runs checks and writes records (see ``conformance.plugin.session``)."""
    return request.config.stash[_SESSION_KEY]
