"""What a known finding *is*, and how much a user should care: the ledger's closed vocabularies.

Every ledger entry names one ``kind`` and one ``severity``; result records carry both for the
findings an entry explains (``known_kind``, ``known_severity``), so a report rendered from
records alone can group and sort findings without the ledger.

Kinds, in the order a reader meets them:

* ``convention``: documented, intended behaviour that the reference cannot express yet (an
  entry says why); a convention the reference *can* express is modelled, not ledgered;
* ``numerical``: a weakness on data inside the engine's domain (cancellation, overflow,
  half-precision accumulation); the entry says on which data;
* ``defect``: behaviour contrary to the engine's own documentation, or to every other engine
  with no documented reason; the entry links the upstream report or says "not yet reported";
* ``out_of_domain``: inputs no engine promises to handle; the entry names the bound.

Severities, most severe first (the order reports sort by), each what a user sees: see
``SEVERITIES``.
"""

from __future__ import annotations

FINDING_KINDS = ("convention", "numerical", "defect", "out_of_domain")

#: severity → what a user sees; most severe first.
SEVERITIES = {
    "nan_inf": "NaN or ±inf outputs where finite values are right",
    "wrong_values": "outputs or gradients wrong by a large factor of their tolerance",
    "wrong_statistics": "wrong running statistics (and with them inference after training)",
    "raises": "an error instead of a result",
    "accuracy_loss": "silently less accurate than the dtype allows",
    "cosmetic": "inventory, shape or count differences; the numbers agree",
}

#: What a ``defect`` entry without an upstream link says instead.
NOT_YET_REPORTED = "not yet reported"


def severity_rank(severity: str | None) -> int:
    """Sort key: 0 for the most severe; unknown or missing severities last."""
    order = list(SEVERITIES)
    return order.index(severity) if severity in order else len(order)
