"""The pytest plugin (``hooks``) and the session that records every check (``session``)."""
