"""The conformance harness, one subpackage per job:

* ``judging``: the tolerance model, element-wise comparison, one check, the ledger;
* ``generation``: hypothesis strategies and profiles (how cases are drawn);
* ``plugin``: the pytest plugin and the session that records checks;
* ``suite``: the property tests the plugin runs against every adapter;
* ``orchestration``: the ``bnconf`` CLI, one supervised process per framework, the matrix;
* ``data``: the ledger and the matrix file (data, not code).

Importing this package imports nothing; no subpackage imports a framework.
"""
