"""The runtime's system libraries in a Debian stand-in root: which Debian packages carry them.

A copy root takes the host's copies of the libraries the runtime's facts list as present
(:mod:`.copyroot`); a Debian root is a minimal base with ``python3``, which lacks most of them
(libmagic, libcurl, glib, krb5 ... that Amazon Linux 2023's Python images have). Importing a
package that loads one of those in such a root fails where Lambda would succeed, so the
proof would contradict a right prediction. Debian roots therefore get, for every soname of
the facts, the Debian package that ships that very soname in the suite, when there is one.

:data:`SONAME_PACKAGES` lists, per soname, the Debian package names that ship it, newest
naming first (the 64-bit time_t transition renamed many: ``libmagic1t64`` in trixie and sid,
``libmagic1`` before). The suite's own package index (``Packages.xz`` on the mirror) says which
exist; debootstrap then installs them with their dependencies. A soname with no package in
the suite (AL2's ``libssl.so.10``, ``libffi.so.6``; a library Debian moved to a new soname)
stays out and is recorded as such in the root's record.
"""

from __future__ import annotations

import lzma
import urllib.request
from typing import Dict, FrozenSet, Iterable, List, Tuple

from ... import errors

#: soname -> Debian packages shipping it (first existing one wins).
SONAME_PACKAGES: Dict[str, Tuple[str, ...]] = {
    "libacl.so.1": ("libacl1",),
    "libarchive.so.13": ("libarchive13t64", "libarchive13"),
    "libassuan.so.0": ("libassuan0",),
    "libattr.so.1": ("libattr1",),
    "libaudit.so.1": ("libaudit1",),
    "libblkid.so.1": ("libblkid1",),
    "libbz2.so.1": ("libbz2-1.0",),
    "libcap.so.2": ("libcap2",),
    "libcrypto.so.3": ("libssl3t64", "libssl3"),
    "libcurl.so.4": ("libcurl4t64", "libcurl4"),
    "libexpat.so.1": ("libexpat1",),
    "libffi.so.7": ("libffi7",),
    "libffi.so.8": ("libffi8",),
    "libform.so.6": ("libncurses6",),
    "libgio-2.0.so.0": ("libglib2.0-0t64", "libglib2.0-0"),
    "libgirepository-1.0.so.1": ("libgirepository-1.0-1",),
    "libglib-2.0.so.0": ("libglib2.0-0t64", "libglib2.0-0"),
    "libgmodule-2.0.so.0": ("libglib2.0-0t64", "libglib2.0-0"),
    "libgmp.so.10": ("libgmp10",),
    "libgmpxx.so.4": ("libgmpxx4ldbl",),
    "libgobject-2.0.so.0": ("libglib2.0-0t64", "libglib2.0-0"),
    "libgpgme.so.11": ("libgpgme11t64", "libgpgme11"),
    "libgssapi_krb5.so.2": ("libgssapi-krb5-2",),
    "libgssrpc.so.4": ("libgssrpc4t64", "libgssrpc4"),
    "libjson-c.so.5": ("libjson-c5",),
    "libk5crypto.so.3": ("libk5crypto3",),
    "libkeyutils.so.1": ("libkeyutils1",),
    "libkrad.so.0": ("libkrad0",),
    "libkrb5.so.3": ("libkrb5-3",),
    "libkrb5support.so.0": ("libkrb5support0",),
    "liblzma.so.5": ("liblzma5",),
    "libmagic.so.1": ("libmagic1t64", "libmagic1"),
    "libmenu.so.6": ("libncurses6",),
    "libncurses.so.6": ("libncurses6",),
    "libncursesw.so.6": ("libncursesw6",),
    "libnghttp2.so.14": ("libnghttp2-14",),
    "libnspr4.so": ("libnspr4",),
    "libnssutil3.so": ("libnss3",),
    "libfreebl3.so": ("libnss3",),
    "libfreeblpriv3.so": ("libnss3",),
    "libpanel.so.6": ("libncurses6",),
    "libpcre2-8.so.0": ("libpcre2-8-0",),
    "libplc4.so": ("libnspr4",),
    "libplds4.so": ("libnspr4",),
    "libpopt.so.0": ("libpopt0",),
    "libsepol.so.1": ("libsepol1",),
    "libsqlite3.so.0": ("libsqlite3-0",),
    "libssl.so.3": ("libssl3t64", "libssl3"),
    "libstdc++.so.6": ("libstdc++6",),
    "libgcc_s.so.1": ("libgcc-s1",),
    "libtinfo.so.6": ("libtinfo6",),
    "libuuid.so.1": ("libuuid1",),
    "libverto.so.1": ("libverto1t64", "libverto1"),
    "libxml2.so.2": ("libxml2",),
    "libz.so.1": ("zlib1g",),
    "libformw.so.6": ("libncursesw6",),
    "libmenuw.so.6": ("libncursesw6",),
    "libpanelw.so.6": ("libncursesw6",),
    "liblz4.so.1": ("liblz4-1",),
    "libmount.so.1": ("libmount1",),
    "libselinux.so.1": ("libselinux1",),
    "libzstd.so.1": ("libzstd1",),
    "libcrypt.so.1": ("libcrypt1",),
    "libcom_err.so.2": ("libcom-err2",),
    "libp11-kit.so.0": ("libp11-kit0",),
    "libtasn1.so.6": ("libtasn1-6",),
    "libtic.so.6": ("libtinfo6", "libncurses6"),
}
#: glibc's own libraries: the base system's libc6 has them
for _glibc in ("libc.so.6", "libm.so.6", "libmvec.so.1", "libpthread.so.0", "libdl.so.2",
               "librt.so.1", "libutil.so.1", "libresolv.so.2", "libanl.so.1",
               "libnss_files.so.2", "libnss_dns.so.2", "libnss_compat.so.2", "libnsl.so.1",
               "libthread_db.so.1", "libBrokenLocale.so.1", "ld-linux-x86-64.so.2",
               "ld-linux-aarch64.so.1"):
    SONAME_PACKAGES[_glibc] = ("libc6",)


