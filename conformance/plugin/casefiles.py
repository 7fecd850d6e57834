"""Case files of findings: each finding is saved so that it replays with one command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datamodel.case import Case
from datamodel.casefile import case_to_json, dump_case
from datamodel.records import replay_command


def case_id(case: Case) -> str:
    """A short stable id of a case, from its case-file content."""
    return hashlib.sha256(json.dumps(case_to_json(case), sort_keys=True).encode()).hexdigest()[:12]


def cases_dir(results: Path | None) -> Path | None:
    """OUT/cases for OUT/records/NAME.jsonl (as ``bnconf run`` writes), else beside the file."""
    if results is None:
        return None
    parent = results.parent
    return (parent.parent if parent.name == "records" else parent) / "cases"


class CaseStore:
    """Writes case files under ``directory`` (nothing when results stay in memory)."""

    def __init__(self, directory: Path | None):
        self.directory = directory

    def save(self, case: Case, framework: str) -> tuple[str | None, str]:
        """Write a finding's case file, naming only ``framework``; return its path and replay command."""
        case = case.with_(frameworks=(framework,))
        name = f"{framework.replace(':', '-')}-{case_id(case)}.json"
        if self.directory is None:
            return None, replay_command(name, framework, case.device)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        dump_case(case, path)
        return str(path), replay_command(path, framework, case.device)
