"""The serving holder: the newest approved model, swapped atomically on reload.

Requests read ``holder.current`` once and use that snapshot to the end, so a reload never changes
a model under a running request. A reload builds the new model completely (arrays read, id maps
and derived matrices prepared, catalogue checked) *before* one reference assignment publishes it;
in CPython that assignment is atomic, so no request ever sees a half-loaded model and none is
dropped. Reloads are serialised by a lock; a failed reload keeps the old model.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from qianmian_core.logging import get_logger

from recommender.ml.registry import LoadedModel, ModelRegistry

log = get_logger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did."""

    version: str | None
    previous: str | None
    changed: bool


class NoModelError(Exception):
    """No approved model is loaded."""


class PinnedModelError(Exception):
    """An experiment arm's model version cannot be served (unknown, not approved, other catalogue)."""


@dataclass(frozen=True)
class PinnedModel:
    """A fixed model where a holder is expected (an experiment arm's version): ``current`` never changes."""

    current: LoadedModel


class ModelHolder:
    """Holds one :class:`LoadedModel`; thread-safe reload, lock-free reads."""

    def __init__(self, registry: ModelRegistry, catalogue: Sequence[str]) -> None:
        self.registry = registry
        self.catalogue = list(catalogue)
        self._current: LoadedModel | None = None
        self._reload_lock = threading.Lock()
        self._pinned: dict[str, PinnedModel] = {}
        self._after_reload: list[Callable[[], object]] = []

    def after_reload(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` after every reload request (SIGHUP, ``POST /v1/models/reload``, start-up),
        whether or not the model changed: models served beside this one (the ranker) reload with it.
        A hook must not raise."""
        self._after_reload.append(hook)

    @property
    def current(self) -> LoadedModel | None:
        """The model in use now (read once per request)."""
        return self._current

    def require(self) -> LoadedModel:
        """The model in use now, or NoModelError."""
        current = self._current
        if current is None:
            raise NoModelError("no approved model is loaded")
        return current

    def reload(self, version: str | None = None) -> ReloadResult:
        """Load ``version`` (default: the newest approved) and swap it in; the old one stays on error."""
        try:
            return self._reload(version)
        finally:
            for hook in self._after_reload:
                hook()

    def _reload(self, version: str | None) -> ReloadResult:
        with self._reload_lock:
            previous = self._current.manifest.version if self._current else None
            target = version
            if target is None:
                newest = self.registry.newest_approved()
                if newest is None:
                    log.warning("model_reload_skipped", reason="no approved model in registry")
                    return ReloadResult(previous, previous, False)
                target = newest.version
            if target == previous:
                return ReloadResult(previous, previous, False)
            loaded = self.registry.load(target, catalogue=self.catalogue)  # fully built first …
            self._current = loaded  # … then one atomic reference swap
            log.info("model_loaded", version=target, previous=previous, model_type=loaded.manifest.model_type)
            return ReloadResult(target, previous, True)

    def pinned(self, version: str) -> PinnedModel:
        """An approved registry version held for good (experiment arms serve their own version).

        Loaded once, on first use; raises :class:`PinnedModelError` for a version that is unknown, not
        approved or trained on another catalogue.
        """
        held = self._pinned.get(version)
        if held is not None:
            return held
        current = self._current
        if current is not None and current.manifest.version == version:
            held = PinnedModel(current)
        else:
            try:
                manifest = self.registry.manifest(version)
                if manifest.status != "approved":
                    raise PinnedModelError(f"model {version} is {manifest.status}, not approved")
                held = PinnedModel(self.registry.load(version, catalogue=self.catalogue))
            except PinnedModelError:
                raise
            except Exception as exc:
                raise PinnedModelError(f"model {version} cannot be served: {exc}") from exc
        self._pinned[version] = held
        return held

    def recommend(self, customer_ids: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """Top-k per customer from one consistent model snapshot."""
        return self.require().model.recommend(customer_ids, k)

    def install_sighup(self, on_error: Callable[[Exception], None] | None = None) -> None:
        """Reload on SIGHUP, in a background thread (signal handlers must return quickly).

        Only the main thread may install signal handlers; elsewhere (test clients) this is a no-op.
        """
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(_signum: int, _frame: FrameType | None) -> None:
            def run() -> None:
                try:
                    self.reload()
                except Exception as exc:
                    log.error("model_reload_failed", error=str(exc))
                    if on_error is not None:
                        on_error(exc)

            threading.Thread(target=run, name="model-reload", daemon=True).start()

        signal.signal(signal.SIGHUP, handler)
