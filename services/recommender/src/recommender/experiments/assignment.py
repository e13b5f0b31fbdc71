"""Deterministic experiment assignment: hash buckets, arms by weight, layers, the global holdout.

Every decision is a pure function of the customer id and the definitions, so a customer gets the same
answer in every channel, in every process and after every restart; nothing is random but the hash.

- **Buckets.** ``bucket(salt, customer_id)`` is the first 8 bytes of
  ``sha256(f"{salt}:{customer_id}")`` modulo :data:`BUCKETS` (10,000; the modulo bias is below 1e-15).
- **Holdout.** One fixed salt and a share (5 % by default): customers whose holdout bucket falls below
  the share receive no personalised marketing and no experiment arm, in any channel, so that total
  uplift can be measured against them.
- **Layers.** Each layer hashes with its own salt (:func:`layer_salt`); every running experiment of a
  layer owns a disjoint range of that layer's buckets, so experiments of one layer are mutually
  exclusive while experiments in different layers overlap independently.
- **Arms.** Within its range, an experiment picks the arm with its *own* salt: the arms' weights cut
  ``[0, BUCKETS)`` into consecutive ranges, the first arm being the control.
- **Population.** An experiment may be limited to segments (any of them) and channels; outside its
  population a request gets no arm from it (the arm itself does not depend on the channel).
- **Stickiness.** :meth:`Assigner.assign` takes the arms already stored for the customer and keeps
  them: when weights change, customers assigned before keep their arm and only new customers follow
  the new weights. The service stores every first assignment (``experiment_assignments``) and passes
  the stored arms back in.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

#: Buckets of every hash (layers, arms, the holdout): a granularity of 0.01 %.
BUCKETS: Final = 10_000
#: The holdout's default salt and share; a deployment fixes both once and never changes the salt.
DEFAULT_HOLDOUT_SALT: Final = "qianmian-global-holdout-v1"
DEFAULT_HOLDOUT_SHARE: Final = 0.05


@functools.lru_cache(maxsize=65_536)
def bucket(salt: str, customer_id: str) -> int:
    """The customer's bucket in ``[0, BUCKETS)`` under ``salt`` (kept for the customers seen last:
    a decision asks for the holdout's and each layer's bucket, several times)."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def layer_salt(layer: str) -> str:
    """The salt of a layer's buckets (derived from its name, so every process agrees on it)."""
    return f"qianmian-layer:{layer}"


def buckets_for_share(share: float) -> int:
    """How many buckets a share in ``[0, 1]`` covers (rounded to the nearest bucket)."""
    if not (math.isfinite(share) and 0.0 <= share <= 1.0):
        raise ValueError(f"share must be within 0..1, not {share}")
    return round(share * BUCKETS)


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm and its allocation weight (weights are relative: 1:1 is the same as 50:50)."""

    name: str
    weight: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an arm needs a name")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"arm {self.name!r}: weight must be finite and >= 0, not {self.weight}")


def arm_bounds(arms: Sequence[Arm]) -> tuple[int, ...]:
    """The exclusive upper bucket of each arm's range (the last is :data:`BUCKETS`).

    Cumulative weights are rounded once each, so the ranges tile ``[0, BUCKETS)`` exactly and an arm
    of weight 0 gets an empty range (it receives no new customers).
    """
    if not arms:
        raise ValueError("an experiment needs at least one arm")
    total = math.fsum(a.weight for a in arms)
    if total <= 0:
        raise ValueError("at least one arm needs a positive weight")
    bounds: list[int] = []
    running = 0.0
    for arm in arms[:-1]:
        running += arm.weight
        bounds.append(round(BUCKETS * running / total))
    bounds.append(BUCKETS)
    return tuple(bounds)


def arm_for_bucket(arms: Sequence[Arm], arm_bucket: int) -> str:
    """The arm whose range holds ``arm_bucket``."""
    if not 0 <= arm_bucket < BUCKETS:
        raise ValueError(f"bucket {arm_bucket} outside 0..{BUCKETS - 1}")
    return arms[bisect.bisect_right(arm_bounds(arms), arm_bucket)].name


@dataclass(frozen=True, slots=True)
class BucketRange:
    """The half-open range ``[start, end)`` of a layer's buckets that one experiment owns."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= BUCKETS:
            raise ValueError(f"bucket range [{self.start}, {self.end}) outside 0..{BUCKETS}")

    @property
    def size(self) -> int:
        return self.end - self.start

    def contains(self, layer_bucket: int) -> bool:
        return self.start <= layer_bucket < self.end

    def overlaps(self, other: BucketRange) -> bool:
        return self.start < other.end and other.start < self.end


def allocate_range(size: int, taken: Iterable[BucketRange]) -> BucketRange | None:
    """The first free range of ``size`` buckets beside the ``taken`` ones (first fit), or None."""
    if not 1 <= size <= BUCKETS:
        raise ValueError(f"size must be within 1..{BUCKETS}, not {size}")
    start = 0
    for used in sorted(taken, key=lambda r: r.start):
        if used.start - start >= size:
            break
        start = max(start, used.end)
    return BucketRange(start, start + size) if BUCKETS - start >= size else None


