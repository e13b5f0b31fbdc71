"""Ids we make: hex, time-ordered where asked, never read as a personal identifier."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from qianmian_core import ids
from qianmian_core.masking import mask_text

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_time_ordered_ids_sort_by_creation_and_do_not_repeat() -> None:
    made = []
    for _ in range(5):
        made.append(ids.time_ordered_hex())
        time.sleep(0.002)
    assert all(HEX32.match(i) for i in made)
    assert made == sorted(made)
    assert int(made[0][:12], 16) == pytest.approx(time.time() * 1000, abs=60_000)
    assert len({ids.time_ordered_hex() for _ in range(10_000)}) == 10_000


def test_random_ids_are_uuid4_hex() -> None:
    made = {ids.random_hex() for _ in range(10_000)}
    assert len(made) == 10_000
    assert all(HEX32.match(i) and i[12] == "4" for i in made)


def test_an_id_that_reads_like_an_identifier_is_drawn_again() -> None:
    draws: Iterator[str] = iter(["a13812345678b", "a1416839429044293b5ec", "abc"])
    assert mask_text("a13812345678b") != "a13812345678b"  # a mobile number inside
    assert ids.mask_safe(lambda: next(draws)) == "abc"


def test_an_id_that_never_comes_out_clean_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="personal identifiers"):
        ids.mask_safe(lambda: "x13812345678x")
