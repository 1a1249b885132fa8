"""A command whose optional dependencies are missing says so in one line, never a traceback.

The serving install (`bash scripts/bootstrap.sh`, `pip install .`, the image) has none of the `train`
or `dev` extras. Every command module imports its heavy dependencies inside the command, so the CLI
itself always loads; when a command then reaches a module an extra provides, `main()` (cli/main.py)
turns the ModuleNotFoundError into one line naming the extra and the set-up command.

Which extra provides a module is read from the package's own metadata (pyproject.toml's
`[project.optional-dependencies]`), so that list has one home.
"""

from __future__ import annotations

import importlib.util
import re
from importlib import metadata

FULL_SETUP = "bash scripts/bootstrap.sh train,dev"
DISTRIBUTION = "session-intent"
# Import names that differ from their distribution's name; every other module is its distribution.
DISTRIBUTION_OF_MODULE = {"sklearn": "scikit-learn", "yaml": "pyyaml", "onnxscript": "onnxscript",
                          "opentelemetry": "opentelemetry-sdk"}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9._-]+)[^;]*;\s*extra\s*==\s*['\"]([^'\"]+)['\"]")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras_by_distribution() -> dict[str, str]:
    """distribution name (normalised) -> the extra of this package that requires it."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return {}
    extras: dict[str, str] = {}
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match:
            extras.setdefault(_normalise(match.group(1)), match.group(2))
    return extras


# The repository's own packages that the image leaves out (the Dockerfile copies model/, service/ and cli/).
CHECKOUT_PACKAGES = ("bench", "loadtest")
CHECKOUT = "checkout"


def extra_providing(module: str | None) -> str | None:
    """The extra whose dependencies include the top-level `module`, `CHECKOUT` for a package of this
    repository that the install left out, or None if neither (a real bug)."""
    if not module:
        return None
    top = module.split(".")[0]
    if top in CHECKOUT_PACKAGES:
        return CHECKOUT
    distribution = DISTRIBUTION_OF_MODULE.get(top, top)
    return extras_by_distribution().get(_normalise(distribution))


def missing_extra_line(command: str, module: str, extra: str) -> str:
    """The one line a command prints when a module of an extra is not installed."""
    if extra == CHECKOUT:
        return (f"session-intent {command} needs the repository's {module}/ package, which this install leaves out: "
                f"run it from a clone after `{FULL_SETUP}`")
    return (f"session-intent {command} needs the `{extra}` extra ({module} is not installed): "
            f"run `{FULL_SETUP}`")


def require_modules(*modules: str) -> None:
    """Raise ModuleNotFoundError for the first of `modules` not installed, before any work starts.

    For a command that runs a dependency as a subprocess (`python -m schemathesis.cli`): its import
    would fail in the child, as a traceback, after servers were already started.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
