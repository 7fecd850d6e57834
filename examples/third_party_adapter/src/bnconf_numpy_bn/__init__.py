"""A hand-written NumPy batch norm (``layer.py``) and its bn-conformance adapter (``adapter.py``)."""
