"""The data contracts every other package speaks: cases, case files, quantities, verdicts, records.

This is the lowest layer above the reference: ``adapters``, ``conformance`` and ``reports``
import it, and it imports nothing of theirs (``import-linter`` contracts in ``pyproject.toml``
enforce that).  Importing it imports no framework.
"""
