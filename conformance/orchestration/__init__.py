"""Orchestration: the ``bnconf`` command line, supervised framework processes, replay, explain, matrix."""
