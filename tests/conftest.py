from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "resolver"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambda_compat.build.builder import BuildConfig  # noqa: E402
from lambda_compat.resolve.engine import PipOptions  # noqa: E402

INDEX = ROOT / "fixtures" / "index"


@pytest.fixture(autouse=True)
def _no_user_pip_config(monkeypatch):
    # The machine's pip.conf adds indexes and find-links; offline tests must not see them.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for key in list(os.environ):
        if key.startswith("PIP_") and key != "PIP_CONFIG_FILE":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lc-cache")


def fixture_config(cache: Path, simple: str = "simple", **kw) -> BuildConfig:
    """Offline: the fixture index, and (unless a test says otherwise) local build
    environments only: a target root needs its build dependencies from PyPI and minutes to
    make; the target-root and container kinds have their own slow/network tests."""
    pip = PipOptions(index_url=(INDEX / simple).as_uri(), isolated=True, retries=0, timeout=5)
    kw.setdefault("build_env", "local")
    return BuildConfig(cache_dir=cache, pip=pip, **kw)


@pytest.fixture
def config(shared_cache):
    return fixture_config(shared_cache)


def write_reqs(tmp_path: Path, text: str, name: str = "requirements.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def cache_sharing_roots(cache: Path) -> Path:
    """``cache``, a fresh lambda-compat cache whose build roots and toolchains (minutes to
    make, unchanged by a build) are those of the default cache: made once per machine, not
    once per test; built wheels, logs and memories stay the test's own."""
    from lambda_compat.host.paths import default_cache_dir
    shared = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for sub in ("roots", "toolchains"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
        if not (cache / sub).exists():
            (cache / sub).symlink_to(shared / sub, target_is_directory=True)
    return cache
