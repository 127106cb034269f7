"""The registry data: one line-aware YAML loader and schema check; runtimes, packages, probe merging."""
