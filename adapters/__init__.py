"""Framework adapters behind one protocol; see ``adapters.base`` and ``adapters.registry``.

Importing this package imports no framework: each adapter module imports its framework
when the adapter is first used.
"""

from .base import Adapter, Capabilities, FrameworkConventions, Inventory, Outcome, Settings, Variable
from .registry import (
    FrameworkUnavailableError,
    UnknownFrameworkError,
    all_specs,
    availability,
    get_adapter,
    registered,
)

__all__ = [
    "Adapter",
    "Capabilities",
    "FrameworkConventions",
    "FrameworkUnavailableError",
    "Inventory",
    "Outcome",
    "Settings",
    "UnknownFrameworkError",
    "Variable",
    "all_specs",
    "availability",
    "get_adapter",
    "registered",
]
