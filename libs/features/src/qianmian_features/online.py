"""Online reads through the online store itself, with the feature views resolved once.

The Feast SDK's ``FeatureStore.get_online_features`` resolves every request from the registry again:
it parses each feature view from its protobuf, checks types with typeguard, builds a request context
and a response protobuf, and converts that to Python. Measured in the recommender on 2 cores, that
was about three quarters of a cold decision's Feast time, and a quarter of an outbound list of
100,000 customers.

:class:`OnlineReader` asks the same online store (``OnlineStore.online_read``, the call the SDK
makes underneath, for SQLite, Redis or PostgreSQL alike) for the same rows, and converts each value
with the SDK's own ``feast_value_type_to_python_type`` and each row's timestamp to whole seconds as
the SDK's response does, so its answer equals :func:`qianmian_features.online_features`' value for
value (a test holds them together). The views are resolved from the registry when the reader is
made and again every ``refresh_s`` seconds, so a ``feast apply`` reaches it as it reaches the SDK
(whose registry cache lives ``cache_ttl_seconds``).

On the SQLite online store (the embedded default) the reader runs the store's own query itself, on a
connection without sqlite3's per-row timestamp converter: each distinct timestamp cell is read once
per read and each distinct value's bytes are decoded once (kept, bounded), which halved the time of
a 100,000-customer read again. The table name and database path are Feast's own helpers'; the test
that holds the reader equal to the SDK runs on SQLite and Redis.

On-demand feature views compute their values at read time; a reader refuses them
(:class:`UnsupportedFeaturesError`) and the caller reads through the SDK.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from feast import FeatureService, FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id, get_online_store_from_config
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType

from qianmian_features.freshness import FeatureValue

#: How often the views are resolved again from the registry (the local registry's cache TTL).
DEFAULT_REFRESH_S: Final = 60.0
#: Decoded values kept by their bytes (flags, counts and categories repeat across customers).
DECODED_MAX: Final = 100_000


class UnsupportedFeaturesError(ValueError):
    """The requested features cannot be read without the SDK (e.g. an on-demand feature view)."""


@dataclass(frozen=True, slots=True)
class _View:
    view: FeatureView
    #: Requested feature names, in the order asked.
    names: tuple[str, ...]
    #: Each requested feature: its name, its ``"view:feature"`` reference and its value type (for
    #: the SDK's conversion).
    columns: tuple[tuple[str, str, ValueType], ...]
    #: The join key's value type (how an id becomes an entity key).
    key_type: ValueType


def _requested(store: FeatureStore, features: Sequence[str] | str) -> dict[str, list[str]]:
    """Feature names per view, in request order, from references or a feature service's name."""
    wanted: dict[str, list[str]] = {}
    if isinstance(features, str):
        service: FeatureService = store.get_feature_service(features)
        for projection in service.feature_view_projections:
            view_name: str = projection.name_to_use()  # type: ignore[no-untyped-call]
            wanted.setdefault(view_name, []).extend(f.name for f in projection.features)
        return wanted
    for ref in features:
        view, sep, name = ref.partition(":")
        if not sep or not name:
            raise ValueError(f"feature reference must be 'view:feature', got {ref!r}")
        wanted.setdefault(view, []).append(name)
    return wanted


