"""``lambda-compat check``: per target, will this import on Lambda, and how much is proved."""
