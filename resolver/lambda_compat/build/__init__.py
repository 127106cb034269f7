"""Building a bundle for one target: the python_pip phases, sdist builds, install, the build report."""
