"""Where served models come from (docs/service.md "Models"): a repository of versions, as Triton lays one out.

    <SI_MODEL_REPOSITORY>/
        <name>/                 one model, e.g. taobao
            1/                  a version: a model directory as `session-intent export` writes it
            2/                  (card.json, model.onnx, model.int8.onnx, ...)
            serving             optional pointer: the text of the version to serve ("2"); absent: the newest
            shadow              optional pointer: the version a shadow candidate runs; absent or empty: none

Versions are positive integers, newest = largest, as in Triton. Without a repository, `SI_MODEL_DIR`
(models/default) is the one version there is, labelled by its directory name.

A version's label, `<name>/<version>` (or the directory name), prefixes the `model` field of every answer,
stored score and at-risk entry: `taobao/2:lstm_gru_small-int8@8d545b`. `/v1/at-risk?model_version=` filters by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SERVING_POINTER = "serving"
SHADOW_POINTER = "shadow"
LABEL_SEPARATOR = ":"  # between a version's label and the engine's model id in the `model` field


class UnknownVersion(LookupError):
    """The repository has no such version (a 404 at the admin route)."""


@dataclass(frozen=True)
class ModelVersion:
    """One loadable model directory and the label answers carry."""

    name: str
    version: str | None  # None: a plain model directory outside a repository
    path: Path

    @property
    def label(self) -> str:
        return self.name if self.version is None else f"{self.name}/{self.version}"


def version_of(model: str) -> str:
    """The version label in a `model` field ("taobao/2:lstm_gru_small-int8@8d545b" → "taobao/2")."""
    return model.split(LABEL_SEPARATOR, 1)[0]


class ModelRepository:
    """The versions of one model: a repository's `<name>/` folder, or a single model directory."""

    def __init__(self, root: Path | None, name: str | None = None, model_dir: Path | None = None) -> None:
        self.single: ModelVersion | None = None
        self.root: Path | None = None
        if root is None:
            if model_dir is None:
                raise ValueError("a model repository or a model directory is needed")
            self.single = version_at(model_dir)
            self.name = self.single.name
            return
        self.root = Path(root)
        self.name = name or self._only_name()

    def _only_name(self) -> str:
        assert self.root is not None
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(names) != 1:
            raise ValueError(f"model repository {self.root} holds {len(names)} models ({', '.join(names) or 'none'}): "
                             "set SI_MODEL_NAME to the one to serve")
        return names[0]

    @property
    def folder(self) -> Path | None:
        """The `<repository>/<name>/` folder holding the versions and pointers; None for a single directory."""
        return None if self.root is None else self.root / self.name

    def versions(self) -> list[str]:
        """Version labels, oldest first."""
        if self.single is not None:
            return [self.single.label]
        assert self.folder is not None
        if not self.folder.is_dir():
            return []
        found = [p.name for p in self.folder.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0]
        return [f"{self.name}/{v}" for v in sorted(found, key=int)]

    def resolve(self, version: str | None = None) -> ModelVersion:
        """The version named (its number, or its label), else the one the `serving` pointer names, else the
        newest. UnknownVersion when it is not there. A version folder without a card still resolves: loading
        it refuses it with the reason."""
        if self.single is not None:
            if version not in (None, self.single.label):
                raise UnknownVersion(f"no version {version!r}: this replica serves the single model directory "
                                     f"{self.single.path} (label {self.single.label!r}); set SI_MODEL_REPOSITORY "
                                     "for versions")
            return self.single
        assert self.folder is not None
        wanted = _number(version, self.name) if version else self.pointer(SERVING_POINTER)
        if wanted is None:
            known = self.versions()
            if not known:
                raise UnknownVersion(f"model repository folder {self.folder} holds no version")
            wanted = _number(known[-1], self.name)
        path = self.folder / wanted
        if not wanted.isdigit() or not path.is_dir():
            raise UnknownVersion(f"no version {wanted!r} in {self.folder} (versions: {', '.join(self.versions())})")
        return ModelVersion(self.name, wanted, path)

    def pointer(self, which: str) -> str | None:
        """The version a pointer file names, None when it is absent or empty."""
        if self.folder is None:
            return None
        path = self.folder / which
        text = path.read_text().strip() if path.is_file() else ""
        return _number(text, self.name) if text else None

    def shadow(self) -> ModelVersion | None:
        """The shadow candidate the `shadow` pointer names, if any."""
        wanted = self.pointer(SHADOW_POINTER)
        return None if wanted is None else self.resolve(wanted)


def version_at(path: Path) -> ModelVersion:
    """A model directory as a version: `<name>/<number>` when it sits in a repository, else its directory name."""
    path = Path(path)
    if path.name.isdigit():
        return ModelVersion(path.parent.name, path.name, path)
    return ModelVersion(path.name, None, path)


def _number(version: str, name: str) -> str:
    """"3" or "taobao/3" → "3"."""
    prefix = f"{name}/"
    return version[len(prefix):] if version.startswith(prefix) else version


