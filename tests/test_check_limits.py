"""`check` on hostile inputs: one extraction budget across the bundle and all layers, the
layer count validated before anything is unpacked, and ELF objects the loader refuses."""

from __future__ import annotations

import ctypes
import platform
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from lambda_compat.verify import zips

from lambda_compat.cli import main as cli
from lambda_compat.verify.elf import read_elf

ROOT = Path(__file__).resolve().parent.parent
GOOD_SO = ROOT / "fixtures" / "elf" / "_oldglibc.cpython-311-x86_64-linux-gnu.so"
MB = 1024 * 1024


def bomb(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * size)
    return path


def run(capsys, *argv):
    code = cli.main(["check", *map(str, argv)])
    return code, capsys.readouterr().err


def test_one_extraction_budget_for_the_bundle_and_all_layers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zips, "MAX_EXTRACT_BYTES", 10 * MB)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    b = bomb(tmp_path / "bomb.zip", 6 * MB)  # each alone is under the limit
    extracted = []
    real = zips.extract_zip

    def counting(zip_path, dest, workspace=None):
        result = real(zip_path, dest, workspace)
        extracted.append(sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()))
        return result

    monkeypatch.setattr(zips, "extract_zip", counting)
    code, err = run(capsys, b, "--layer", b, "--layer", b, "--runtime", "python3.12",
                    "--arch", "x86_64", "--backend", "static")
    assert code == 2, err
    assert "after 6 MB from the archives before it" in err and "all its layers" in err
    assert extracted == [6 * MB]            # the second archive was refused, the third unread
    assert list((tmp_path / "tmp").iterdir()) == []  # and the workspace is gone


def test_layer_count_is_validated_before_unpacking(tmp_path, monkeypatch, capsys):
    layer = bomb(tmp_path / "layer.zip", 1024)
    monkeypatch.setattr(zips, "extract_zip", lambda *a, **k: pytest.fail("unpacked"))
    code, err = run(capsys, tmp_path, *(["--layer", layer] * 7), "--runtime", "python3.12",
                    "--arch", "x86_64", "--backend", "static")
    assert code == 2
    assert "7 layers given" in err and "at most 5" in err


def _phdrs(data: bytearray):
    """(offset of the program header table, entry size, count) of a 64-bit little ELF."""
    phoff, = struct.unpack_from("<Q", data, 0x20)
    entsize, count = struct.unpack_from("<HH", data, 0x36)
    return phoff, entsize, count


def garbage_phdrs(src: Path, dest: Path) -> Path:
    data = bytearray(src.read_bytes())
    phoff, entsize, count = _phdrs(data)
    data[phoff:phoff + entsize * count] = b"\xa5" * (entsize * count)
    dest.write_bytes(bytes(data))
    return dest


def load_outside_file(src: Path, dest: Path) -> Path:
    data = bytearray(src.read_bytes())
    phoff, entsize, count = _phdrs(data)
    for i in range(count):
        at = phoff + i * entsize
        if struct.unpack_from("<I", data, at)[0] == 1:  # PT_LOAD: move it past the end
            struct.pack_into("<Q", data, at + 8, len(data) + 4096 * 16)
            struct.pack_into("<Q", data, at + 16, len(data) + 4096 * 16)
            break
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize("damage,words", [(garbage_phdrs, "no loadable segment"),
                                          (load_outside_file, "outside the file")])
def test_elf_the_loader_refuses_is_not_loadable(tmp_path, capsys, damage, words):
    task = tmp_path / "task"
    (task / "pkg").mkdir(parents=True)
    (task / "pkg" / "__init__.py").write_text("")
    name = GOOD_SO.name.replace("_oldglibc", "_ext")
    shutil.copy(GOOD_SO, task / "pkg" / name)
    assert read_elf(task / "pkg" / name).load_problem is None
    code, err = run(capsys, task, "--runtime", "python3.11", "--arch", "x86_64",
                    "--backend", "static", "--format", "json")
    assert code == 0, err  # the intact object passes
    bad = damage(GOOD_SO, task / "pkg" / name)
    if platform.machine() == "x86_64":  # the premise: the real loader refuses it
        with pytest.raises(OSError):
            ctypes.CDLL(str(bad))
    assert words in read_elf(bad).load_problem
    code, out = cli.main(["check", str(task), "--runtime", "python3.11", "--arch", "x86_64",
                          "--backend", "static", "--format", "json"]), capsys.readouterr().out
    assert code == 1
    import json
    findings = [f for t in json.loads(out)["targets"] for f in t["findings"]]
    hit = [f for f in findings if f["code"] == "not-loadable"]
    assert hit and hit[0]["severity"] == "error" and words in hit[0]["message"]
