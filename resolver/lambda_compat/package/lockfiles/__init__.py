"""Lock files in, a hash-pinned requirements file for one Lambda target out.

Supported inputs: ``Pipfile.lock`` (pipenv), ``poetry.lock`` (Poetry 1.x lock-version 1.x,
1.5+ lock-version 2.0, 2.x lock-version 2.1), ``uv.lock`` and ``pylock.toml`` /
``pylock.<name>.toml`` (PEP 751). Only what a default install of the project gets is kept:

* Pipfile.lock: the ``default`` section (``develop`` and custom categories left out);
* poetry.lock: the ``main`` group (from ``groups`` in 2.1 locks; older locks record no groups,
  so the graph is walked from the main dependencies in the ``pyproject.toml`` beside the lock);
* uv.lock: the project's ``dependencies`` walked from the project itself; ``dev-dependencies``
  (every dependency group) and extras are not followed;
* pylock.toml: every package whose ``marker`` holds with ``dependency_groups`` = the file's
  ``default-groups`` and no ``extras``, as PEP 751 says for a default install.

Markers are evaluated for the target (its own PEP 508 environment, never the host's), per edge
with the parent's active extras, the way pip would evaluate them. Every selected package is
written pinned (``name==version``), with every hash the lock records for that version (so the
builder can choose any of its files for the target), and with the lock's package-level marker
where the format has one (Pipfile.lock, pylock.toml, poetry.lock 2.1); the builder evaluates
it again for the target. Lines for packages found by walking the graph (uv.lock, older
poetry.lock) carry no marker: the walk already decided, and a ``# via`` comment says why.

Index URLs recorded in a lock are not copied into the requirements file: the files come from
the indexes the command is given (-i/--extra-index-url/pip configuration), and the hashes make
sure they are the locked files. A lock naming another index produces a warning saying so.
"""