def suite_packages(mirror: str, suite: str, deb_arch: str,
                   component: str = "main") -> FrozenSet[str]:
    """The binary package names of ``suite`` for ``deb_arch`` (its ``Packages.xz``)."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/{component}/binary-{deb_arch}/Packages.xz"
    try:
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 (http mirror)
            data = lzma.decompress(response.read())
    except (OSError, lzma.LZMAError) as exc:
        raise errors.EnvironmentProblem(
            f"Could not read the package index {url}: {exc}",
            hint="Check that the Debian mirror is reachable (LAMBDA_COMPAT_DEBIAN_MIRROR "
                 "overrides it).") from exc
    return parse_package_names(data.decode("utf-8", errors="replace").splitlines())


def parse_package_names(lines: Iterable[str]) -> FrozenSet[str]:
    """The ``Package:`` names of a Debian ``Packages`` index."""
    return frozenset(line.split(":", 1)[1].strip() for line in lines
                     if line.startswith("Package:"))


def packages_for(sonames: Iterable[str], available: FrozenSet[str]
                 ) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(packages to install, sonames no package of the suite carries), both sorted.

    A soname is served by the first of its :data:`SONAME_PACKAGES` the suite has; one
    unknown to the table, or whose packages the suite lacks, is in the second list.
    """
    packages: List[str] = []
    unavailable: List[str] = []
    for soname in sorted(set(sonames)):
        found = next((p for p in SONAME_PACKAGES.get(soname, ()) if p in available), None)
        if found is None:
            unavailable.append(soname)
        elif found not in packages:
            packages.append(found)
    return tuple(sorted(packages)), tuple(unavailable)
