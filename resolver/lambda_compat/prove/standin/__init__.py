"""Stand-in roots: Lambda-like root directories for when the real images are out of reach.

The public Lambda images cannot always be pulled (CI without registry access, air-gapped
machines). A stand-in root has the runtime's Python version and architecture, Lambda's
directory layout (``/var/lang``, ``/var/runtime``, ``/var/task``, ``/opt``) and, like Lambda,
no ``libpq``. It is *not* the Lambda image: its glibc is newer and its library set differs.
So a stand-in import proves less than an import in the real image; results built on one say
"stand-in" (see :attr:`StandinInfo.describe`).

Three recipes:

``copy`` (x86_64, or whatever the host is)
    the local CPython of the right version copied into ``/var/lang`` (interpreter, stdlib
    without tests/idle/tkinter, an empty site-packages, libpython), plus the shared libraries
    ``ldd`` lists for it and its extension modules and the host's copies of the libraries the
    runtime's facts list as present, in ``/usr/lib64`` - minus every library the facts list
    as absent (libpq...). Seconds.
``unpack`` (arm64, or a version without a local interpreter)
    the Debian suite whose python3 has the version (bullseye 3.9, bookworm 3.11, trixie 3.13,
    sid 3.14): ``debootstrap --foreign --variant=minbase --include=python3`` (download, verify,
    extract), every downloaded package extracted with ``dpkg-deb -x`` but not configured, the
    stdlib byte-compiled by a local interpreter of the version if there is one. No qemu needed
    to build; about a minute, mostly download. Needs root and the Debian mirror.
``debootstrap``
    the same suite with a full debootstrap: packages configured by their maintainer scripts,
    run through qemu-user for arm64. The most faithful Debian root, and many minutes.

Debian roots get Lambda's layout: ``/var/lang/bin/python3.X`` and ``/var/lang/lib/python3.X``
link to Debian's, so ``sys.path`` is the runtime's, verbatim.

Roots are cached under ``<cache>/roots/<name>`` and built in a temporary directory that is
renamed into place when complete, under a file lock, so parallel test workers share one build.
Every root carries ``/lambda-compat-standin.json``
(:class:`~lambda_compat.prove.standin.info.StandinInfo`).

Modules: :mod:`.info` (the record, the plan, Lambda's layout), :mod:`.roots` (plan, find, build and
cache a root), :mod:`.copyroot` and :mod:`.debian` (the recipes), :mod:`.images` (a root as a
container image). ``python -m lambda_compat.cli.standin`` builds roots, images and the binfmt
registration by hand.
"""
