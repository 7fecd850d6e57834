"""Records of four made-up engines for the engine table (``reports.overview``), built by hand.

* ``eng-a``: conforms everywhere; declares its momentum as the new batch's weight (0.1), so
  decay 0.9, and feeds the running variance the unbiased estimate: against the majority;
* ``eng-b``: the majority's conventions; on ordinary float64 data a known defect (two
  findings, not yet reported upstream), a known numerical weakness on offset and tiny-spread
  data, and a defect with an upstream link that hits on NaN-producing data;
* ``eng-c``: the majority's conventions; one unexpected finding on ordinary float32 data, an
  out-of-domain and a convention finding, and a ledger entry scoped to a GPU the run lacks;
* ``eng-c:compiled``: a variant of ``eng-c`` without probes or ordinary checks.
"""

from __future__ import annotations

from pathlib import Path

from conformance.judging.compare import Comparison
from conformance.judging.ledger import Entry, Ledger
from datamodel.case import Case, Generator
from datamodel.findings import NOT_YET_REPORTED
from datamodel.records import Conditioning, RecordWriter, ledger_record, probe_record, result_record

UPSTREAM = "https://example.org/eng-b/issues/7"
NEEDS_GPU = "not replayed here: needs gpu"


def _case(dtype: str = "float32") -> Case:
    return Case(shape=(4, 2), channel_axis=1, dtype=dtype, x=Generator(seed=0))


def _result(engine: str, verdict: str = "pass", *, dtype: str = "float32", prop: str = "ordinary", quantity: str = "y_train",
            ratio: float = 0.1, data_class: str | None = None, known: str | None = None, kind: str | None = None,
            severity: str | None = None):  # fmt: skip
    conditioning = None if data_class is None else Conditioning(offset_ratio=50.0, constant_channels=0,
                                                                 one_value_per_channel=False, data_class=data_class)  # fmt: skip
    record = result_record(run_id="r1", prop=prop, framework=engine, framework_version="1.0", case=_case(dtype),
                           comparison=Comparison(quantity, verdict, max_abs_error=ratio, allowed=1.0, ratio=ratio),
                           conditioning=conditioning)  # fmt: skip
    return record.model_copy(update={"known": known, "known_kind": kind, "known_severity": severity,
                                     "replay": f"bnconf replay c.json --frameworks {engine}"})  # fmt: skip


def declared(*, new_batch: bool = False, unbiased: bool = False) -> dict[str, str]:
    """Declared conventions as the suite's probes write them (``test_conventions.declared_conventions``)."""
    return {
        "momentum": "momentum = 0.1 (weights the new batch)" if new_batch else "momentum = 0.99 (weights the old statistic)",
        "canonical decay": "0.9 (d = 1 − momentum)" if new_batch else "0.99 (d = momentum)",
        "ε default": "1e-05", "ε placement": "inside", "running-variance estimator": "unbiased" if unbiased else "biased",
        "normalization variance": "biased", "variance algorithm": "two_pass", "running average": "ema",
        "default channel axis": "1",
    }  # fmt: skip


def _probe(engine: str, conventions: dict[str, str]):
    return probe_record(run_id="r1", framework=engine, framework_version="1.0", case=_case("float64"),
                        convention="eps_placement", declared="inside", probed="inside", agrees=True, evidence={},
                        declared_conventions=conventions)  # fmt: skip


def overview_records() -> list:
    """The check records of the four engines (see the module docstring)."""
    defect = {"known": "eng-b-float64-in-float32", "kind": "defect", "severity": "accuracy_loss"}
    weakness = {"known": "eng-b-fast-variance-cancellation", "kind": "numerical", "severity": "wrong_values"}
    nan_defect = {"known": "eng-b-decay-nan", "kind": "defect", "severity": "nan_inf"}
    return [
        _probe("eng-a", declared(new_batch=True, unbiased=True)),
        *(_result("eng-a", dtype=dtype) for dtype in ("float64", "float16", "float32")),
        _result("eng-a", prop="training", data_class="well"),
        _probe("eng-b", declared()),
        _result("eng-b"), _result("eng-b", dtype="float64"),
        _result("eng-b", "discrepancy", dtype="float64", ratio=30.0, **defect),
        _result("eng-b", "discrepancy", dtype="float64", quantity="running_var", ratio=20.0, **defect),
        _result("eng-b", "discrepancy", prop="training", data_class="offset", ratio=300.0, **weakness),
        _result("eng-b", "discrepancy", prop="gradients", data_class="tiny_spread", quantity="dx", ratio=40.0, **weakness),
        _result("eng-b", "discrepancy", prop="training", data_class="heavy_tails", ratio=1e9, **nan_defect),
        _probe("eng-c", declared()),
        _result("eng-c"), _result("eng-c", "discrepancy", ratio=2.5),
        _result("eng-c", "discrepancy", prop="training", data_class="near_overflow", ratio=1e9,
                known="eng-c-momentum-one", kind="out_of_domain", severity="nan_inf"),
        _result("eng-c", "discrepancy", prop="training", data_class="outliers", ratio=5.0,
                known="eng-c-debiased-average", kind="convention", severity="cosmetic"),
        ledger_record(run_id="r1", framework="eng-c", framework_version="1.0", case=_case(), entry_id="eng-c-cudnn-variance",
                      reproduced=None, explained_quantities=[], message=NEEDS_GPU).model_copy(
            update={"known_kind": "numerical", "known_severity": "wrong_statistics"}),
        _result("eng-c:compiled", prop="execution", data_class="offset"),
    ]  # fmt: skip


def _entry(entry_id: str, kind: str, severity: str, **fields) -> Entry:
    return Entry(id=entry_id, reason=f"why {entry_id} happens", match={}, evidence={}, kind=kind, severity=severity, **fields)


#: The ledger that explains them, for the upstream links (``eng-b-decay-nan`` is reported upstream).
LEDGER = Ledger([
    _entry("eng-b-float64-in-float32", "defect", "accuracy_loss", upstream=NOT_YET_REPORTED),
    _entry("eng-b-fast-variance-cancellation", "numerical", "wrong_values", data="offset data"),
    _entry("eng-b-decay-nan", "defect", "nan_inf", upstream=UPSTREAM),
    _entry("eng-c-momentum-one", "out_of_domain", "nan_inf", bound="momentum in (0, 1)"),
    _entry("eng-c-debiased-average", "convention", "cosmetic", unmodelled="a debiased average"),
])  # fmt: skip


def write_overview_run(directory: Path) -> Path:
    """The records above as a run directory's ``records/engines.jsonl``."""
    with RecordWriter(directory / "records" / "engines.jsonl") as writer:
        for record in overview_records():
            writer.write(record)
    return directory
