"""Masking of personal identifiers: Chinese mobile numbers, resident ID numbers, bank card numbers.

Applied to every log line and to every customer-facing read of a profile. Masking is deliberately
greedy: a 16-19 digit run is masked whether or not it passes the Luhn check, because a false
positive costs a less readable log line and a false negative is a privacy breach.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

# 18-character resident identity number: 6-digit area, birth date, 3-digit sequence, check char.
_ID_RE = re.compile(
    r"(?<![0-9A-Za-z])(\d{6})(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}([\dXx])(?![0-9A-Za-z])"
)
# Bank card numbers: 16-19 digits, optionally grouped by spaces or dashes.
_CARD_RE = re.compile(r"(?<![\d])(\d{4})(?:[ -]?\d){8,11}([ -]?\d{4})(?![\d])")
# Mainland mobile numbers: 11 digits starting 13-19, optionally with +86 / 86 prefix.
_MOBILE_RE = re.compile(r"(?<!\d)((?:\+?86[ -]?)?1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask_id_number(value: str) -> str:
    """``110101199003071234`` -> ``110101********1234``."""
    return _ID_RE.sub(lambda m: f"{m.group(1)}********{m.group(0)[-4:]}", value)


def mask_card_number(value: str) -> str:
    """``6222021234567890123`` -> ``6222 **** **** 0123`` (first 4 and last 4 kept)."""
    return _CARD_RE.sub(lambda m: f"{m.group(1)} **** **** {m.group(0)[-4:]}", value)


def mask_mobile(value: str) -> str:
    """``13812345678`` -> ``138****5678``."""
    return _MOBILE_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", value)


# Every pattern above needs at least 11 digits, at most one separator apart: text without such a run
# cannot hold an identifier and skips the three substitutions.
_ANY_RE = re.compile(r"\d(?:[ -]?\d){10}")


def mask_text(value: str) -> str:
    """Mask every identifier in free text; ID numbers first, since they contain digit runs."""
    if _ANY_RE.search(value) is None:
        return value
    return mask_mobile(mask_card_number(mask_id_number(value)))


def mask_name(value: str) -> str:
    """``张三丰`` -> ``张**``; ``Li Lei`` -> ``L*****``."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)


def mask_value(value: Any, keep: Callable[[dict[Any, Any]], bool] | None = None) -> Any:
    """Recursively mask strings inside dicts, lists and tuples; a dict ``keep`` accepts is left as it
    is (e.g. a reference whose id is no free text)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        if keep is not None and keep(value):
            return value
        return {k: mask_value(v, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_value(v, keep) for v in value)
    return value


#: Types that hold no text (the common leaves of a record, skipped first).
_LEAVES: frozenset[type] = frozenset({float, int, bool, type(None)})


@functools.lru_cache(maxsize=4096)
def _masks(text: str) -> bool:
    # Text with a long digit run that is no identifier (a model version's timestamp, an account-free
    # reference) recurs in record after record: the three substitutions run once per distinct text.
    return mask_text(text) != text


#: Texts already found to hold no identifier (a record's product ids, codes, names and content
#: recur in record after record: a lookup instead of a regex search). Emptied when full.
_CLEAN: dict[str, None] = {}
_CLEAN_MAX = 100_000


def contains_identifier(value: Any, keep: Callable[[dict[Any, Any]], bool] | None = None) -> bool:
    """Whether :func:`mask_value` (with the same ``keep``) would change ``value``: a string inside it,
    outside the dicts ``keep`` accepts, holds an identifier.

    Reads without copying (an explicit stack, no recursion), so a caller that encodes large records
    pays for :func:`mask_value`'s rebuild only when something must be masked.
    """
    stack = [value]
    pop, extend, search, clean = stack.pop, stack.extend, _ANY_RE.search, _CLEAN
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            if item in clean:
                continue
            if search(item) is not None and _masks(item):
                return True
            if len(clean) >= _CLEAN_MAX:
                clean.clear()
            clean[item] = None
        elif kind in _LEAVES:
            continue
        elif kind is dict:
            if keep is None or not keep(item):
                extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        elif isinstance(item, str):
            if mask_text(item) != item:
                return True
        elif isinstance(item, dict):
            if keep is None or not keep(item):
                extend(item.values())
        elif isinstance(item, list | tuple):
            extend(item)
    return False
