"""Dynamic proof: import a bundle's modules in the target's interpreter, the way Lambda would.

Each backend runs :mod:`lambda_compat.prove._payload.importprobe` in a fresh interpreter of the target's
Python version with the bundle read-only at ``/var/task``, the layers merged (in order, later
wins) at ``/opt``, ``sys.path`` in the runtime's order and the runtime's environment (both from
the target's :class:`~lambda_compat.registry.runtimes.RuntimeFacts`). The probe forks one child per
module, so a module that crashes the interpreter cannot hide the others' results.

Backends, strongest first:

``container`` (proof ``image``)
    docker or podman running the runtime's image (``public.ecr.aws/lambda/python:X.Y-ARCH``
    by default, overridable, e.g. with a stand-in image from :mod:`lambda_compat.prove.standin`).
``rootfs`` (proof ``rootfs``)
    an unpacked image root (``docker export``), or a stand-in root, run with bwrap (else
    chroot as root, else proot), through qemu-user for a foreign architecture.
``host`` (proof ``host``)
    a local interpreter of the exact version and architecture, isolated (``-I -S``, no host
    site-packages, a temporary HOME) and, when bwrap works, confined to a read-only view of the
    host with the bundle at ``/var/task``.

The environment is the image's (``facts.env``) plus neutral values for the variables the Lambda
service defines for every function (region, function name, memory; never credentials), so that
code reading them at import time behaves as it would on Lambda.

Modules: :mod:`.results` (what a run reports, the ``Backend`` protocol), :mod:`.base` (what every
backend shares), :mod:`.host`, :mod:`.rootfs`, :mod:`.container` (one backend each),
:mod:`.hostlibs` (the libraries the host backend shows) and :mod:`.selection`
(:func:`~lambda_compat.prove.backends.selection.select_backend`: which backend proves a target
here).
"""
