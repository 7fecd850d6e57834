"""The committed JSON Schema of a record line (docs/record-schema.json) matches the models.

Readers outside Python (a dashboard, ``jq`` scripts, another language) validate records
against the committed file, so it must never lag the models in ``datamodel.records``.
Regenerate it with ``python -m datamodel.records --schema > docs/record-schema.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from datamodel.records import KINDS, RECORD_SCHEMA_VERSION, record_json_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "record-schema.json"
REGENERATE = "python -m datamodel.records --schema > docs/record-schema.json"


def test_committed_schema_is_up_to_date_with_the_models():
    committed = COMMITTED.read_text(encoding="utf-8")
    assert json.loads(committed) == record_json_schema(), f"docs/record-schema.json is out of date: run `{REGENERATE}`"
    assert committed == schema_text(), f"docs/record-schema.json is formatted differently: run `{REGENERATE}`"


def test_schema_command_prints_the_schema():
    result = subprocess.run([sys.executable, "-m", "datamodel.records", "--schema"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=True)  # fmt: skip
    assert result.stdout == schema_text()


def test_schema_names_every_kind_and_the_version():
    schema = record_json_schema()
    assert sorted(schema["discriminator"]["mapping"]) == sorted(KINDS)
    assert f"schema version {RECORD_SCHEMA_VERSION}" in schema["title"]
    result = schema["$defs"]["ResultRecord"]["properties"]
    assert result["schema_version"]["const"] == RECORD_SCHEMA_VERSION
    assert {"type": "number"} in result["ratio"]["anyOf"]  # a number, or "inf"/"-inf"/"nan" as text
    assert {"enum": ["nan", "inf", "-inf"]} in result["ratio"]["anyOf"]
