"""The serving holder swaps models atomically while scoring calls keep running."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from recommender.ml.data import TrainingData
from recommender.ml.models import ALSRecommender, PopularityRecommender
from recommender.ml.registry import CatalogueMismatchError, ModelRegistry
from recommender.service.holder import ModelHolder, NoModelError


def test_reload_swaps_without_failed_requests(data: TrainingData, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    catalogue = list(data.products.ids)
    versions = []
    for seed in range(3):
        model = ALSRecommender(factors=8, iterations=2, random_state=seed, num_threads=1).fit(data)
        versions.append(registry.register(model, data_window={}, status="approved").version)
    holder = ModelHolder(registry, catalogue)
    with pytest.raises(NoModelError):
        holder.recommend(["C000000001"])
    holder.reload(versions[0])

    customers = list(data.customers.ids[:64])
    failures: list[BaseException] = []
    served = 0
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        nonlocal served
        while not stop.is_set():
            try:
                lists = holder.recommend(customers, 5)
                assert len(lists) == len(customers)
                assert all(len(items) == 5 for items in lists)
                with lock:
                    served += 1
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    seen_versions = []
    for _round in range(6):
        for version in versions:
            holder.reload(version)
            seen_versions.append(holder.require().manifest.version)
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert served > 0
    assert seen_versions[-3:] == versions
    # Without a version, reload picks the newest approved one.
    holder.reload(versions[0])
    assert holder.reload().version == versions[-1]


def test_failed_reload_keeps_the_old_model(data: TrainingData, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    good = registry.register(PopularityRecommender().fit(data), data_window={}, status="approved")
    holder = ModelHolder(registry, list(data.products.ids))
    holder.reload()
    holder.catalogue = [*holder.catalogue, "NEW-PRODUCT-01"]
    newer = registry.register(PopularityRecommender().fit(data), data_window={}, status="approved")
    with pytest.raises(CatalogueMismatchError):
        holder.reload()
    assert holder.require().manifest.version == good.version != newer.version