@dataclass(frozen=True, slots=True)
class Population:
    """Who an experiment is for: customers in any of ``segments``, requests in ``channels``.

    An empty set means no restriction.
    """

    segments: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def admits(self, channel: str, segments: Iterable[str]) -> bool:
        """True when a request in ``channel`` for a customer in ``segments`` belongs to the population."""
        if self.channels and channel not in self.channels:
            return False
        return not self.segments or not self.segments.isdisjoint(segments)


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """What assignment needs to know of a running experiment."""

    experiment_id: str
    salt: str
    layer: str
    buckets: BucketRange
    arms: tuple[Arm, ...]
    population: Population = field(default_factory=Population)
    #: ``fixed`` (weights, sticky) or ``thompson`` (daily bandit shares; the caller draws the arm).
    allocation: str = "fixed"
    #: The arms' bucket bounds (computed once: the decision path hashes with them per request).
    bounds: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.experiment_id}: arm names repeat")
        # Frozen: set the derived field once, while the instance is being built.
        object.__setattr__(self, "bounds", arm_bounds(self.arms))

    @property
    def arm_names(self) -> frozenset[str]:
        return frozenset(a.name for a in self.arms)

    def hashed_arm(self, customer_id: str) -> str:
        """The arm the current weights give the customer (ignoring any stored arm)."""
        return self.arms[bisect.bisect_right(self.bounds, bucket(self.salt, customer_id))].name


@dataclass(frozen=True, slots=True)
class Holdout:
    """The global holdout: a fixed salt and the share of customers held out of all marketing."""

    salt: str = DEFAULT_HOLDOUT_SALT
    share: float = DEFAULT_HOLDOUT_SHARE

    def __post_init__(self) -> None:
        if not self.salt:
            raise ValueError("the holdout needs a salt")
        if not (math.isfinite(self.share) and 0.0 <= self.share < 1.0):
            raise ValueError(f"holdout share must be within 0..1 (exclusive), not {self.share}")

    def contains(self, customer_id: str) -> bool:
        """True when the customer is held out (no personalised marketing, no experiment arm)."""
        return bucket(self.salt, customer_id) < buckets_for_share(self.share)


@dataclass(frozen=True, slots=True)
class Assignment:
    """The arm of one experiment for one customer; ``stored`` when it came from a stored assignment."""

    experiment_id: str
    arm: str
    layer: str
    stored: bool = False


@dataclass(frozen=True, slots=True)
class Assignments:
    """What a customer gets: held out, or at most one arm per layer (possibly none)."""

    holdout: bool = False
    arms: tuple[Assignment, ...] = ()

    def arm_of(self, experiment_id: str) -> str | None:
        """The customer's arm in ``experiment_id``, or None."""
        return next((a.arm for a in self.arms if a.experiment_id == experiment_id), None)


#: No experiment applies.
NO_ASSIGNMENT: Final = Assignments()
#: The customer is in the global holdout.
HELD_OUT: Final = Assignments(holdout=True)


class Assigner:
    """Assignment over a fixed set of running experiments (rebuild it when the set changes)."""

    def __init__(self, experiments: Iterable[ExperimentSpec], holdout: Holdout | None = None) -> None:
        self.holdout = holdout or Holdout()
        by_layer: dict[str, list[ExperimentSpec]] = {}
        seen: set[str] = set()
        for spec in experiments:
            if spec.experiment_id in seen:
                raise ValueError(f"experiment {spec.experiment_id} given twice")
            seen.add(spec.experiment_id)
            layer = by_layer.setdefault(spec.layer, [])
            clash = next((other for other in layer if other.buckets.overlaps(spec.buckets)), None)
            if clash is not None:
                raise ValueError(
                    f"experiments {clash.experiment_id} and {spec.experiment_id} overlap "
                    f"in layer {spec.layer}"
                )
            layer.append(spec)
        self._layers = {
            name: (layer_salt(name), tuple(sorted(specs, key=lambda s: s.buckets.start)))
            for name, specs in sorted(by_layer.items())
        }

    @property
    def experiments(self) -> tuple[ExperimentSpec, ...]:
        return tuple(spec for _salt, specs in self._layers.values() for spec in specs)

    def in_holdout(self, customer_id: str) -> bool:
        return self.holdout.contains(customer_id)

    def eligible(self, customer_id: str, channel: str, segments: Iterable[str]) -> tuple[ExperimentSpec, ...]:
        """The experiments the customer takes part in for this request: at most one per layer, none
        for a held-out customer."""
        return () if self.holdout.contains(customer_id) else self._eligible(customer_id, channel, segments)

    def _eligible(
        self, customer_id: str, channel: str, segments: Iterable[str]
    ) -> tuple[ExperimentSpec, ...]:
        segment_set = frozenset(segments)
        chosen: list[ExperimentSpec] = []
        for salt, specs in self._layers.values():
            layer_bucket = bucket(salt, customer_id)
            spec = next((s for s in specs if s.buckets.contains(layer_bucket)), None)
            if spec is not None and spec.population.admits(channel, segment_set):
                chosen.append(spec)
        return tuple(chosen)

    def assign(
        self,
        customer_id: str,
        channel: str,
        segments: Iterable[str],
        stored: Mapping[str, str] | None = None,
    ) -> Assignments:
        """The customer's assignment for a request in ``channel``.

        ``stored`` maps experiment ids to the arm stored for the customer earlier; such an arm is
        kept whatever the weights say now (an arm no longer defined falls back to the hash).
        """
        if self.holdout.contains(customer_id):
            return HELD_OUT
        stored = stored or {}
        arms: list[Assignment] = []
        for spec in self._eligible(customer_id, channel, segments):
            kept = stored.get(spec.experiment_id)
            if kept is not None and kept in spec.arm_names:
                arms.append(Assignment(spec.experiment_id, kept, spec.layer, stored=True))
            else:
                arms.append(Assignment(spec.experiment_id, spec.hashed_arm(customer_id), spec.layer))
        return Assignments(holdout=False, arms=tuple(arms)) if arms else NO_ASSIGNMENT