class OnlineReader:
    """Online values of ``features`` for entities of ``join_key``, shaped as
    :func:`qianmian_features.online_features` shapes them (``id -> "view:feature" -> FeatureValue``).

    Blocking (run it in a thread from async code); safe to share between threads as the SDK's
    store is (the online store's connection is the store's own).
    """

    def __init__(
        self,
        store: FeatureStore,
        join_key: str,
        features: Sequence[str] | str,
        *,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        self.store = store
        self.join_key = join_key
        self.features = features if isinstance(features, str) else tuple(features)
        self.refresh_s = refresh_s
        self._online: OnlineStore = get_online_store_from_config(store.config.online_store)
        self._sqlite: _SqliteRows | None = (
            _SqliteRows(store) if isinstance(self._online, SqliteOnlineStore) else None
        )
        self._lock = threading.Lock()
        self._views: tuple[_View, ...] = ()
        self._resolved_at = float("-inf")
        self._resolve()

    def _resolve(self) -> None:
        views: list[_View] = []
        for name, names in _requested(self.store, self.features).items():
            try:
                view = self.store.get_feature_view(name)
            except Exception:
                self.store.get_on_demand_feature_view(name)  # raises when the view is unknown
                raise UnsupportedFeaturesError(f"{name} is an on-demand feature view") from None
            keys = [c for c in view.entity_columns if c.name == self.join_key]
            if len(view.entity_columns) != 1 or not keys:
                raise UnsupportedFeaturesError(f"{name} is not keyed by {self.join_key} alone")
            fields = {f.name: f for f in view.features}
            unknown = [n for n in names if n not in fields]
            if unknown:
                raise ValueError(f"{name} has no feature {', '.join(unknown)}")
            views.append(
                _View(
                    view=view,
                    names=tuple(names),
                    columns=tuple((n, f"{name}:{n}", fields[n].dtype.to_value_type()) for n in names),
                    key_type=keys[0].dtype.to_value_type(),
                )
            )
        self._views = tuple(views)
        self._resolved_at = time.monotonic()

    def _current(self) -> tuple[_View, ...]:
        if time.monotonic() - self._resolved_at >= self.refresh_s:
            with self._lock:
                if time.monotonic() - self._resolved_at >= self.refresh_s:
                    self._resolve()
        return self._views

    def read(self, ids: Sequence[str]) -> dict[str, dict[str, FeatureValue]]:
        """Every requested feature of every id (an id the store lacks gets values of None)."""
        views = self._current()
        unique = list(dict.fromkeys(ids))
        result: dict[str, dict[str, FeatureValue]] = {entity_id: {} for entity_id in unique}
        if not unique:
            return result
        keys_by_type: dict[ValueType, list[EntityKeyProto]] = {}
        for spec in views:
            keys = keys_by_type.get(spec.key_type)
            if keys is None:
                values = python_values_to_proto_values(unique, spec.key_type)
                keys = keys_by_type[spec.key_type] = [
                    EntityKeyProto(join_keys=[self.join_key], entity_values=[v]) for v in values
                ]
            if self._sqlite is not None:
                self._sqlite.read(spec, unique, keys, result)
            else:
                self._read_store(spec, unique, keys, result)
        return result

    def _read_store(
        self,
        spec: _View,
        unique: list[str],
        keys: list[EntityKeyProto],
        result: dict[str, dict[str, FeatureValue]],
    ) -> None:
        # a copy: some stores append to the list they are given (Redis adds its timestamp field)
        rows = self._online.online_read(self.store.config, spec.view, keys, list(spec.names))
        for entity_id, (stamp, data) in zip(unique, rows, strict=True):
            out = result[entity_id]
            # The SDK's response carries the row's timestamp in whole seconds (0: no row).
            when = _whole_seconds(stamp)
            for name, ref, value_type in spec.columns:
                proto = None if data is None else data.get(name)
                value = None if proto is None else feast_value_type_to_python_type(proto, value_type)
                out[ref] = FeatureValue(value, when)


class _SqliteRows:
    """Feast's SQLite online table read with the store's query, on a connection of its own."""

    def __init__(self, store: FeatureStore) -> None:
        config = store.config
        self.project = config.project
        self.key_version = config.entity_key_serialization_version
        self.versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
        path = SqliteOnlineStore._get_db_path(config)
        # no detect_types: timestamps come back as stored (epoch seconds), each distinct one read once
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._decoded: dict[tuple[ValueType, bytes], object] = {}

    def read(
        self,
        spec: _View,
        unique: list[str],
        keys: list[EntityKeyProto],
        result: dict[str, dict[str, FeatureValue]],
    ) -> None:
        table = compute_table_id(self.project, spec.view, self.versioning).replace('"', '""')
        binary = [serialize_entity_key(k, entity_key_serialization_version=self.key_version) for k in keys]
        id_of = dict(zip(binary, unique, strict=True))
        rows = self._conn.execute(
            f"SELECT entity_key, feature_name, value, event_ts "
            f'FROM "{table}" WHERE entity_key IN ({",".join("?" * len(binary))}) ORDER BY entity_key',
            binary,
        ).fetchall()
        values_of: dict[str, dict[str, bytes]] = {}
        stamp_of: dict[str, object] = {}
        for entity_key, feature, raw, stamp in rows:
            entity_id = id_of[entity_key]
            values_of.setdefault(entity_id, {})[feature] = raw
            stamp_of[entity_id] = stamp  # the SDK keeps the timestamp of the entity's last row
        decoded = self._decoded
        if len(decoded) > DECODED_MAX:
            decoded.clear()
        stamps: dict[object, datetime | None] = {}
        for entity_id in unique:
            out = result[entity_id]
            values = values_of.get(entity_id)
            if values is None:
                for _, ref, _ in spec.columns:
                    out[ref] = FeatureValue(None, None)
                continue
            stamp = stamp_of[entity_id]
            if stamp in stamps:
                when = stamps[stamp]
            else:
                when = stamps[stamp] = _whole_seconds(_parse_stamp(stamp))
            for name, ref, value_type in spec.columns:
                raw = values.get(name)
                value: object = None
                if raw is not None:
                    cache_key = (value_type, bytes(raw))
                    value = decoded.get(cache_key, _UNPARSED)
                    if value is _UNPARSED:
                        proto = ValueProto()
                        proto.ParseFromString(cache_key[1])
                        value = decoded[cache_key] = feast_value_type_to_python_type(proto, value_type)
                out[ref] = FeatureValue(value, when)


#: Marks a cache miss (None is a real value).
_UNPARSED: Final = object()


def _parse_stamp(stamp: object) -> datetime | None:
    """An ``event_ts`` cell: Feast's SQLite store writes whole epoch seconds (its adapter), and reads
    them back as local time labelled UTC; here they are read as UTC, which is the same on a machine
    whose local time is UTC (a container's) and right on any other. ISO text is read too."""
    if stamp is None:
        return None
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp, UTC)
    text = stamp.decode() if isinstance(stamp, bytes) else str(stamp)
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _whole_seconds(stamp: datetime | None) -> datetime | None:
    if stamp is None:
        return None
    seconds = int(stamp.timestamp() // 1)
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def online_reader(store: FeatureStore, join_key: str, features: Sequence[str] | str) -> OnlineReader:
    """An :class:`OnlineReader` (raises :class:`UnsupportedFeaturesError` where only the SDK can read)."""
    return OnlineReader(store, join_key, features)


__all__ = ["DEFAULT_REFRESH_S", "OnlineReader", "UnsupportedFeaturesError", "online_reader"]
