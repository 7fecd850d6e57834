"""Judging: the tolerance model, element-wise comparison, one check, the known-discrepancy ledger."""
