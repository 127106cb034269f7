"""pytest configuration of the compat matrix suite (``pytest compat_tests -n 2``).

Options::

    --runtime python3.12     only these runtimes (repeatable; default: every runtime)
    --arch arm64             only these architectures (repeatable; default: both)
    --backend auto           dynamic proof: auto (strongest available: rootfs stand-in, then
                             host; container too with --run-containers), container, rootfs,
                             host, static (no import)
    --run-containers         allow the container backend (podman/docker); cells get the
                             ``container`` marker
    --image IMAGE            container image: ``pinned`` (default: the runtime's image at the
                             digest in registry/runtimes.yaml), ``standin`` (a stand-in image
                             imported from the stand-in root), or an image reference
    --rootfs DIR             root directory for the rootfs backend (default: stand-in roots
                             built and cached by lambda-compat)
    --require-proof LEVEL    fail every cell not proven by an import at LEVEL or stronger
                             (host, rootfs, image; the nightly asks for image): unproven,
                             not-refutable and expected-missing cells fail too
    --compat-cache DIR       lambda-compat cache shared by all workers (downloads, builds,
                             stand-in roots); default: $LAMBDA_COMPAT_CACHE_DIR or
                             ~/.cache/lambda-compat
    --compat-json FILE       write the cells as JSON (the nightly merge job reads these)
    --compat-html FILE       write the grid as an HTML page

The grid is printed at the end of the run; with GITHUB_STEP_SUMMARY set it is appended there
as Markdown. Results travel from xdist workers to the controller in each test report's
``user_properties``, so the grid is complete with ``-n``.

Marker filter: the project's pytest addopts deselect ``network``/``slow`` tests, which is
every compat cell. When the run names only compat_tests paths and gives no ``-m`` of its
own, this conftest replaces that default with ``not container``, or with no filter at all
under ``--run-containers`` / ``--backend container``; an explicit ``-m`` (e.g.
``-m compat_fast``) is respected.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "resolver") not in sys.path:
    sys.path.insert(0, str(ROOT / "resolver"))

from compat_tests import grid  # noqa: E402
from compat_tests.cases import CaseError, HostFacts, all_cases  # noqa: E402
from compat_tests.runner import BackendChoice, Cell  # noqa: E402

_PROPERTY = "lambda_compat_cell"
_BACKENDS = ("auto", "container", "rootfs", "host", "static")


def pytest_addoption(parser):
    group = parser.getgroup("lambda-compat compat suite")
    group.addoption("--runtime", action="append", default=[], dest="compat_runtimes",
                    help="only this Lambda runtime (repeatable), e.g. python3.12")
    group.addoption("--arch", action="append", default=[], dest="compat_arches",
                    help="only this architecture (repeatable): x86_64, arm64")
    group.addoption("--backend", default="auto", choices=_BACKENDS, dest="compat_backend",
                    help="dynamic proof backend (default auto: strongest available)")
    group.addoption("--run-containers", action="store_true", dest="compat_containers",
                    help="allow the container backend (podman/docker)")
    group.addoption("--image", default="pinned", dest="compat_image",
                    help="container image: pinned (registry digest), standin, or a reference")
    group.addoption("--rootfs", default=None, dest="compat_rootfs",
                    help="root directory for the rootfs backend (default: stand-in roots)")
    group.addoption("--engine", default=None, dest="compat_engine",
                    help="container engine (podman or docker)")
    group.addoption("--require-proof", default=None, choices=("host", "rootfs", "image"),
                    dest="compat_require_proof",
                    help="fail every cell not proven by an import at this level or stronger "
                         "(unproven, not-refutable and missing cells too; nightly: image)")
    group.addoption("--compat-cache", default=None, dest="compat_cache",
                    help="lambda-compat cache dir shared by the workers")
    group.addoption("--compat-json", default=None, dest="compat_json",
                    help="write the cells' results as JSON here")
    group.addoption("--compat-html", default=None, dest="compat_html",
                    help="write the grid as an HTML page here")


def _only_compat_paths(config) -> bool:
    """True when every path given on the command line lies inside compat_tests/."""
    here = Path(__file__).resolve().parent
    # pytest's positional arguments (testpaths or the invocation directory when none): not
    # the raw command line, where an option's value (--compat-json results.json, a file
    # that exists from the last run) looked like a path outside compat_tests/ and left the
    # default selection on: a second run of the matrix ran one test and passed
    paths = [str(a).split("::")[0] for a in config.args]
    existing = [Path(config.invocation_params.dir, p).resolve() for p in paths
                if Path(config.invocation_params.dir, p).exists()]
    if not existing:  # no path: pytest collects the invocation directory (unless it is the root)
        existing = [Path(config.invocation_params.dir).resolve()]
    return all(p == here or here in p.parents for p in existing)


def _explicit_markexpr(config) -> bool:
    args = list(config.invocation_params.args) + os.environ.get("PYTEST_ADDOPTS", "").split()
    return any(a == "-m" or (a.startswith("-m") and len(a) > 2 and not a.startswith("--"))
               for a in args)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "compat_fast: the compat slice README's test command and CI run: one cell "
                   "per hard branch (markers where they are true, arm64 imports through qemu, "
                   "a registry proof, a missing library refuted in a root, a wheel one "
                   "manylinux level above the ceiling)")
    if _only_compat_paths(config) and not _explicit_markexpr(config):
        containers = config.getoption("compat_containers") or \
            config.getoption("compat_backend") == "container"
        config.option.markexpr = "" if containers else "not container"
    cache = config.getoption("compat_cache")
    if cache:
        os.environ["LAMBDA_COMPAT_CACHE_DIR"] = str(Path(cache).resolve())
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(_GridCollector(config), "lambda-compat-grid")


# --------------------------------------------------------------------------- collection

def _targets(config):
    from lambda_compat.errors import LambdaCompatError
    from lambda_compat.registry.runtimes import load_runtimes
    from lambda_compat.targets.target import Target
    registry = load_runtimes()
    try:
        runtimes = [registry.get(r, "x86_64").runtime
                    for r in config.getoption("compat_runtimes")]
        arches = [registry.get(registry.runtimes[-1], a).arch
                  for a in config.getoption("compat_arches")]
    except LambdaCompatError as exc:
        raise pytest.UsageError(f"--runtime/--arch: {exc}") from None
    out = []
    for facts in registry.targets:
        if runtimes and facts.runtime not in runtimes:
            continue
        if arches and facts.arch not in arches:
            continue
        out.append(Target.from_facts(facts))
    return out


def pytest_generate_tests(metafunc):
    if "compat_cell" not in metafunc.fixturenames:
        return
    config = metafunc.config
    try:
        cases = all_cases()
    except CaseError as exc:
        raise pytest.UsageError(f"compat case error: {exc}") from None
    containers = config.getoption("compat_containers") and \
        config.getoption("compat_backend") in ("auto", "container")
    params = []
    targets = _targets(config)
    # Architecture-major order: xdist hands neighbouring cells to different workers, and the
    # two architectures of one case and runtime share a build lock (runner.build), so they
    # are kept far apart in the schedule.
    order = [(case, target) for arch in ("x86_64", "arm64") for case in cases
             for target in targets if target.arch == arch]
    for case, target in order:
        if not case.applies_to(target.name):
            continue
        marks = [pytest.mark.network]
        if case.slow:
            marks.append(pytest.mark.slow)
        if case.is_fast(target.name):
            marks.append(pytest.mark.compat_fast)
        if containers or config.getoption("compat_backend") == "container":
            marks.append(pytest.mark.container)
        params.append(pytest.param((case, target), marks=marks,
                                   id=f"{case.name}-{target.runtime}-{target.arch}"))
    metafunc.parametrize("compat_cell", params)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def compat_cache_dir(pytestconfig) -> Path:
    from lambda_compat.host.paths import default_cache_dir
    path = Path(pytestconfig.getoption("compat_cache") or default_cache_dir()).resolve()
    (path / "locks").mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def compat_host() -> HostFacts:
    return HostFacts.here()


@pytest.fixture(scope="session")
def backend_choice(pytestconfig) -> BackendChoice:
    requested = pytestconfig.getoption("compat_backend")
    containers = pytestconfig.getoption("compat_containers") or requested == "container"
    return BackendChoice(requested=requested, run_containers=containers,
                         image=pytestconfig.getoption("compat_image"),
                         rootfs=pytestconfig.getoption("compat_rootfs"),
                         engine=pytestconfig.getoption("compat_engine"),
                         require_proof=pytestconfig.getoption("compat_require_proof"))


@pytest.fixture
def record_cell(request, record_property):
    """Call with a Cell: it reaches the summary (also from xdist workers)."""
    def record(cell: Cell) -> None:
        record_property(_PROPERTY, cell.to_json())
    return record


# --------------------------------------------------------------------------- summary

def _cell_from_report(report):
    for name, value in getattr(report, "user_properties", ()):
        if name == _PROPERTY:
            return json.loads(value)
    return None


class _GridCollector:
    """Gathers the cells from test reports (the controller sees every worker's reports)."""

    def __init__(self, config) -> None:
        self.config = config
        self.cells: dict = {}

    def pytest_runtest_logreport(self, report):
        cell = _cell_from_report(report)
        if cell is None or report.when != "call":
            return
        cell["outcome"] = ("passed" if report.passed else
                           "skipped" if report.skipped else "failed")
        self.cells[report.nodeid] = cell

    def pytest_terminal_summary(self, terminalreporter):
        config = self.config
        cells = list(self.cells.values())
        if not cells:
            return
        terminalreporter.section("lambda-compat compat grid (runtime x arch x case)")
        terminalreporter.write_line(grid.render_text(cells))
        meta = {"date": datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec="seconds"),
                "backend": config.getoption("compat_backend"),
                "runtimes": config.getoption("compat_runtimes"),
                "arches": config.getoption("compat_arches"),
                "github_job": os.environ.get("GITHUB_JOB")}
        out_json = config.getoption("compat_json")
        if out_json:
            grid.write_atomic(Path(out_json), json.dumps(grid.results_document(cells, meta),
                                                         indent=1, sort_keys=True))
            terminalreporter.write_line(f"compat results: {out_json}")
        out_html = config.getoption("compat_html")
        if out_html:
            grid.write_atomic(Path(out_html), grid.render_html(cells))
            terminalreporter.write_line(f"compat grid (HTML): {out_html}")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(grid.render_markdown(cells))
