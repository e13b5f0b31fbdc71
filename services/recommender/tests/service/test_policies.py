"""The policy stage: every reason code on a worked example, then properties over random inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qianmian_rules import (
    LIFECYCLE_STAGES,
    PRODUCT_TYPES,
    SEGMENTS,
    CustomerFacts,
    EligibilityRules,
    check_eligibility,
    check_suitability,
)
from recommender.repository.audit import RULE_ORDER, expand_verdict
from recommender.service.policies import (
    CHANNELS,
    CandidateProduct,
    ContactPolicy,
    ContactRecord,
    ContactState,
    CustomerContext,
    DecisionRequest,
    GlobalPopularity,
    Mode,
    PolicyMemo,
    evaluate_policies,
    rank,
    rank_non_personalised,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2025, 6, 30, 12, 0, tzinfo=SHANGHAI)
ALL_CONSENTS = dict.fromkeys(CHANNELS, True)


def facts(**overrides: object) -> CustomerFacts:
    values: dict[str, object] = {
        "age": 40,
        "aum": 200_000.0,
        "region": "310000",
        "segments": frozenset({"payroll"}),
        "lifecycle_stage": "active",
        "risk_level": 3,
        "risk_expires_at": NOON + timedelta(days=200),
    }
    return CustomerFacts.model_validate(values | overrides)


def product(product_id: str = "P1", **overrides: object) -> CandidateProduct:
    values: dict[str, object] = {
        "product_id": product_id,
        "product_type": "fund",
        "risk_rating": 2,
        "eligibility": EligibilityRules(),
        "channels": frozenset(CHANNELS),
    }
    return CandidateProduct(**(values | overrides))  # type: ignore[arg-type]


def context(**overrides: object) -> CustomerContext:
    values: dict[str, object] = {"facts": facts(), "consents": ALL_CONSENTS}
    return CustomerContext(**(values | overrides))  # type: ignore[arg-type]


def codes(
    candidate: CandidateProduct, ctx: CustomerContext, channel: str = "app", at: datetime = NOON
) -> set[str]:
    result = evaluate_policies(
        [candidate], ctx, DecisionRequest(channel=channel, placement="home_banner", at=at)
    )
    (verdict,) = result.verdicts
    return set(verdict.reason_codes)


def contacts(*spec: tuple[str, timedelta]) -> ContactState:
    return ContactState(contacts=tuple(ContactRecord(channel=c, at=NOON - ago) for c, ago in spec))


def test_a_suitable_eligible_product_passes_every_rule_in_order() -> None:
    result = evaluate_policies([product()], context(), DecisionRequest("app", "home_banner", NOON))
    (verdict,) = result.verdicts
    assert verdict.allowed
    assert verdict.reason_codes == ()
    assert [o.rule for o in verdict.outcomes] == [
        "eligibility", "suitability", "holdings", "channel", "consent", "quiet_hours", "contact_cap",
        "cooldown", "content", "right",
    ]  # fmt: skip
    assert result.mode is Mode.PERSONALISED


@pytest.mark.parametrize(
    ("customer", "rating", "expected"),
    [
        (facts(risk_level=None, risk_expires_at=None), 1, "suitability_risk_assessment_missing"),
        (facts(risk_expires_at=NOON - timedelta(seconds=1)), 1, "suitability_risk_assessment_expired"),
        (facts(risk_level=2), 3, "suitability_risk_level_too_low"),
    ],
)
def test_suitability_codes(customer: CustomerFacts, rating: int, expected: str) -> None:
    assert codes(product(risk_rating=rating), context(facts=customer)) == {expected}
    # Unrated products (deposits, cards) are always suitable.
    assert codes(product(risk_rating=None), context(facts=customer)) == set()


def test_eligibility_held_channel_consent_content_codes() -> None:
    assert codes(product(eligibility=EligibilityRules(min_aum=1e6)), context()) == {"aum_below_min"}
    held = context(facts=facts(held_product_ids=frozenset({"P1"})))
    assert codes(product(), held) == {"already_held"}
    assert codes(product(channels=frozenset({"app"})), context(), channel="sms") == {"channel_not_allowed"}
    assert codes(product(), context(consents={"app": True}), channel="sms") == {"consent_refused"}
    assert codes(product(), context(consents={}), channel="app") == {"consent_refused"}
    assert codes(product(content_approved=False), context()) == {"content_not_approved"}


def test_an_unaffordable_right_drops_the_right_but_keeps_the_product() -> None:
    result = evaluate_policies(
        [product(right_affordable=False)], context(), DecisionRequest("app", "x", NOON)
    )
    (verdict,) = result.verdicts
    assert verdict.reason_codes == ("right_unaffordable",)
    assert verdict.allowed
    assert not verdict.offer_right


@pytest.mark.parametrize(
    ("local_time", "channel", "quiet"),
    [
        ((20, 59), "push", False),
        ((21, 0), "push", True),
        ((23, 30), "sms", True),
        ((7, 59), "remote_agent", True),
        ((8, 0), "remote_agent", False),
        ((23, 30), "app", False),  # in-app placements are not outbound contacts
    ],
)
def test_quiet_hours_are_21_to_08_shanghai_for_push_sms_and_calls(
    local_time: tuple[int, int], channel: str, quiet: bool
) -> None:
    at = datetime(2025, 6, 30, *local_time, tzinfo=SHANGHAI).astimezone(UTC)  # any zone in, Shanghai applies
    assert ("quiet_hours" in codes(product(), context(), channel=channel, at=at)) is quiet


@pytest.mark.parametrize(
    ("history", "channel", "expected"),
    [
        ([("app", timedelta(hours=h)) for h in (1, 2, 3)], "app", {"cap_daily_channel"}),
        ([("app", timedelta(hours=h)) for h in (1, 2, 25)], "app", set()),  # sliding 24 h window
        ([("app", timedelta(hours=h)) for h in (1, 2, 3)], "mini_program", set()),  # per channel
        (
            [(CHANNELS[i % 2], timedelta(hours=12 * i + 1)) for i in range(10)],
            "online_rm",
            {"cap_weekly_all"},
        ),
        ([("push", timedelta(days=6))], "push", {"cap_weekly_push"}),
        ([("push", timedelta(days=7, seconds=1))], "push", set()),
        ([("remote_agent", timedelta(days=29))], "remote_agent", {"cap_agent_30d"}),
        ([("remote_agent", timedelta(days=31))], "remote_agent", set()),
    ],
)
def test_contact_caps_over_sliding_windows(
    history: list[tuple[str, timedelta]], channel: str, expected: set[str]
) -> None:
    assert codes(product(), context(contact=contacts(*history)), channel=channel) == expected


CHANNEL_NAMES = ["app", "mini_program", "push", "sms", "remote_agent", "online_rm"]


@given(
    st.lists(
        st.tuples(st.sampled_from(CHANNEL_NAMES), st.integers(min_value=0, max_value=40 * 24 * 60)),
        max_size=30,
    )
)
def test_a_cap_counts_the_decisions_inside_its_window_and_channels(history: list[tuple[str, int]]) -> None:
    state = contacts(*[(channel, timedelta(minutes=minutes)) for channel, minutes in history])
    for cap in ContactPolicy().caps():
        since = NOON - cap.window
        expected = sum(
            1 for c in state.contacts if c.at > since and (cap.channels is None or c.channel in cap.channels)
        )
        assert state.count(cap, NOON) == expected, cap.code


def test_a_dismissed_product_cools_down_for_seven_days() -> None:
    state = ContactState(cooldowns={"P1": NOON + timedelta(days=6)})
    assert codes(product("P1"), context(contact=state)) == {"cooldown_dismissed"}
    assert codes(product("P2"), context(contact=state)) == set()
    ended = ContactState(cooldowns={"P1": NOON})
    assert codes(product("P1"), context(contact=ended)) == set()
    assert ContactPolicy().dismiss_cooldown == timedelta(days=7)


def test_the_policy_is_configurable_and_refuses_nonsense() -> None:
    loose = ContactPolicy(daily_per_channel=5)
    history = contacts(*[("app", timedelta(hours=h)) for h in (1, 2, 3)])
    request = DecisionRequest("app", "home_banner", NOON)
    assert evaluate_policies([product()], context(contact=history), request, loose).allowed
    with pytest.raises(ValueError, match="unknown channels"):
        ContactPolicy(quiet_channels=frozenset({"pigeon"}))
    with pytest.raises(ValueError, match="time zone"):
        DecisionRequest("app", "home_banner", datetime(2025, 6, 30, 12))


def test_opt_out_means_non_personalised_and_wins_over_degraded() -> None:
    request = DecisionRequest("app", "home_banner", NOON)
    assert evaluate_policies([], context(personalised_opt_out=True), request).mode is Mode.NON_PERSONALISED
    assert evaluate_policies([], context(), request, degraded=True).mode is Mode.FALLBACK
    opted = evaluate_policies([], context(personalised_opt_out=True), request, degraded=True)
    assert opted.mode is Mode.NON_PERSONALISED


def test_non_personalised_ranking_is_popularity_then_id() -> None:
    request = DecisionRequest("app", "home_banner", NOON)
    candidates = [product(p) for p in ("A", "B", "C", "D")]
    result = evaluate_policies(candidates, context(personalised_opt_out=True), request)
    popularity = GlobalPopularity({"A": 0.1, "B": 0.5, "C": 0.5})
    assert rank_non_personalised(result.allowed, popularity, 3) == ["B", "C", "A"]
    assert rank(result, popularity=popularity, model_scores={"D": 99.0}, limit=3) == ["B", "C", "A"]


# --- properties --------------------------------------------------------------------------------

REGIONS = ("310000", "110000", "440300")
policies = st.builds(
    ContactPolicy,
    daily_per_channel=st.integers(0, 4),
    weekly_all_channels=st.integers(0, 12),
    weekly_push=st.integers(0, 2),
    agent_calls_30d=st.integers(0, 2),
    dismiss_cooldown=st.sampled_from([timedelta(days=7), timedelta(days=1)]),
)
times = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC))


@st.composite
def customer_facts(draw: st.DrawFn, at: datetime) -> CustomerFacts:
    risk = draw(st.none() | st.integers(1, 5))
    # Now and then an assessment without an expiry date: it must count as missing.
    no_expiry = risk is None or draw(st.integers(0, 9)) == 0
    expires = None if no_expiry else at + timedelta(days=draw(st.integers(-30, 400)))
    return CustomerFacts(
        age=draw(st.integers(18, 90)),
        aum=float(draw(st.integers(0, 3_000_000))),
        region=draw(st.sampled_from(REGIONS)),
        segments=frozenset(draw(st.sets(st.sampled_from(SEGMENTS), max_size=3))),
        lifecycle_stage=draw(st.sampled_from(LIFECYCLE_STAGES)),
        held_product_ids=frozenset(draw(st.sets(st.sampled_from([f"P{i}" for i in range(12)]), max_size=3))),
        held_product_types=frozenset(draw(st.sets(st.sampled_from(PRODUCT_TYPES), max_size=2))),
        risk_level=risk,
        risk_expires_at=expires,
    )


@st.composite
def rules(draw: st.DrawFn) -> EligibilityRules:
    min_aum = draw(st.none() | st.sampled_from([0.0, 50_000.0, 1_000_000.0]))
    return EligibilityRules(
        min_aum=min_aum,
        min_age=draw(st.none() | st.integers(18, 60)),
        segments=tuple(draw(st.sets(st.sampled_from(SEGMENTS), max_size=2))),
        regions=tuple(draw(st.sets(st.sampled_from(REGIONS), max_size=2))),
        excluded_holdings=tuple(draw(st.sets(st.sampled_from(PRODUCT_TYPES), max_size=1))),
    )


@st.composite
def catalogues(draw: st.DrawFn) -> list[CandidateProduct]:
    ids = draw(st.lists(st.integers(0, 11), min_size=1, max_size=8, unique=True))
    return [
        CandidateProduct(
            product_id=f"P{i}",
            product_type=draw(st.sampled_from(PRODUCT_TYPES)),
            risk_rating=draw(st.none() | st.integers(1, 5)),
            eligibility=draw(rules()),
            channels=frozenset(draw(st.sets(st.sampled_from(CHANNELS), min_size=1))),
            value=draw(st.floats(0.1, 10)),
            content_approved=draw(st.booleans()),
            right_affordable=draw(st.none() | st.booleans()),
        )
        for i in ids
    ]


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[CandidateProduct], CustomerContext, DecisionRequest, ContactPolicy, bool]:
    at = draw(times)
    history = tuple(
        ContactRecord(
            channel=draw(st.sampled_from(CHANNELS)),
            at=at - timedelta(minutes=draw(st.integers(1, 45 * 1440))),
        )
        for _ in range(draw(st.integers(0, 14)))
    )
    cooldowns = {
        f"P{i}": at + timedelta(hours=draw(st.integers(-48, 24 * 7)))
        for i in draw(st.sets(st.integers(0, 11), max_size=4))
    }
    ctx = CustomerContext(
        facts=draw(customer_facts(at)),
        consents={c: draw(st.booleans()) for c in draw(st.sets(st.sampled_from(CHANNELS)))},
        personalised_opt_out=draw(st.booleans()),
        contact=ContactState(contacts=history, cooldowns=cooldowns),
    )
    request = DecisionRequest(channel=draw(st.sampled_from(CHANNELS)), placement="home_banner", at=at)
    return draw(catalogues()), ctx, request, draw(policies), draw(st.booleans())


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_no_allowed_product_breaks_any_rule_in_any_mode(
    scenario: tuple[list[CandidateProduct], CustomerContext, DecisionRequest, ContactPolicy, bool],
) -> None:
    candidates, ctx, request, policy, degraded = scenario
    result = evaluate_policies(candidates, ctx, request, policy, degraded=degraded)
    assert len(result.verdicts) == len(candidates)
    local_hour = request.at.astimezone(SHANGHAI).hour
    for verdict in result.allowed:
        p = verdict.product
        # Recomputed independently of the engine, from the rule library and the raw history.
        assert check_suitability(p.risk_rating, ctx.facts, request.at) == []
        assert check_eligibility(p.eligibility, ctx.facts) == []
        assert p.product_id not in ctx.facts.held_product_ids
        assert request.channel in p.channels
        assert ctx.consents.get(request.channel) is True
        assert p.content_approved
        until = ctx.contact.cooldowns.get(p.product_id)
        assert until is None or until <= request.at
        if request.channel in {"push", "sms", "remote_agent"}:
            assert 8 <= local_hour < 21
        for cap in policy.caps_for(request.channel):
            since = request.at - cap.window
            used = sum(1 for c in ctx.contact.contacts if c.at > since and cap.applies_to(c.channel))
            assert used + 1 <= cap.limit, cap.code  # serving this one stays within the cap
        assert verdict.offer_right == (p.right_affordable is True)
    # Every removed candidate says why.
    for verdict in result.verdicts:
        assert verdict.allowed or verdict.reason_codes


@PROPERTY
@given(scenarios())
def test_the_stored_verdict_reads_back_as_every_rule_outcome(
    scenario: tuple[list[CandidateProduct], CustomerContext, DecisionRequest, ContactPolicy, bool],
) -> None:
    """The audit log keeps only the failed rules (schema 2); read back, every outcome is there."""
    candidates, ctx, request, policy, degraded = scenario
    for verdict in evaluate_policies(candidates, ctx, request, policy, degraded=degraded).verdicts:
        assert tuple(o.rule for o in verdict.outcomes) == RULE_ORDER
        stored = orjson.loads(orjson.dumps(verdict.stored_json()))
        assert expand_verdict(stored) == orjson.loads(orjson.dumps(verdict.as_json()))


@PROPERTY
@given(
    scenarios(),
    st.dictionaries(st.sampled_from([f"P{i}" for i in range(12)]), st.floats(0, 1)),
    st.dictionaries(st.sampled_from([f"P{i}" for i in range(12)]), st.floats(0, 1)),
    st.dictionaries(st.sampled_from([f"P{i}" for i in range(12)]), st.floats(0, 1)),
)
def test_non_personalised_output_never_depends_on_profile_or_model(
    scenario: tuple[list[CandidateProduct], CustomerContext, DecisionRequest, ContactPolicy, bool],
    popularity: dict[str, float],
    scores_a: dict[str, float],
    scores_b: dict[str, float],
) -> None:
    candidates, ctx, request, policy, degraded = scenario
    opted = CustomerContext(ctx.facts, ctx.consents, personalised_opt_out=True, contact=ctx.contact)
    result = evaluate_policies(candidates, opted, request, policy, degraded=degraded)
    assert result.mode is Mode.NON_PERSONALISED
    pop = GlobalPopularity(popularity)
    first = rank(result, popularity=pop, model_scores=scores_a, limit=5)
    assert first == rank(result, popularity=pop, model_scores=scores_b, limit=5)
    # Which products pass depends on the rules; their order is popularity only (then id).
    expected = sorted((v.product.product_id for v in result.allowed), key=lambda i: (-pop.of(i), i))[:5]
    assert first == expected


@st.composite
def later_requests(
    draw: st.DrawFn,
    first: tuple[list[CandidateProduct], CustomerContext, DecisionRequest, ContactPolicy, bool],
) -> list[tuple[CustomerContext, DecisionRequest, bool]]:
    """The same customer (facts object) and candidates asked again: later or earlier, on other
    channels, with other consents, history, cool-downs, opt-out and degradation, or unchanged."""
    candidates, ctx, request, _, degraded = first
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):  # unchanged apart from time: the memo must answer
            at = request.at + timedelta(seconds=draw(st.integers(0, 120)))
            steps.append((ctx, DecisionRequest(request.channel, request.placement, at), degraded))
            continue
        at = request.at + timedelta(minutes=draw(st.integers(-400 * 1440, 400 * 1440)))
        cooldowns = {
            p.product_id: at + timedelta(hours=draw(st.integers(-48, 48)))
            for p in candidates
            if draw(st.booleans())
        }
        history = ctx.contact.contacts + tuple(
            ContactRecord(draw(st.sampled_from(CHANNELS)), at - timedelta(minutes=draw(st.integers(1, 9000))))
            for _ in range(draw(st.integers(0, 6)))
        )
        later = CustomerContext(
            facts=ctx.facts,
            consents={c: draw(st.booleans()) for c in draw(st.sets(st.sampled_from(CHANNELS)))},
            personalised_opt_out=draw(st.booleans()),
            contact=ContactState(contacts=history, cooldowns=cooldowns),
        )
        channel = draw(st.sampled_from(CHANNELS))
        steps.append((later, DecisionRequest(channel, "home_banner", at), draw(st.booleans())))
    return steps


@PROPERTY
@given(st.data())
def test_policy_memo_answers_as_a_fresh_evaluation(data: st.DataObject) -> None:
    """The memo keyed by candidate and facts objects plus ``inputs_key`` gives, for every later
    request of the same customer, exactly what evaluating every rule afresh gives."""
    first = data.draw(scenarios())
    candidates, ctx, request, policy, degraded = first
    memo = PolicyMemo(64)
    steps = [(ctx, request, degraded), *data.draw(later_requests(first))]
    views = tuple(candidates)
    for step_ctx, step_request, step_degraded in steps:
        kept = memo.evaluate(views, step_ctx, step_request, policy, degraded=step_degraded)
        fresh = evaluate_policies(candidates, step_ctx, step_request, policy, degraded=step_degraded)
        assert kept == fresh


def test_policy_memo_makes_verdicts_once_per_distinct_input() -> None:
    candidates = (product("P1"), product("P2", risk_rating=4))
    ctx = context()
    memo = PolicyMemo(16)
    first = memo.evaluate(candidates, ctx, DecisionRequest("app", "home_banner", NOON), ContactPolicy())
    again = memo.evaluate(
        candidates, ctx, DecisionRequest("app", "home_banner", NOON + timedelta(hours=1)), ContactPolicy()
    )
    assert again is first
    assert len(memo) == 1
    # Past the assessment's expiry the risk-rated products fail suitability: a new entry.
    expired = memo.evaluate(
        candidates, ctx, DecisionRequest("app", "home_banner", NOON + timedelta(days=201)), ContactPolicy()
    )
    assert expired is not first
    assert len(memo) == 2
    assert "suitability_risk_assessment_expired" in expired.verdicts[0].reason_codes
    # A cool-down that has started, then ended.
    cooling = CustomerContext(
        ctx.facts, ctx.consents, contact=ContactState(cooldowns={"P1": NOON + timedelta(days=1)})
    )
    cooled = memo.evaluate(candidates, cooling, DecisionRequest("app", "home_banner", NOON), ContactPolicy())
    assert cooled.verdicts[0].reason_codes == ("cooldown_dismissed",)
    ended = memo.evaluate(
        candidates, cooling, DecisionRequest("app", "home_banner", NOON + timedelta(days=2)), ContactPolicy()
    )
    assert ended is first
