"""Identifiers we make: random hex (UUID4) and hex that sorts by creation time, never mistaken for
a personal identifier.

Records and logs mask free text that reads like a mobile, resident ID or card number
(``qianmian_core.masking``). Hex drawn at random holds such a run of decimal digits now and then (a
UUID4 has 16 digits in a row about once in a few thousand), and a masked id no longer refers to its
row: an id that would be masked is drawn again.

A random primary key lands each new row on a random page of its index, so a transaction that inserts
a batch dirties one page per row for that index alone, and SQLite writes every dirty page to its log
at commit. :func:`time_ordered_hex` starts with the time (48 bits of milliseconds, the layout of
UUIDv7) followed by 80 random bits: new rows land at the end of the index, as with a sequence, and the
id stays unguessable.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Final

from qianmian_core.masking import mask_text

#: Draws before giving up (each is refused with a probability well under 1 %).
MAX_DRAWS: Final = 64


def mask_safe(draw: Callable[[], str]) -> str:
    """The first id ``draw`` gives that masking leaves as it is."""
    for _ in range(MAX_DRAWS):
        made = draw()
        if mask_text(made) == made:
            return made
    raise RuntimeError(f"{MAX_DRAWS} ids in a row read like personal identifiers")


def random_hex() -> str:
    """32 lowercase hex digits of a UUID4 that masking leaves as they are."""
    return mask_safe(lambda: uuid.uuid4().hex)


def time_ordered_hex() -> str:
    """32 lowercase hex digits: the current time in milliseconds (12 digits), then 80 random bits;
    ids made later sort after (to the millisecond); masking leaves them as they are."""
    stamp = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    return mask_safe(lambda: stamp + os.urandom(10).hex())
