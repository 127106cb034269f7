"""Running foreign-architecture binaries through qemu-user: detection and registration.

Two ways exist. With a *binfmt_misc* entry for the machine that has the ``F`` (fix binary)
flag, the kernel runs foreign ELF files through qemu by itself, in any root and any sandbox
(the interpreter was opened at registration time). Without one, qemu-user must be invoked
explicitly, and only a *static* qemu works inside a foreign root (``qemu-aarch64-static``).

:func:`register` writes the entry (root only) and is idempotent: an existing, enabled entry
is left as it is.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import errors
from ..targets.arch import MACHINE_ALIASES

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

#: ELF identification + e_machine for the machines lambda-compat targets (64-bit, LSB,
#: ET_EXEC/ET_DYN). The mask ignores the OS ABI byte and the low bit of e_type.
_MAGIC = {
    "aarch64": (r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
                r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"),
    "x86_64": (r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
               r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"),
}
#: Distribution files that carry a ready-made registration line (Debian/Ubuntu qemu-user-static).
_CONF_FILES = ("/usr/lib/binfmt.d/qemu-{m}.conf", "/etc/binfmt.d/qemu-{m}.conf",
               "/usr/lib/binfmt.d/qemu-{m}-static.conf")


@dataclass(frozen=True)
class BinfmtStatus:
    machine: str
    registered: bool
    enabled: bool
    interpreter: Optional[str]
    flags: str

    @property
    def usable_in_sandbox(self) -> bool:
        """True if foreign binaries run directly in any root (enabled, with the F flag)."""
        return self.registered and self.enabled and "F" in self.flags


def host_machine() -> str:
    """This machine as ``platform.machine()`` says it on Linux (macOS says arm64)."""
    machine = platform.machine()
    return MACHINE_ALIASES.get(machine, machine)


def entry_name(machine: str) -> str:
    return f"qemu-{machine}"


def status(machine: str) -> BinfmtStatus:
    """What the kernel currently does with ``machine`` binaries."""
    path = BINFMT_DIR / entry_name(machine)
    try:
        text = path.read_text()
    except OSError:
        return BinfmtStatus(machine, False, False, None, "")
    enabled = text.startswith("enabled")
    interpreter = None
    flags = ""
    for line in text.splitlines():
        if line.startswith("interpreter "):
            interpreter = line.split(" ", 1)[1].strip()
        elif line.startswith("flags:"):
            flags = line.split(":", 1)[1].strip()
    return BinfmtStatus(machine, True, enabled, interpreter, flags)


def static_qemu(machine: str) -> Optional[str]:
    """A statically linked qemu-user for ``machine`` (usable inside a foreign root), or None."""
    for name in (f"qemu-{machine}-static",):
        found = shutil.which(name)
        if found:
            return found
    for candidate in (f"/usr/bin/qemu-{machine}-static", f"/usr/libexec/qemu-binfmt/{machine}-binfmt-P"):
        if os.path.exists(candidate) and not candidate.endswith("-P"):
            return candidate
    return None


def can_run(machine: str) -> bool:
    """Whether ``machine`` binaries can run here at all (natively, via binfmt or qemu)."""
    if machine == host_machine():
        return True
    return status(machine).usable_in_sandbox or static_qemu(machine) is not None


def _registration_line(machine: str) -> str:
    for pattern in _CONF_FILES:
        conf = Path(pattern.format(m=machine))
        if conf.is_file():
            for line in conf.read_text().splitlines():
                line = line.strip()
                if line.startswith(":"):
                    interpreter = line.split(":")[6]
                    if os.path.exists(interpreter):
                        # Make sure the kernel opens it now, so it works inside any root.
                        fields = line.split(":")
                        if "F" not in fields[7]:
                            fields[7] += "F"
                        return ":".join(fields)
    qemu = static_qemu(machine)
    if qemu is None or machine not in _MAGIC:
        raise errors.EnvironmentProblem(
            f"No qemu-user for {machine} is installed, so {machine} binaries cannot run here.",
            hint="Install it: apt-get install qemu-user-static (Debian/Ubuntu), "
                 "dnf install qemu-user-static (Fedora).")
    magic, mask = _MAGIC[machine]
    return f":{entry_name(machine)}:M::{magic}:{mask}:{qemu}:F"


def register(machine: str = "aarch64") -> BinfmtStatus:
    """Register qemu-user for ``machine`` with binfmt_misc (``F`` flag), if not done yet.

    Needs root (it may mount binfmt_misc and writes to its ``register`` file). Idempotent: an
    enabled entry is kept. Raises EnvironmentProblem saying what is missing.
    """
    if machine == host_machine():
        return BinfmtStatus(machine, True, True, None, "native")
    current = status(machine)
    if current.registered and current.enabled:
        return current
    if os.geteuid() != 0:
        raise errors.EnvironmentProblem(
            f"Registering qemu-user for {machine} binaries needs root.",
            hint="Run as root: python -m lambda_compat.cli.standin binfmt  (or: "
                 f"/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-{machine}.conf).")
    register_file = BINFMT_DIR / "register"
    if not register_file.exists():
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not register_file.exists():
            raise errors.EnvironmentProblem(
                f"binfmt_misc is not mounted at {BINFMT_DIR} and mounting it failed: "
                f"{proc.stderr.strip() or 'no register file'}.",
                hint="The kernel needs CONFIG_BINFMT_MISC; in a container, run on the host: "
                     "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc")
    if current.registered and not current.enabled:
        (BINFMT_DIR / entry_name(machine)).write_text("1")
        return status(machine)
    line = _registration_line(machine)
    try:
        register_file.write_text(line)
    except OSError as e:
        if status(machine).registered:  # registered concurrently by another process
            return status(machine)
        raise errors.EnvironmentProblem(f"Registering {line.split(':')[6]} for {machine} failed: {e}",
                                        hint="Check dmesg; the kernel may refuse the F flag "
                                             "inside a user namespace.") from e
    return status(machine)
