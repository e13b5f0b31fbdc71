"""Deterministic assignment: stable across channels and restarts, splits within ±1 pp of the weights
over 100,000 customers, sticky when weights change, layers exclusive, holdout honoured."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from recommender.experiments.assignment import (
    BUCKETS,
    Arm,
    Assigner,
    BucketRange,
    ExperimentSpec,
    Holdout,
    Population,
    allocate_range,
    arm_bounds,
    arm_for_bucket,
    bucket,
)

CUSTOMERS = [f"C{n:09d}" for n in range(100_000)]
CHANNELS = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")
NO_HOLDOUT = Holdout(share=0.0)


def _spec(
    experiment_id: str = "exp_a",
    weights: tuple[float, ...] = (50, 50),
    *,
    layer: str = "ranking",
    buckets: BucketRange = BucketRange(0, BUCKETS),
    population: Population | None = None,
) -> ExperimentSpec:
    names = ["control", "treatment", "third", "fourth"]
    return ExperimentSpec(
        experiment_id=experiment_id,
        salt=experiment_id,
        layer=layer,
        buckets=buckets,
        arms=tuple(Arm(names[i], w) for i, w in enumerate(weights)),
        population=population or Population(),
    )


def test_bucket_is_sha256_of_salt_and_customer() -> None:
    import hashlib

    digest = hashlib.sha256(b"exp_a:C000000001").digest()
    assert bucket("exp_a", "C000000001") == int.from_bytes(digest[:8], "big") % BUCKETS
    assert bucket("exp_a", "C000000001") != bucket("exp_b", "C000000001")


def test_same_arm_in_every_channel_and_after_a_restart() -> None:
    spec = _spec(weights=(1, 1, 1))
    first = Assigner([spec], NO_HOLDOUT)
    restarted = Assigner([_spec(weights=(1, 1, 1))], NO_HOLDOUT)  # a fresh process, rebuilt definitions
    for customer in CUSTOMERS[:2000]:
        arms = {first.assign(customer, channel, ["payroll"]).arm_of("exp_a") for channel in CHANNELS}
        assert len(arms) == 1
        assert restarted.assign(customer, "push", ["payroll"]).arm_of("exp_a") == arms.pop()


@pytest.mark.parametrize("weights", [(50, 50), (10, 90), (1, 1, 1), (70, 20, 10), (0.25, 0.25, 0.5)])
def test_split_over_100000_customers_is_within_one_point_of_the_weights(weights: tuple[float, ...]) -> None:
    spec = _spec(weights=weights)
    counts = Counter(spec.hashed_arm(c) for c in CUSTOMERS)
    total = sum(weights)
    for arm, weight in zip(spec.arms, weights, strict=True):
        assert abs(counts[arm.name] / len(CUSTOMERS) - weight / total) < 0.01, (arm.name, counts)


def test_stored_arms_are_kept_when_weights_change_and_new_customers_follow_the_new_weights() -> None:
    before = Assigner([_spec(weights=(50, 50))], NO_HOLDOUT)
    early = CUSTOMERS[:10_000]
    stored = {c: before.assign(c, "app", []).arm_of("exp_a") for c in early}
    after = Assigner([_spec(weights=(10, 90))], NO_HOLDOUT)
    moved = 0
    for customer, arm in stored.items():
        assert arm is not None
        kept = after.assign(customer, "app", [], stored={"exp_a": arm})
        assert kept.arm_of("exp_a") == arm
        assert kept.arms[0].stored
        moved += after.assign(customer, "app", []).arm_of("exp_a") != arm
    assert moved > 3000  # without the stored arm, ~40 % of them would have switched
    late = Counter(after.assign(c, "app", []).arm_of("exp_a") for c in CUSTOMERS[10_000:50_000])
    assert abs(late["treatment"] / 40_000 - 0.9) < 0.01


def test_experiments_of_one_layer_never_share_a_customer_and_other_layers_overlap() -> None:
    specs = [
        _spec("exp_a", buckets=BucketRange(0, 3000)),
        _spec("exp_b", buckets=BucketRange(3000, 5000)),
        _spec("exp_c", buckets=BucketRange(7000, 10_000)),
        _spec("exp_other_layer", layer="content"),
    ]
    assigner = Assigner(specs, NO_HOLDOUT)
    per_experiment: Counter[str] = Counter()
    for customer in CUSTOMERS[:30_000]:
        got = assigner.assign(customer, "app", [])
        ranking = [a for a in got.arms if a.layer == "ranking"]
        assert len(ranking) <= 1
        assert got.arm_of("exp_other_layer") is not None  # the other layer takes everyone
        per_experiment.update(a.experiment_id for a in ranking)
    # Each takes its share of the layer; 20 % of the layer (5000..7000) is free.
    assert abs(per_experiment["exp_a"] / 30_000 - 0.3) < 0.01
    assert abs(per_experiment["exp_b"] / 30_000 - 0.2) < 0.01
    assert abs(per_experiment["exp_c"] / 30_000 - 0.3) < 0.01


def test_overlapping_ranges_in_one_layer_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Assigner(
            [_spec("exp_a", buckets=BucketRange(0, 5000)), _spec("exp_b", buckets=BucketRange(4999, 6000))]
        )
    # The same range in different layers is fine.
    Assigner([_spec("exp_a"), _spec("exp_b", layer="content")])


def test_holdout_customers_get_no_arm_and_the_share_is_within_one_point() -> None:
    holdout = Holdout(salt="qianmian-global-holdout-v1", share=0.05)
    assigner = Assigner([_spec(), _spec("exp_content", layer="content")], holdout)
    held = sum(holdout.contains(c) for c in CUSTOMERS)
    assert abs(held / len(CUSTOMERS) - 0.05) < 0.01
    for customer in CUSTOMERS[:20_000]:
        got = assigner.assign(customer, "app", ["wealth"], stored={"exp_a": "treatment"})
        if holdout.contains(customer):
            assert got.holdout
            assert got.arms == ()  # not even a stored arm
        else:
            assert not got.holdout
            assert len(got.arms) == 2
    # The holdout is the same whatever the experiments: a property of the customer alone.
    assert {c for c in CUSTOMERS[:5000] if Assigner([], holdout).in_holdout(c)} == {
        c for c in CUSTOMERS[:5000] if holdout.contains(c)
    }


def test_population_filters_segments_and_channels_but_never_changes_the_arm() -> None:
    population = Population(segments=frozenset({"wealth", "payroll"}), channels=frozenset({"app", "push"}))
    assigner = Assigner([_spec(population=population)], NO_HOLDOUT)
    for customer in CUSTOMERS[:500]:
        app = assigner.assign(customer, "app", ["wealth", "long_tail"]).arm_of("exp_a")
        assert app is not None
        assert assigner.assign(customer, "push", ["payroll"]).arm_of("exp_a") == app
        assert assigner.assign(customer, "sms", ["wealth"]).arms == ()  # channel outside
        assert assigner.assign(customer, "app", ["long_tail"]).arms == ()  # segment outside


def test_allocate_range_first_fit() -> None:
    assert allocate_range(3000, []) == BucketRange(0, 3000)
    taken = [BucketRange(0, 3000), BucketRange(5000, 8000)]
    assert allocate_range(2000, taken) == BucketRange(3000, 5000)
    assert allocate_range(2001, taken) is None  # neither gap (3000..5000, 8000..10000) is wide enough
    assert allocate_range(2000, [*taken, BucketRange(3000, 5000)]) == BucketRange(8000, 10_000)
    assert allocate_range(1, [BucketRange(0, BUCKETS)]) is None


def test_zero_weight_arm_gets_no_new_customers() -> None:
    arms = (Arm("control", 0), Arm("treatment", 1))
    assert arm_bounds(arms) == (0, BUCKETS)
    assert {arm_for_bucket(arms, b) for b in range(0, BUCKETS, 7)} == {"treatment"}
    with pytest.raises(ValueError, match="positive"):
        arm_bounds((Arm("a", 0), Arm("b", 0)))


@given(
    weights=st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), min_size=1, max_size=6).filter(
        lambda w: sum(w) > 0
    )
)
def test_arm_ranges_tile_the_buckets(weights: list[float]) -> None:
    arms = tuple(Arm(f"a{i}", w) for i, w in enumerate(weights))
    bounds = arm_bounds(arms)
    assert list(bounds) == sorted(bounds)
    assert bounds[-1] == BUCKETS
    total = sum(weights)
    for i, arm in enumerate(arms):
        width = bounds[i] - (bounds[i - 1] if i else 0)
        assert abs(width - BUCKETS * arm.weight / total) <= 1
