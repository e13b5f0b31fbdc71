"""The model registry: one directory per model version, arrays in ``.npz`` + a JSON manifest.

Layout (a local directory; an object-store URL such as ``s3://`` is not supported yet: sync the
directory with the store's own tools, or add a backend behind :class:`ModelRegistry`)::

    <root>/<version>/manifest.json   model type, id maps, hyper-parameters, data window, metrics,
                                     git revision, created time, catalogue ids + hash, status
    <root>/<version>/arrays.npz      factors, biases, embeddings, seen items (allow_pickle=False)

Second-stage models (the LightGBM ranker, ``recommender.ml.ranker``) are *artifacts*: the same
manifest plus their own text files (``model.txt``, LightGBM's text format) instead of arrays; they
are registered with :meth:`ModelRegistry.register_artifact`, read with
:meth:`ModelRegistry.read_artifact`, and never returned by :meth:`ModelRegistry.newest_approved`
unless asked for by type (the candidate-model holder must not pick up a ranker).

No pickles anywhere: loading never executes code from the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from recommender.ml.idmap import IdMap
from recommender.ml.models import MODEL_TYPES, Recommender

FORMAT_VERSION: Final = 1
#: ``companion``: a model fitted as part of another one (the ranker's CF features), loaded only by
#: the version that names it, never served on its own and never approved.
Status = Literal["candidate", "approved", "retired", "companion"]
#: Model types stored as artifacts (text files + manifest), not as :class:`Recommender` arrays.
ARTIFACT_TYPES: Final = frozenset({"lightgbm_ranker"})
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RegistryError(Exception):
    """The registry cannot do what was asked (unknown version, unreadable files)."""


class CatalogueMismatchError(RegistryError):
    """The model was trained on a different product catalogue than the one in use now."""


def catalogue_hash(product_ids: Sequence[str]) -> str:
    """A short, order-sensitive digest of a catalogue's product ids."""
    return hashlib.sha256("\n".join(product_ids).encode()).hexdigest()[:16]


def git_revision() -> str:
    """``QIANMIAN_GIT_REVISION`` if set (container builds), else ``git rev-parse HEAD``, else unknown."""
    if revision := os.environ.get("QIANMIAN_GIT_REVISION"):
        return revision
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH is the point
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@dataclass(frozen=True)
class Manifest:
    """The JSON manifest of one model version."""

    version: str
    model_type: str
    status: Status
    created_at: str
    git_revision: str
    hyper_parameters: dict[str, Any]
    data_window: dict[str, Any]
    metrics: dict[str, Any]
    catalogue_hash: str
    product_ids: list[str]
    customer_ids: list[str]
    state: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "model_type": self.model_type,
            "status": self.status,
            "created_at": self.created_at,
            "git_revision": self.git_revision,
            "hyper_parameters": self.hyper_parameters,
            "data_window": self.data_window,
            "metrics": self.metrics,
            "catalogue": {"hash": self.catalogue_hash, "product_ids": self.product_ids},
            "id_maps": {"customers": self.customer_ids, "products": self.product_ids},
            "state": self.state,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse a manifest; raises RegistryError on an unknown format."""
        if data.get("format_version") != FORMAT_VERSION:
            raise RegistryError(f"unsupported manifest format {data.get('format_version')!r}")
        return cls(
            version=str(data["version"]),
            model_type=str(data["model_type"]),
            status=data["status"],
            created_at=str(data["created_at"]),
            git_revision=str(data["git_revision"]),
            hyper_parameters=dict(data["hyper_parameters"]),
            data_window=dict(data["data_window"]),
            metrics=dict(data["metrics"]),
            catalogue_hash=str(data["catalogue"]["hash"]),
            product_ids=list(data["catalogue"]["product_ids"]),
            customer_ids=list(data["id_maps"]["customers"]),
            state=dict(data["state"]),
        )

    def summary(self) -> dict[str, Any]:
        """Everything but the id maps and model state (for APIs and listings)."""
        return {
            "version": self.version,
            "model_type": self.model_type,
            "status": self.status,
            "created_at": self.created_at,
            "git_revision": self.git_revision,
            "hyper_parameters": self.hyper_parameters,
            "data_window": self.data_window,
            "metrics": self.metrics,
            "catalogue_hash": self.catalogue_hash,
            "products": len(self.product_ids),
            "customers": len(self.customer_ids),
        }


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score and the manifest it came from."""

    model: Recommender
    manifest: Manifest


