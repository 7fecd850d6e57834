"""The conformance suite: cases, tolerance model, comparison, properties, pytest plugin, CLI.

Importing this package imports no framework; adapters import theirs when used.
"""
