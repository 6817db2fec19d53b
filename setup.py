"""The packages of the wheel, found: mlplab and the hydra_plugins namespace with every
subpackage (a new study under mlplab/analysis/studies/ is one), and conf/ as mlplab.conf
(pyproject.toml maps it); the rest of the build is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

FOUND = find_namespace_packages(
    include=["mlplab", "mlplab.*", "hydra_plugins", "hydra_plugins.*"], exclude=["*.__pycache__"]
)
setup(packages=[*FOUND, "mlplab.conf"])
