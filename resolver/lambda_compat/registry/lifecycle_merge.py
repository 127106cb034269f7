"""Re-read AWS's Lambda runtime table and propose lifecycle changes to ``registry/runtimes.yaml``.

AWS moves deprecation and block dates (python3.11's moved a year), and ``check`` picks its
default targets from them (every runtime whose functions can still be updated). The weekly
refresh-runtimes workflow downloads the runtime table page
(``docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html``) and runs::

    python -m lambda_compat.cli.lifecycle_merge --date YYYY-MM-DD --runtimes registry/runtimes.yaml PAGE.html

Every table row whose identifier is a ``python3.X`` runtime gives its deprecation, block
function create and block function update dates (``Jun 30, 2027``, ``June 30, 2027`` or
``2027-06-30``; anything else, e.g. "Not scheduled", is no date). For each runtime of the
registry found in the page, the three dates are set (both architectures), ``lifecycle.read``
becomes the date, and the group cites the AWS-table source (created once, its text naming the
date). A registry runtime missing from the page is reported, not changed. Comments and layout
of the file are kept (ruamel.yaml round trip); the result is validated with the registry
loader before it replaces the file.
"""

from __future__ import annotations

import datetime
import html.parser
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .. import errors

URL = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html"
SOURCE_PREFIX = "AWS Lambda runtime table"
_KEYS = ("deprecation", "block_function_create", "block_function_update")
_HEADERS = {"deprecation": ("deprecation",), "block_function_create": ("block function create",
                                                                       "block create"),
            "block_function_update": ("block function update", "block update")}
_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%Y-%m-%d", "%b %d %Y", "%B %d %Y")


@dataclass(frozen=True)
class LifecycleRow:
    runtime: str
    dates: Tuple[Optional[datetime.date], ...]   # in _KEYS order


class _Tables(html.parser.HTMLParser):
    """Every table of a page as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: List[List[List[str]]] = []
        self._row: Optional[List[str]] = None
        self._cell: Optional[List[str]] = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_date(text: str) -> Optional[datetime.date]:
    cleaned = re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip().rstrip("*").strip()
    for fmt in _FORMATS:
        try:
            return datetime.datetime.strptime(cleaned, fmt).date()
        except ValueError:
            continue
    return None


def parse_runtime_table(page: str) -> Dict[str, LifecycleRow]:
    """runtime -> its dates, from every table of ``page`` with the lifecycle columns."""
    parser = _Tables()
    parser.feed(page)
    out: Dict[str, LifecycleRow] = {}
    for table in parser.tables:
        header = [c.lower() for c in table[0]] if table else []
        cols: Dict[str, int] = {}
        for key, names in _HEADERS.items():
            for i, h in enumerate(header):
                if any(n in h for n in names):
                    cols[key] = i
                    break
        if len(cols) != len(_KEYS):
            continue
        for row in table[1:]:
            runtime = next((c for c in row if re.fullmatch(r"python3\.\d+", c)), None)
            if runtime is None:
                continue
            dates = tuple(parse_date(row[cols[k]]) if cols[k] < len(row) else None
                          for k in _KEYS)
            out[runtime] = LifecycleRow(runtime, dates)
    return out


def _source_key(doc: Any, date: datetime.date) -> str:
    from .probe_merge import set_source
    text = (f"{SOURCE_PREFIX} ({URL}) as downloaded by the refresh-runtimes workflow on "
            f"{date.isoformat()}: deprecation, block function create and block function "
            f"update dates per runtime")
    return set_source(doc, SOURCE_PREFIX, text)


def merge_text(text: str, rows: Dict[str, LifecycleRow], date: datetime.date
               ) -> Tuple[str, List[str]]:
    """The registry text with the page's dates merged, and what changed."""
    from .probe_merge import _yaml
    y = _yaml()
    doc = y.load(text)
    changes: List[str] = []
    if not rows:
        return text, ["the page has no python runtime table: lifecycle left as it was"]
    key = _source_key(doc, date)
    missing = set()
    for entry in doc["targets"]:
        runtime = str(entry["runtime"])
        row = rows.get(runtime)
        if row is None:
            missing.add(runtime)
            continue
        lc = entry["lifecycle"]
        for name, value in zip(_KEYS, row.dates):
            new = value.isoformat() if value else None
            if lc.get(name) != new:
                changes.append(f"{runtime}/{entry['arch']}: lifecycle.{name}: "
                               f"{lc.get(name)!r} -> {new!r}")
                lc[name] = new
            for mark in ("inferred", "derived", "unverified"):
                seq = lc.get(mark)
                if seq is not None and name in seq:
                    seq.remove(name)
                    if not seq:
                        del lc[mark]
        lc["read"] = date.isoformat()
        if key not in lc["src"]:
            lc["src"].append(key)
    for runtime in sorted(missing):
        changes.append(f"{runtime}: not in the page's table; its lifecycle dates were left as "
                       f"they were (check the page by hand)")
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue(), changes


def merge_file(runtimes: Path, page: Path, date: datetime.date) -> List[str]:
    try:
        text = Path(runtimes).read_text(encoding="utf-8")
        html_text = Path(page).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise errors.BadInput(f"cannot read {exc.filename}: {exc.strerror}.") from None
    rows = parse_runtime_table(html_text)
    if not rows:
        raise errors.BadInput(f"{page}: no table with python runtimes and their deprecation and "
                              f"block dates.", hint=f"Is it the page at {URL}? AWS may have "
                                                    f"changed its layout.")
    new, changes = merge_text(text, rows, date)
    from .probe_merge import write_validated
    write_validated(Path(runtimes), new)   # validated (dates in order ...) before it replaces
    return changes
