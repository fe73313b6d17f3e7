"""Packaging beyond what pyproject.toml can say: the shipped organisms.

The repository keeps them in the top-level ``data/`` folder; wheels carry that folder as
the package ``lenskit._data`` (``lenskit/_data/organism``, ``lenskit/_data/organisms/...``),
so that a plain ``pip install .`` can load ``"organism"``. Editable installs and the
source tree read ``data/`` itself (see ``lenskit.models.loading.organism_path``).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["lenskit", "lenskit.*"]), "lenskit._data"],
    package_dir={"lenskit._data": "data"},
    package_data={"lenskit._data": ["organism/*", "organisms/*/*"]},
)
