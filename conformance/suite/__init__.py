"""The conformance properties, run with ``pytest conformance`` (see ``conformance.plugin.hooks``)."""
