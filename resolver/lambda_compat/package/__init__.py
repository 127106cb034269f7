"""Packaging a project: discovery, lock files, staging, reproducible zips."""
