"""pipeline.rank keeps arbitration per its inputs: every later request answers as a fresh one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from qianmian_core.memo import IdentityMemo
from qianmian_rules import CustomerFacts
from recommender.service import pipeline
from recommender.service.arbitration import ArbitrationConfig, BusinessLevers, Campaign
from recommender.service.candidates import Candidate
from recommender.service.pipeline import OfferParts, PipelineOutcome, rank
from recommender.service.policies import (
    CHANNELS,
    ContactPolicy,
    ContactState,
    CustomerContext,
    DecisionRequest,
    Mode,
)

from .test_candidates import CATALOGUE_SNAPSHOT as CANDIDATE_TEST_CATALOGUE

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

#: The bank's catalogue, every product risk-free and on every channel (so the policies keep most).
CATALOGUE_SNAPSHOT = MappingProxyType(
    {
        pid: replace(p, risk_rating=None, channels=frozenset(CHANNELS))
        for pid, p in CANDIDATE_TEST_CATALOGUE.items()
    }
)
#: Two products per type, so diversity, the limit and the no-repeat rule all have work to do.
CHOSEN = sorted(CATALOGUE_SNAPSHOT, key=lambda pid: (CATALOGUE_SNAPSHOT[pid].product_type, pid))[:12]
CANDIDATES = tuple(
    Candidate(pid, CATALOGUE_SNAPSHOT[pid].product_type, 1.0 - i / 20, ("cf:als",))
    for i, pid in enumerate(CHOSEN)
)
#: Allowed for FACTS: the best, a deposit a campaign lifts, and a card shown to the customer.
PAUSED, SPRING, SHOWN = "CL-CAR-01", "DEP-1Y-01", "CC-CAR-01"
PARTS = MappingProxyType({pid: OfferParts(True, None, None, None) for pid in CHOSEN})
CONFIG = ArbitrationConfig(
    levers=BusinessLevers(
        campaigns=(
            Campaign(
                campaign_id="spring",
                multiplier=5.0,
                product_ids=frozenset({SPRING}),
                starts_at=AT + timedelta(hours=1),
                ends_at=AT + timedelta(hours=3),
            ),
            Campaign(
                campaign_id="pause",
                multiplier=0.0,
                product_ids=frozenset({PAUSED}),
                starts_at=AT + timedelta(hours=2),
            ),
        )
    ),
    no_repeat_window=timedelta(hours=4),
)
FACTS = CustomerFacts(age=40, aum=100_000, region="310000", lifecycle_stage="active")


def _rank(at: datetime, shown: dict[str, datetime], limit: int, mode: Mode) -> PipelineOutcome:
    context = CustomerContext(FACTS, dict.fromkeys(CHANNELS, True), contact=ContactState(shown=shown))
    return rank(
        request=DecisionRequest("app", "home_banner", at),
        limit=limit,
        context=context,
        mode=mode,
        degraded=False,
        candidates=CANDIDATES,
        parts=PARTS,
        catalogue=CATALOGUE_SNAPSHOT,
        contact_policy=ContactPolicy(),
        arbitration=CONFIG,
    )


STEPS = [
    (AT, {}, 3, Mode.PERSONALISED),
    (AT + timedelta(minutes=30), {}, 3, Mode.PERSONALISED),
    (AT + timedelta(hours=1), {}, 3, Mode.PERSONALISED),  # the spring campaign starts
    (AT + timedelta(hours=2), {}, 3, Mode.PERSONALISED),  # the pause starts
    (AT + timedelta(hours=3), {}, 3, Mode.PERSONALISED),  # spring ends
    (AT + timedelta(hours=3), {SHOWN: AT + timedelta(hours=1)}, 3, Mode.PERSONALISED),
    (AT + timedelta(hours=5), {SHOWN: AT + timedelta(hours=1)}, 3, Mode.PERSONALISED),  # shown >4 h ago
    (AT + timedelta(hours=5), {}, 10, Mode.PERSONALISED),
    (AT + timedelta(hours=5), {SHOWN: AT + timedelta(hours=4)}, 10, Mode.NON_PERSONALISED),
    (AT, {}, 1, Mode.FALLBACK),
]


def test_arbitration_kept_per_input_answers_as_a_fresh_arbitration(monkeypatch: pytest.MonkeyPatch) -> None:
    kept = IdentityMemo[pipeline.ArbitrationResult](64)
    answers = []
    for at, shown, limit, mode in STEPS * 2:  # the second round answers from the memo
        monkeypatch.setattr(pipeline, "_ARBITRATION", kept)
        made = _rank(at, shown, limit, mode)
        monkeypatch.setattr(pipeline, "_ARBITRATION", IdentityMemo[pipeline.ArbitrationResult](64))
        fresh = _rank(at, shown, limit, mode)
        assert made.arbitration == fresh.arbitration
        answers.append(made.arbitration)
    assert answers[: len(STEPS)] == answers[len(STEPS) :]
    assert all(a is b for a, b in zip(answers[: len(STEPS)], answers[len(STEPS) :], strict=True))
    # The steps did change the answer: campaigns, the pause and the no-repeat window all showed.
    ranked = [[o.product_id for o in a.ranked] for a in answers[: len(STEPS)]]
    assert ranked[0] == ranked[1]
    assert ranked[2] != ranked[1]
    assert any(a.dropped.get(PAUSED) == "lever_suppressed" for a in answers)
    assert answers[5].dropped.get(SHOWN) == "recently_shown"
    assert SHOWN not in answers[6].dropped or answers[6].dropped[SHOWN] != "recently_shown"
    assert all(o.lever == 1.0 and not o.campaigns for o in answers[8].ranked)  # non-personalised
    assert SPRING in [o.product_id for o in answers[2].ranked][:2]
