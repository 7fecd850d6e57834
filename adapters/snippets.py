"""Pieces shared by the adapters' standalone reproduction snippets.

A snippet reproduces one case with nothing but NumPy and the framework: the case's arrays
are embedded (as literals when small, as base64 float64 bytes when large), so it runs
without bn-conformance installed.  Every snippet runs the protocol (inference, the training
steps then inference, gradients, each from the case's initial state), collects what it
observes in a dict ``quantities`` and ends with ``footer()``: one JSON line of every
quantity, so a test can check that the snippet reproduces the adapter's own outcome.
"""

from __future__ import annotations

import base64

import numpy as np

from datamodel.case import Case, CaseData

_LITERAL_LIMIT = 256


def array_source(array: np.ndarray | None) -> str:
    """A Python expression that rebuilds ``array`` exactly (float64), or ``None``."""
    if array is None:
        return "None"
    array = np.asarray(array, dtype=np.float64)
    if array.size <= _LITERAL_LIMIT and np.all(np.isfinite(array)):
        return f"np.array({array.tolist()!r})"
    encoded = base64.b64encode(array.astype("<f8").tobytes()).decode()
    return f"np.frombuffer(base64.b64decode({encoded!r}), dtype='<f8').reshape({tuple(array.shape)!r})"


def data_block(data: CaseData) -> str:
    """Assignments of every array of a case: batches, gamma, beta, running stats, dy."""
    lines = [
        f"batches = [{', '.join(array_source(b) for b in data.batches)}]",
        f"gamma = {array_source(data.gamma)}",
        f"beta = {array_source(data.beta)}",
        f"running_mean = {array_source(data.running_mean)}",
        f"running_var = {array_source(data.running_var)}",
        f"dy = {array_source(data.dy)}",
    ]
    return "\n".join(lines)


def header(case: Case, framework: str) -> str:
    return (
        f"# Reproduces a bn-conformance case on {framework}: shape {list(case.shape)}, channel axis "
        f"{case.channel_axis}, {case.dtype}.\n# Arrays are the case's data, already rounded to {case.dtype}.\n"
        "import base64\nimport json\n\nimport numpy as np\n\nquantities = {}\n"
    )


def footer() -> str:
    """The snippet's last line of output: ``quantities`` as one JSON object of float64 lists."""
    return (
        "\n# One machine-readable line: every quantity observed, as float64 (nested) lists.\n"
        "print(json.dumps({name: np.asarray(value, dtype=np.float64).tolist() for name, value in quantities.items()}))\n"
    )


#: The protocol in a snippet for a Keras-style layer (Keras 3 and tf-keras): inference, the
#: training steps with the running statistics after each, inference after training, each
#: phase from the case's state (a ``reset()`` the snippet defines), read back with
#: ``numpy``/``tensor`` helpers it defines; indented for a ``with`` block.
KERAS_LAYER_PROTOCOL = """    reset()
    quantities["y_eval"] = numpy(layer(tensor(batches[0]), training=False))
    reset()
    steps = []
    for batch in batches:
        steps.append((numpy(layer(tensor(batch), training=True)), numpy(layer.moving_mean), numpy(layer.moving_variance)))
    quantities["y_train"], quantities["running_mean"], quantities["running_var"] = (list(s) for s in zip(*steps))
    quantities["y_eval_after"] = numpy(layer(tensor(batches[0]), training=False))
    reset()
"""
