"""The ``lambda-compat`` command: the only part that prints (besides the probe payloads)."""
