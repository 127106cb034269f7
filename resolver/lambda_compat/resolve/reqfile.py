"""Check a requirements file before pip sees it, so errors say file:line and how to fix.

pip remains the parser of record (it runs on the same file); this pass only rejects what pip
would reject less clearly, or what makes no sense for a Lambda bundle (editable installs).
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Set, Tuple

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import RequirementsFileError

_FILE_OPTIONS = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}
_VALUE_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                  "--trusted-host", "--only-binary", "--no-binary", "--use-feature",
                  "--config-settings", "-C", "--hash", "--global-option"}
_FLAG_OPTIONS = {"--no-index", "--pre", "--prefer-binary", "--require-hashes"}
_ALL = sorted(_VALUE_OPTIONS | _FLAG_OPTIONS | set(_FILE_OPTIONS) | {"-e", "--editable"})
_COMMENT = re.compile(r"(^|\s+)#.*$")


@dataclass(frozen=True)
class Line:
    path: Path
    number: int
    text: str


def logical_lines(path: Path) -> List[Line]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RequirementsFileError("file not found.", path=str(path),
                                    hint="Check the path; run from the project directory or "
                                         "pass the file with -r.") from None
    except IsADirectoryError:
        raise RequirementsFileError("is a directory, not a requirements file.", path=str(path),
                                    hint="Pass the requirements.txt inside it.") from None
    except OSError as exc:
        raise RequirementsFileError(f"cannot be read: {exc.strerror}.", path=str(path),
                                    hint="Check the file's permissions.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # utf-8-sig reports offsets after the BOM it stripped; count lines in the same bytes.
        body = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
        bad_line = body[: exc.start].count(b"\n") + 1
        raise RequirementsFileError("is not valid UTF-8.", path=str(path), line=bad_line,
                                    hint="Save the file as UTF-8.") from None
    out: List[Line] = []
    buf, start = "", None
    for number, line in enumerate(text.splitlines(), start=1):
        if start is None:
            start = number
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        buf += line
        stripped = _COMMENT.sub("", buf).strip()
        if stripped:
            out.append(Line(path, start, stripped))
        buf, start = "", None
    if buf.strip():
        out.append(Line(path, start or 1, _COMMENT.sub("", buf).strip()))
    return out


def _split_hashes(text: str) -> Tuple[str, List[str]]:
    """'name==1 --hash=sha256:.. --hash sha256:..' -> ('name==1', [options])."""
    idx = text.find(" --")
    if idx == -1:
        idx = text.find("\t--")
    if idx == -1:
        return text, []
    return text[:idx].strip(), shlex.split(text[idx:])


def validate(path: Path, _seen: Optional[Set[Path]] = None) -> int:
    """Validate ``path`` and the files it includes; returns the number of requirements."""
    seen = _seen if _seen is not None else set()
    path = path.resolve() if path.exists() else path
    if path in seen:
        return 0
    seen.add(path)
    count = 0
    for line in logical_lines(path):
        text = line.text
        if text.startswith("-"):
            try:
                parts = shlex.split(text)
            except ValueError as exc:
                raise RequirementsFileError(f"cannot parse option ({exc}).", path=str(path),
                                            line=line.number, text=text) from None
            opt, _, inline = parts[0].partition("=")
            value = inline or (parts[1] if len(parts) > 1 else "")
            if opt in ("-e", "--editable"):
                raise RequirementsFileError(
                    "editable requirements cannot go into a Lambda bundle.", path=str(path),
                    line=line.number, text=text,
                    hint="Use a plain path requirement (./mypackage) instead of -e.")
            if opt in _FILE_OPTIONS:
                if not value:
                    raise RequirementsFileError(f"{opt} needs a file name.", path=str(path),
                                                line=line.number, text=text)
                if "://" in value:
                    continue
                nested = (path.parent / value)
                if not nested.exists():
                    raise RequirementsFileError(
                        f"{opt} {value}: no such file (looked for {nested}).", path=str(path),
                        line=line.number, text=text,
                        hint="Paths in requirements files are relative to the file itself.")
                n = validate(nested, seen)
                count += n if _FILE_OPTIONS[opt] == "-r" else 0
                continue
            if opt in _VALUE_OPTIONS:
                if not value:
                    raise RequirementsFileError(f"{opt} needs a value.", path=str(path),
                                                line=line.number, text=text)
                continue
            if opt in _FLAG_OPTIONS:
                continue
            close = difflib.get_close_matches(opt, _ALL, n=1)
            raise RequirementsFileError(
                f"unknown option {opt}.", path=str(path), line=line.number, text=text,
                hint=(f"Did you mean {close[0]}? " if close else "")
                + "Options allowed in requirements files: " + ", ".join(_ALL) + ".")
        req_text, options = _split_hashes(text)
        for i, opt in enumerate(options):
            if opt.startswith("--") and opt.split("=")[0] not in ("--hash", "--config-settings",
                                                                  "--global-option"):
                raise RequirementsFileError(f"option {opt} is not allowed after a requirement.",
                                            path=str(path), line=line.number, text=text,
                                            hint="Only --hash may follow a requirement.")
            if opt.startswith("--hash"):
                # Both spellings pip accepts: --hash=sha256:... and --hash sha256:...
                if "=" in opt:
                    value = opt.split("=", 1)[1]
                else:
                    value = options[i + 1] if i + 1 < len(options) else ""
                    opt = f"{opt} {value}".rstrip()
                if ":" in value and not value.startswith("-"):
                    continue
                raise RequirementsFileError(
                    f"{opt}: a hash is written algorithm:hexdigest.", path=str(path),
                    line=line.number, text=text, hint="For example --hash=sha256:0123abcd…")
        if _looks_like_path_or_url(req_text):
            count += 1
            continue
        try:
            Requirement(req_text)
        except InvalidRequirement as exc:
            raise RequirementsFileError(
                f"invalid requirement ({str(exc).splitlines()[0]}).", path=str(path),
                line=line.number, text=text,
                hint="Write requirements as in PEP 508, e.g. 'requests==2.32.3' or "
                     "'orjson; platform_machine == \"aarch64\"'.") from None
        count += 1
    return count


def _looks_like_path_or_url(text: str) -> bool:
    head = text.split(";", 1)[0].strip()
    return (head.startswith((".", "/", "~", "file:")) or "://" in head
            or head.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2")))


def referenced_files(path: Path) -> List[Path]:
    """``path`` and every file it includes with -r/-c (validated on the way)."""
    seen: Set[Path] = set()
    validate(path, seen)
    return sorted(seen)


#: Options whose value is a path that is relative to the requirements file's directory.
_PATH_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-f",
                 "--find-links")


def without_projects(path: Path, projects: Set[str], dest: Path) -> Optional[Path]:
    """A copy of ``path`` at ``dest`` without the top-level lines that name ``projects``
    (canonical names), relative paths made absolute; None when no requirement is left.

    Lets the rest of a requirements file be judged for a target where some of its top-level
    requirements cannot be satisfied at all (pip stops at the first one it cannot satisfy).
    """
    from packaging.utils import canonicalize_name

    base = path.resolve().parent
    out: List[str] = []
    kept = 0
    for line in logical_lines(path):
        text = line.text
        if text.startswith("-"):
            opt, _, value = text.replace("=", " ", 1).partition(" ")
            value = value.strip()
            if opt in _PATH_OPTIONS and value and "://" not in value \
                    and not os.path.isabs(os.path.expanduser(value)):
                text = f"{opt} {base / value}"
            out.append(text)
            continue
        if _looks_like_path_or_url(text):
            head = text.split(";", 1)[0].strip()
            if head.startswith(".") and "://" not in head:
                text = str(base / head) + text[len(head):]
            out.append(text)
            kept += 1
            continue
        try:
            name: str = canonicalize_name(Requirement(text.split(" --", 1)[0]).name)
        except InvalidRequirement:
            name = ""
        if name in projects:
            continue
        out.append(text)
        kept += 1
    if not kept:
        return None
    dest.write_text("\n".join(out) + "\n", encoding="utf-8")
    return dest
