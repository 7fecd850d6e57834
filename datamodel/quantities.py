"""The protocol's phases and the quantities each one observes (see ``reference.simulate``)."""

from __future__ import annotations

PHASE_QUANTITIES: dict[str, tuple[str, ...]] = {
    "inference": ("y_eval",),
    "training": ("y_train", "running_mean", "running_var", "y_eval_after"),
    "gradients": ("dx", "dgamma", "dbeta"),
}
PHASES = tuple(PHASE_QUANTITIES)
QUANTITIES = tuple(name for names in PHASE_QUANTITIES.values() for name in names)
