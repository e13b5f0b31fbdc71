"""Candidate generation with small trained models from the registry (ALS warm, LightFM cold)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_rules import MOMENT_TYPES
from recommender.ml.data import TrainingData
from recommender.ml.models import ALSRecommender, LightFMHybrid, SegmentPopularityRecommender
from recommender.ml.registry import ModelRegistry
from recommender.service.candidates import (
    MOMENT_RULES,
    CandidateGenerator,
    CustomerSignals,
    SegmentPopularity,
    moment_candidates,
    non_personalised_candidates,
)
from recommender.service.holder import ModelHolder
from recommender.service.hub_cache import CatalogueProduct
from recommender.service.policies import GlobalPopularity, Mode

AT = datetime(2025, 7, 1, 10, 0, tzinfo=UTC)


def _catalogue() -> dict[str, CatalogueProduct]:
    return {
        p.product_id: CatalogueProduct(
            product_id=p.product_id,
            name=p.name,
            name_en=p.name_en,
            product_type=p.product_type,
            risk_rating=p.risk_rating,
            eligibility=p.eligibility,
            channels=frozenset(p.channels),
            sale_start=None,
            sale_end=None,
            quota=None,
            sold=0,
            margin_rate=p.margin_rate,
            value=p.value,
            attributes=MappingProxyType(
                {k: list(v) if isinstance(v, tuple) else v for k, v in p.attributes.items()}
            ),
        )
        for p in CATALOGUE
    }


CATALOGUE_SNAPSHOT = _catalogue()


def _holder(model: object, data: TrainingData, tmp_path: Path) -> ModelHolder:
    registry = ModelRegistry(tmp_path)
    manifest = registry.register(model, data_window={})  # type: ignore[arg-type]
    registry.approve(manifest.version)
    holder = ModelHolder(registry, list(data.products.ids))
    holder.reload()
    return holder


@pytest.fixture(scope="module")
def popularity(data: TrainingData) -> SegmentPopularity:
    return SegmentPopularity.from_model(SegmentPopularityRecommender().fit(data))


@pytest.fixture(scope="module")
def als(data: TrainingData) -> ALSRecommender:
    return ALSRecommender(factors=8, iterations=3, num_threads=1).fit(data)


def test_warm_customer_gets_cf_candidates_with_sources(
    als: ALSRecommender, data: TrainingData, popularity: SegmentPopularity, tmp_path: Path
) -> None:
    holder = _holder(als, data, tmp_path)
    generator = CandidateGenerator(holder, popularity)
    customer = data.customers.ids[0]
    result = generator.generate(
        CustomerSignals(customer, segments=frozenset({"payroll"}), moment="salary_credited"),
        CATALOGUE_SNAPSHOT,
        mode=Mode.PERSONALISED,
        at=AT,
    )
    assert result.model_version == holder.require().manifest.version
    assert result.cf_skipped is None
    sources = {s for c in result.candidates for s in c.sources}
    assert {"cf:als", "moment:salary_credited", "popularity:segment"} <= sources
    assert all(0.0 <= c.score <= 1.0 for c in result.candidates)
    keys = [(-c.score, c.product_id) for c in result.candidates]
    assert keys == sorted(keys)
    payroll = next(c for c in result.candidates if c.product_id == "PAY-CARD-01")
    assert "moment_salary_payroll_bundle" in payroll.reason_codes
    # the model's own top-k (seen products excluded) is what the cf source contributes
    (top,) = als.recommend([customer], 30)
    cf_ids = {c.product_id for c in result.candidates if "cf:als" in c.sources}
    assert cf_ids <= {p for p, _ in top}


def test_cold_customer_gets_cf_only_from_lightfm(
    als: ALSRecommender, data: TrainingData, popularity: SegmentPopularity, tmp_path: Path
) -> None:
    cold = CustomerSignals("C999999999", segments=frozenset({"wealth"}), tokens=("segment=wealth",))
    result = CandidateGenerator(_holder(als, data, tmp_path / "als"), popularity).generate(
        cold, CATALOGUE_SNAPSHOT, mode=Mode.PERSONALISED, at=AT
    )
    assert result.cf_skipped == "cold_customer"
    assert result.candidates
    assert all(c.sources == ("popularity:segment",) for c in result.candidates)

    lightfm = LightFMHybrid(no_components=8, epochs=2, num_threads=1).fit(data)
    result = CandidateGenerator(_holder(lightfm, data, tmp_path / "lfm"), popularity).generate(
        cold, CATALOGUE_SNAPSHOT, mode=Mode.PERSONALISED, at=AT
    )
    assert result.cf_skipped is None
    assert any("cf:lightfm" in c.sources for c in result.candidates)


def test_no_model_and_fallback_mode_use_rules_and_popularity(popularity: SegmentPopularity) -> None:
    generator = CandidateGenerator(None, popularity)
    signals = CustomerSignals("C1", segments=frozenset({"credit_card"}), moment="card_bill")
    for mode, skipped in ((Mode.PERSONALISED, "model_unavailable"), (Mode.FALLBACK, "fallback_mode")):
        result = generator.generate(signals, CATALOGUE_SNAPSHOT, mode=mode, at=AT)
        assert result.cf_skipped == skipped
        assert result.model_version is None
        assert not any(s.startswith("cf:") for c in result.candidates for s in c.sources)
        bill = next(c for c in result.candidates if c.product_id == "CL-BILL-01")
        assert bill.moment == "card_bill"
        assert bill.reason_codes == ("moment_card_bill_instalment",)


def test_non_personalised_uses_global_popularity_only(popularity: SegmentPopularity) -> None:
    generator = CandidateGenerator(None, popularity)
    a = generator.generate(
        CustomerSignals("C1", segments=frozenset({"wealth"}), tokens=("segment=wealth",), moment="birthday"),
        CATALOGUE_SNAPSHOT,
        mode=Mode.NON_PERSONALISED,
        at=AT,
    )
    b = generator.generate(CustomerSignals("C2"), CATALOGUE_SNAPSHOT, mode=Mode.NON_PERSONALISED, at=AT)
    assert a == b  # nothing about the customer changes the answer
    assert a.candidates == non_personalised_candidates(CATALOGUE_SNAPSHOT, popularity.overall, at=AT)
    assert all(c.sources == ("popularity:global",) and not c.reason_codes for c in a.candidates)
    assert {c.product_id for c in a.candidates} == set(CATALOGUE_SNAPSHOT)


def test_products_off_sale_are_never_candidates(popularity: SegmentPopularity) -> None:
    snapshot = dict(CATALOGUE_SNAPSHOT)
    gone = snapshot["DEP-1Y-01"]
    from dataclasses import replace

    snapshot["DEP-1Y-01"] = replace(gone, sale_end=AT - timedelta(days=1))
    result = CandidateGenerator(None, popularity).generate(
        CustomerSignals("C1", moment="deposit_maturing"), snapshot, mode=Mode.PERSONALISED, at=AT
    )
    assert "DEP-1Y-01" not in {c.product_id for c in result.candidates}
    empty = non_personalised_candidates(snapshot, GlobalPopularity({}), at=AT)
    assert "DEP-1Y-01" not in {c.product_id for c in empty}


@pytest.mark.parametrize(
    ("moment", "expected_types"),
    [
        ("deposit_maturing", {"deposit", "wealth_management", "structured_deposit"}),
        ("wealth_maturing", {"deposit", "wealth_management", "structured_deposit"}),
        ("salary_credited", {"payroll_service", "deposit", "fund", "wealth_management", "consumer_loan"}),
        ("large_inbound_transfer", {"wealth_management", "structured_deposit"}),
        ("card_bill", {"consumer_loan"}),
        ("aum_drop", {"deposit"}),
        ("birthday", {"insurance"}),
        ("app_login", set()),
    ],
)
def test_moment_rule_table(moment: str, expected_types: set[str]) -> None:
    selected = moment_candidates(moment, CATALOGUE_SNAPSHOT)
    assert {p.product_type for p, _ in selected} == expected_types
    if moment == "aum_drop":
        assert all(rule.right_type == "rate_boost" for _, rule in selected)


def test_every_rule_has_a_known_moment() -> None:
    assert {r.moment.value for r in MOMENT_RULES} == set(MOMENT_TYPES) - {"app_login"}


def test_cf_scores_keep_their_order_when_every_raw_score_is_negative() -> None:
    from recommender.service.candidates import CF_SCORE_FLOOR, _cf_scaled

    scaled = dict(_cf_scaled([("A", -0.5), ("B", -2.0), ("C", -1.0), ("D", float("nan"))]))
    assert scaled == pytest.approx(
        {"A": 1.0, "B": CF_SCORE_FLOOR, "C": CF_SCORE_FLOOR + (1 - CF_SCORE_FLOOR) * 2 / 3}
    )
    assert dict(_cf_scaled([("A", 3.0), ("B", 3.0)])) == {"A": 1.0, "B": 1.0}


def test_a_customers_candidates_are_made_once_until_an_input_changes(
    als: ALSRecommender, data: TrainingData, popularity: SegmentPopularity, tmp_path: Path
) -> None:
    """Generation is kept per customer signals, mode, products on sale, catalogue and model; a change
    of any of them (time moving past a sale's end included) makes the candidates again."""
    holder = _holder(als, data, tmp_path)
    generator = CandidateGenerator(holder, popularity)
    signals = CustomerSignals(data.customers.ids[0], segments=frozenset({"payroll"}))
    first = generator.generate(signals, CATALOGUE_SNAPSHOT, mode=Mode.PERSONALISED, at=AT)
    again = generator.generate(
        signals, CATALOGUE_SNAPSHOT, mode=Mode.PERSONALISED, at=AT + timedelta(hours=1)
    )
    assert again is first
    # Another moment, mode, or customer: made anew.
    moment = CustomerSignals(signals.customer_id, signals.segments, moment="salary_credited")
    assert generator.generate(moment, CATALOGUE_SNAPSHOT, mode=Mode.PERSONALISED, at=AT) is not first
    fallback = generator.generate(signals, CATALOGUE_SNAPSHOT, mode=Mode.FALLBACK, at=AT)
    assert fallback is not first
    assert fallback.cf_skipped == "fallback_mode"
    # A product whose sale ends: before the end the same answer, after it one without the product.
    ending = first.candidates[0].product_id
    catalogue = dict(CATALOGUE_SNAPSHOT)
    catalogue[ending] = replace(catalogue[ending], sale_end=AT + timedelta(days=1))
    before = generator.generate(signals, catalogue, mode=Mode.PERSONALISED, at=AT)
    assert before is not first  # another catalogue snapshot
    assert [c.product_id for c in before.candidates] == [c.product_id for c in first.candidates]
    assert (
        generator.generate(signals, catalogue, mode=Mode.PERSONALISED, at=AT + timedelta(hours=2)) is before
    )
    after = generator.generate(signals, catalogue, mode=Mode.PERSONALISED, at=AT + timedelta(days=1))
    assert ending not in {c.product_id for c in after.candidates}
    # A new model: made anew, with its version.
    holder2 = _holder(ALSRecommender(factors=8, iterations=3, num_threads=1).fit(data), data, tmp_path / "v2")
    generator.holder = holder2
    newer = generator.generate(signals, CATALOGUE_SNAPSHOT, mode=Mode.PERSONALISED, at=AT)
    assert newer is not first
    assert newer.model_version == holder2.require().manifest.version


def test_a_catalogue_snapshots_sale_set_is_kept_per_window_epoch(popularity: SegmentPopularity) -> None:
    """For a hub-cache snapshot (a read-only mapping) the products on sale are worked out once per
    epoch of its sale windows, and the non-personalised candidates once per sale set: at every moment
    they equal what the catalogue says, start inclusive and end exclusive."""
    base = dict(CATALOGUE_SNAPSHOT)
    starting, ending = sorted(base)[:2]
    base[starting] = replace(base[starting], sale_start=AT + timedelta(hours=1))
    base[ending] = replace(base[ending], sale_end=AT + timedelta(hours=2))
    snapshot = MappingProxyType(base)
    generator = CandidateGenerator(None, popularity)
    seen = {}
    for minutes in (0, 30, 59, 60, 61, 119, 120, 121, 600):
        at = AT + timedelta(minutes=minutes)
        expected = {pid for pid, p in base.items() if p.on_sale(at)}
        made = generator.generate(CustomerSignals("C1"), snapshot, mode=Mode.NON_PERSONALISED, at=at)
        assert {c.product_id for c in made.candidates} == expected
        assert made.candidates == non_personalised_candidates(base, popularity.overall, at=at)
        personal = generator.generate(
            CustomerSignals("C1", moment="deposit_maturing"), snapshot, mode=Mode.PERSONALISED, at=at
        )
        assert {c.product_id for c in personal.candidates} <= expected
        seen.setdefault(frozenset(expected), made)
        assert made is seen[frozenset(expected)]  # one set per epoch, shared by every customer
    assert (starting in {c.product_id for c in seen[max(seen, key=len)].candidates}) is True
    assert len(seen) == 3  # before the start, between start and end, after the end
    other = generator.generate(CustomerSignals("C2"), snapshot, mode=Mode.NON_PERSONALISED, at=AT)
    assert other is seen[frozenset(p for p in base if base[p].on_sale(AT))]
