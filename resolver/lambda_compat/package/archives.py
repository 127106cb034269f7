"""The zips written: compressed to temporary files in the output directory, and renamed into
place only when everything before succeeded."""

from __future__ import annotations

import os
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

from .. import errors
from ..build.builder import BuildConfig
from ..host.paths import default_cache_dir
from ..build.install import plan_wheel
from ..build.report import BuildReport
from ..host import outputs
from ..ui import UI
from .model import DEPLOYMENT_ZIP, LAYER_ZIP, State
from .reprozip import RawEntry, ZipSummary, timestamp, write_zip
from .staging import site_packages


def write_zips(state: State, task: Path, layer_root: Optional[Path], temps: List[Path],
               ui: UI, config: BuildConfig) -> Dict[str, ZipSummary]:
    """Compress the trees to temporary files (listed in ``temps``): zip name -> summary."""
    options = state.options
    output_dir = state.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    dt = timestamp()
    token = uuid.uuid4().hex[:12]
    plan = [(DEPLOYMENT_ZIP, task)] + ([(LAYER_ZIP, layer_root)] if layer_root else [])
    streams = wheel_streams(state.build, config) if options.reuse_wheel_streams else {}
    if layer_root is not None:
        prefix = site_packages(state.target) + "/"
        reuse = {LAYER_ZIP: {prefix + k: v for k, v in streams.items()}, DEPLOYMENT_ZIP: {}}
    else:
        reuse = {DEPLOYMENT_ZIP: streams}
    summaries: Dict[str, ZipSummary] = {}
    for name, tree in plan:
        tmp = output_dir / f".{name}.{token}.tmp"
        temps.append(tmp)
        ui.event("package-zip-start", name=name)
        summaries[name] = write_zip(tree, tmp, date_time=dt, level=options.compression_level,
                                    jobs=options.jobs, reuse=reuse.get(name))
    return summaries


def put_in_place(state: State, summaries: Dict[str, ZipSummary], temps: List[Path],
                 layer_root: Optional[Path], ui: UI) -> None:
    """Rename the temporary zips into place, remove a stale layer.zip, mark the directory."""
    output_dir = state.output_dir
    final = []
    for (name, s), tmp in zip(summaries.items(), temps):
        dest = output_dir / name
        os.replace(tmp, dest)
        final.append(replace(s, path=dest))
    temps.clear()
    stale = output_dir / LAYER_ZIP
    if not layer_root and stale.exists():
        stale.unlink()
        state.removed.append(str(stale))
        state.warnings.append(f"removed {stale} from an earlier --layer run: its "
                              f"dependencies are now inside {DEPLOYMENT_ZIP}.")
    outputs.write_marker(output_dir)
    state.zips = tuple(final)
    state.status = "written"
    ui.event("package-done", zips=[str(z.path) for z in final])


def wheel_streams(build: Optional[BuildReport], config: BuildConfig) -> Dict[str, RawEntry]:
    """Installed path -> deflated member of the wheel it came from (wheels in the cache)."""
    if build is None:
        return {}
    cas = (config.cache_dir or default_cache_dir()).absolute() / "files"
    out: Dict[str, RawEntry] = {}
    for d in build.distributions:
        if d.phase != "wheel" or not d.file or not d.sha256:
            continue
        wheel = cas / d.sha256[:2] / d.sha256 / d.file
        if not wheel.is_file():
            continue
        try:
            _dist_info, plan, _skipped = plan_wheel(wheel)
        except (OSError, errors.LambdaCompatError, zipfile.BadZipFile):
            continue
        for info, rel in plan:
            if info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 0x1:
                out[rel] = RawEntry(wheel, info.header_offset, info.compress_size,
                                    info.file_size, info.CRC)
    return out

