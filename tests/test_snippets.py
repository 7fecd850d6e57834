"""Each adapter's reproduction snippet reproduces the adapter's own outcome.

A snippet is standalone code in the framework's own API (``Adapter.snippet``) that ends by
printing one JSON line of every quantity.  For each built-in adapter, a driver process
(started with the adapter's declared ``process_environment``, since Keras fixes its backend
per process) runs ``adapter.run`` on a couple of small cases and prints the outcomes and the
snippets; the snippets then run together in one fresh interpreter where importing
bn-conformance fails, and their numbers must equal the adapter's to a few units in the last
place of the case's dtype.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adapters.registry import BUILTIN_ADAPTERS, adapter_class

ROOT = Path(__file__).parent.parent
#: A snippet must not need bn-conformance: in its interpreter these imports fail.
GUARD = "import sys\nfor _name in ('adapters', 'conformance', 'datamodel', 'reference', 'reports'):\n    sys.modules[_name] = None\n"
#: Relative and absolute tolerance per dtype: a few units in the last place (a jitted run may
#: fuse operations differently from the snippet's eager one).
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 4e-3, "bfloat16": 2e-2}

DRIVER = """
import json, sys
from adapters.registry import availability, get_adapter
from datamodel.case import Case, Generator

spec = sys.argv[1]
reason = availability(spec)
if reason is not None:
    print(json.dumps({"unavailable": reason}))
    raise SystemExit(0)
adapter = get_adapter(spec)
axis = adapter.conventions.default_channel_axis
shape = (3, 2, 4) if axis == 1 else (3, 4, 2)
cases = [
    Case(shape=shape, channel_axis=axis, dtype="float32", x=Generator(seed=3, loc=1.0, scale=2.0), eps=1e-3, decay=0.8,
         training_steps=2, gamma=[0.5, 2.0], beta=[0.1, -0.3], running_mean=[0.2, -1.0], running_var=[1.5, 0.5]),
    Case(shape=shape, channel_axis=axis, dtype="float64", x=Generator(seed=4), affine=False, training_steps=2),  # defaults
]
result = []
for case in cases:
    outcomes = adapter.run(case)
    result.append({"dtype": case.dtype, "snippet": adapter.snippet(case),
                   "outcomes": {k: (o.value.tolist() if o.value is not None else o.error) for k, o in outcomes.items()
                                if o.unsupported is None}})
print(json.dumps(result))
"""


def _run(code: str, env: dict[str, str], cwd: Path, *args: str) -> str:
    completed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                               timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    return completed.stdout


@pytest.mark.parametrize("spec", sorted(BUILTIN_ADAPTERS))
def test_snippet_reproduces_the_adapters_outcome(spec, tmp_path):
    environment = {**os.environ, **adapter_class(spec).process_environment}
    driver = _run(DRIVER, environment, ROOT, spec).strip().splitlines()[-1]
    cases = json.loads(driver)
    if isinstance(cases, dict):
        pytest.skip(cases["unavailable"])
    # One interpreter for all of an adapter's snippets, outside the project: each prints its JSON line last.
    snippets = GUARD + "\n".join(case["snippet"] for case in cases)
    lines = _run(snippets, dict(environment), tmp_path).strip().splitlines()
    printed = [json.loads(line) for line in lines if line.startswith("{")][-len(cases) :]
    assert len(printed) == len(cases), lines[-5:]
    for case, observed in zip(cases, printed, strict=True):
        assert set(observed) == set(case["outcomes"]), f"{spec} {case['dtype']}: quantities differ"
        tolerance = TOLERANCE[case["dtype"]]
        for name, value in case["outcomes"].items():
            assert not isinstance(value, str), f"{spec}: {name} failed in the adapter: {value}"
            np.testing.assert_allclose(np.asarray(observed[name], dtype=np.float64), np.asarray(value, dtype=np.float64),
                                       rtol=tolerance, atol=tolerance, err_msg=f"{spec} {case['dtype']} {name}: snippet vs adapter")  # fmt: skip
