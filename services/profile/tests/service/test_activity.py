"""The customer_activity feature row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from profile_service.service.activity import ACTIVITY_COLUMNS, ContactFact, MomentFact, activity_row

AS_OF = datetime(2025, 6, 15, tzinfo=UTC)


def test_windows_and_last_moment() -> None:
    d = lambda n: AS_OF - timedelta(days=n)  # noqa: E731
    moments = [
        MomentFact("app_login", d(1)),
        MomentFact("app_login", d(10)),
        MomentFact("card_bill", d(0.5)),
        MomentFact("birthday", d(40)),
    ]
    contacts = [
        ContactFact("impression", d(1)),
        ContactFact("impression", d(20)),
        ContactFact("click", d(2)),
        ContactFact("click", d(31)),
        ContactFact("convert", d(25)),
        ContactFact("dismiss", d(1)),
        ContactFact("impression", AS_OF + timedelta(days=1)),
    ]
    row = activity_row("C000000001", moments, contacts, AS_OF)
    assert set(row) == set(ACTIVITY_COLUMNS)
    assert (
        row["impressions_7d"],
        row["impressions_30d"],
        row["clicks_7d"],
        row["clicks_30d"],
        row["purchases_30d"],
    ) == (1, 2, 1, 1, 1)
    assert (row["moments_7d"], row["moments_30d"], row["logins_7d"]) == (2, 3, 1)
    assert row["last_moment_type"] == "card_bill"
    assert row["last_moment_ts"] == int(d(0.5).timestamp())


def test_no_activity() -> None:
    row = activity_row("C000000001", [], [], AS_OF)
    assert row["last_moment_type"] == ""
    assert row["last_moment_ts"] == 0
    assert row["moments_30d"] == 0
