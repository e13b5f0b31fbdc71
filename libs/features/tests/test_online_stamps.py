"""How the direct reader reads a SQLite online row's event_ts cell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from qianmian_features.online import _parse_stamp, _whole_seconds

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "cell",
    [
        int(NOON.timestamp()),  # what Feast's adapter writes
        str(int(NOON.timestamp())),
        str(int(NOON.timestamp())).encode(),
        "2026-11-24 12:00:00",  # naive ISO text: UTC
        "2026-11-24T20:00:00+08:00",
    ],
)
def test_cells_read_as_the_same_utc_moment(cell: object) -> None:
    assert _parse_stamp(cell) == NOON
    assert _parse_stamp(cell).tzinfo is not None  # type: ignore[union-attr]


def test_no_cell_is_no_moment_and_fractions_are_dropped_as_the_sdk_drops_them() -> None:
    assert _parse_stamp(None) is None
    assert _whole_seconds(None) is None
    assert _whole_seconds(NOON + timedelta(milliseconds=900)) == NOON
    assert _whole_seconds(datetime(1970, 1, 1, tzinfo=UTC)) is None  # the SDK's 0: no row