class ModelRegistry:
    """A registry rooted at a local directory."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        if "://" in text and not text.startswith("file://"):
            raise RegistryError(
                f"registry {text!r}: object-store URLs are not supported yet; use a local directory"
            )
        self.root = Path(text.removeprefix("file://"))

    # -- writing ---------------------------------------------------------------------------------

    def register(
        self,
        model: Recommender,
        *,
        data_window: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        status: Status = "candidate",
        created_at: datetime | None = None,
    ) -> Manifest:
        """Write a new version of ``model``; returns its manifest."""
        if model.model_type not in MODEL_TYPES:
            raise RegistryError(f"model type {model.model_type!r} cannot be registered")
        created = created_at or datetime.now(UTC)
        version = f"{created:%Y%m%dT%H%M%S%f}Z-{model.model_type}"
        product_ids = model.products.to_list()
        manifest = Manifest(
            version=version,
            model_type=model.model_type,
            status=status,
            created_at=created.isoformat(),
            git_revision=git_revision(),
            hyper_parameters=model.hyper_parameters,
            data_window=dict(data_window),
            metrics=dict(metrics or {}),
            catalogue_hash=catalogue_hash(product_ids),
            product_ids=product_ids,
            customer_ids=model.customers.to_list(),
            state=model.state(),
        )
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=False)
        np.savez(folder / "arrays.npz", **model.to_arrays())  # type: ignore[arg-type]
        self._write_manifest(folder, manifest)
        return manifest

    def _write_manifest(self, folder: Path, manifest: Manifest) -> None:
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, folder / "manifest.json")  # atomic: readers never see half a manifest

    def set_status(self, version: str, status: Status) -> Manifest:
        """Change a version's status (``approve`` is the usual one); a companion's never changes."""
        manifest = self.manifest(version)
        if "companion" in (manifest.status, status) and manifest.status != status:
            raise RegistryError(
                f"model {version} is {manifest.status}: a ranker's companion models are fitted for it and "
                "served only through it; train and register a model of its own to serve it"
            )
        updated = Manifest(**{**manifest.__dict__, "status": status})
        self._write_manifest(self.root / version, updated)
        return updated

    def approve(self, version: str) -> Manifest:
        """Mark a version approved for serving."""
        return self.set_status(version, "approved")

    # -- reading ---------------------------------------------------------------------------------

    def manifest(self, version: str) -> Manifest:
        """The manifest of one version."""
        path = self.root / version / "manifest.json"
        if not path.is_file():
            raise RegistryError(f"model version {version!r} is not in registry {self.root}")
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))

    def versions(self) -> list[Manifest]:
        """Every version, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            self.manifest(p.name) for p in sorted(self.root.iterdir()) if (p / "manifest.json").is_file()
        ]
        return sorted(found, key=lambda m: (m.created_at, m.version))

    def newest_approved(self, model_types: Collection[str] | None = None) -> Manifest | None:
        """The approved version created last among ``model_types`` (default: the candidate models
        of :data:`MODEL_TYPES`, never an artifact such as the ranker), or None."""
        wanted = set(MODEL_TYPES) if model_types is None else set(model_types)
        approved = [m for m in self.versions() if m.status == "approved" and m.model_type in wanted]
        return approved[-1] if approved else None

    # -- artifacts: second-stage models saved as their own text files -----------------------------

    def register_artifact(
        self,
        model_type: str,
        files: Mapping[str, str],
        *,
        product_ids: Sequence[str],
        hyper_parameters: Mapping[str, Any],
        data_window: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        state: Mapping[str, Any] | None = None,
        status: Status = "candidate",
        created_at: datetime | None = None,
    ) -> Manifest:
        """Write a new version of an artifact model: ``files`` (name -> text) and the manifest."""
        if model_type not in ARTIFACT_TYPES:
            raise RegistryError(f"model type {model_type!r} is not an artifact type")
        bad = [name for name in files if not _SAFE_NAME.fullmatch(name) or name == "manifest.json"]
        if bad:
            raise RegistryError(f"artifact file names must be plain names, got {bad}")
        created = created_at or datetime.now(UTC)
        version = f"{created:%Y%m%dT%H%M%S%f}Z-{model_type}"
        manifest = Manifest(
            version=version,
            model_type=model_type,
            status=status,
            created_at=created.isoformat(),
            git_revision=git_revision(),
            hyper_parameters=dict(hyper_parameters),
            data_window=dict(data_window),
            metrics=dict(metrics or {}),
            catalogue_hash=catalogue_hash(list(product_ids)),
            product_ids=list(product_ids),
            customer_ids=[],
            state={**dict(state or {}), "files": sorted(files)},
        )
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=False)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        self._write_manifest(folder, manifest)
        return manifest

    def read_artifact(self, version: str, name: str) -> str:
        """The text of one file of an artifact version."""
        manifest = self.manifest(version)
        if name not in manifest.state.get("files", []):
            raise RegistryError(f"model {version} has no file {name!r}")
        return (self.root / version / name).read_text(encoding="utf-8")

    def load(self, version: str, *, catalogue: Sequence[str] | None = None) -> LoadedModel:
        """Load one version; with ``catalogue`` (current product ids), refuse a mismatch."""
        manifest = self.manifest(version)
        if catalogue is not None:
            check_catalogue(manifest, catalogue)
        if manifest.model_type in ARTIFACT_TYPES:
            raise RegistryError(
                f"model {version} is a {manifest.model_type} artifact: load it with its own loader "
                "(recommender.ml.ranker.load_ranker)"
            )
        cls = MODEL_TYPES.get(manifest.model_type)
        if cls is None:
            raise RegistryError(f"model {version}: unknown model type {manifest.model_type!r}")
        with np.load(self.root / version / "arrays.npz", allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        model = cls.restore(IdMap(manifest.customer_ids), IdMap(manifest.product_ids), arrays, manifest.state)
        return LoadedModel(model=model, manifest=manifest)


def check_catalogue(manifest: Manifest, catalogue: Sequence[str]) -> None:
    """Raise CatalogueMismatchError unless the model's product ids are exactly the catalogue's."""
    current = list(catalogue)
    if manifest.product_ids == current:
        return
    trained = set(manifest.product_ids)
    now = set(current)
    added = sorted(now - trained)
    removed = sorted(trained - now)
    detail = (
        f"{len(added)} new in the catalogue {added[:5]}, {len(removed)} no longer in it {removed[:5]}"
        if added or removed
        else "same products in a different order"
    )
    raise CatalogueMismatchError(
        f"model {manifest.version} was trained on catalogue {manifest.catalogue_hash} "
        f"({len(trained)} products) but the current catalogue is {catalogue_hash(current)} "
        f"({len(now)} products): {detail}; retrain the model on the current catalogue"
    )
