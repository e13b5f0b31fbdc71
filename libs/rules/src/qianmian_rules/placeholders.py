"""Placeholders: the allowlist, parsing ``{name}`` in templates, and filling them.

Only non-sensitive values may ever be filled in: a salutation chosen by segment, the segment's name,
and product facts. Names, phone numbers, ID or card numbers are not available to content-hub at all,
so a template asking for them is a screening finding, never a render-time surprise.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

#: Every placeholder a template may use.
ALLOWED_PLACEHOLDERS: Final[frozenset[str]] = frozenset(
    {"salutation", "segment_name", "product_name", "rate", "term_days"}
)
#: Placeholders that come from the product (catalogue) rather than the customer.
PRODUCT_PLACEHOLDERS: Final[frozenset[str]] = frozenset({"product_name", "rate", "term_days"})
#: Personal data a template must never ask for (PIPL: content carries no personal identifiers).
SENSITIVE_PLACEHOLDERS: Final[frozenset[str]] = frozenset(
    {
        "name",
        "full_name",
        "first_name",
        "last_name",
        "customer_name",
        "surname",
        "mobile",
        "phone",
        "phone_number",
        "id_number",
        "id_card",
        "card_number",
        "account_number",
        "bank_card",
        "address",
        "email",
        "birthday",
        "birth_date",
        "age",
        "income",
        "aum",
        "balance",
    }
)

NEUTRAL_SALUTATION: Final = "尊敬的客户"
NEUTRAL_SEGMENT_NAME: Final = "本行"

#: Segment -> its customer-facing name, in the order a salutation prefers them.
SEGMENT_NAMES: Final[Mapping[str, str]] = {
    "wealth": "财富",
    "credit_card": "信用卡",
    "payroll": "代发",
    "mortgage": "按揭",
    "social_security": "社保卡",
}

_TOKEN = re.compile(r"\{([^{}]*)\}")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_BRACES = frozenset("{}｛｝")


@dataclass(frozen=True, slots=True)
class PlaceholderUse:
    """A ``{name}`` in a template at ``[start, end)``; ``name`` is None when the braces are malformed."""

    name: str | None
    start: int
    end: int
    raw: str


def scan(template: str) -> Iterator[PlaceholderUse]:
    """Every placeholder and every stray or full-width brace of a template, in order."""
    covered: set[int] = set()
    uses: list[PlaceholderUse] = []
    for match in _TOKEN.finditer(template):
        name = match.group(1)
        uses.append(
            PlaceholderUse(
                name if _IDENTIFIER.match(name) else None, match.start(), match.end(), match.group()
            )
        )
        covered.update(range(match.start(), match.end()))
    for i, char in enumerate(template):
        if char in _BRACES and i not in covered:
            uses.append(PlaceholderUse(None, i, i + 1, char))
    yield from sorted(uses, key=lambda use: use.start)


def fill(template: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """The template with every known placeholder filled, and the names that had no value."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        missing.append(name)
        return match.group()

    return _TOKEN.sub(replace, template), missing


def segment_for(customer_segments: Collection[str], targeted: Collection[str]) -> str | None:
    """The segment a salutation speaks to: a targeted one the customer is in, else their most valuable."""
    for segment in SEGMENT_NAMES:
        if segment in customer_segments and segment in targeted:
            return segment
    for segment in SEGMENT_NAMES:
        if segment in customer_segments:
            return segment
    return None


def customer_values(
    customer_segments: Collection[str] | None, lifecycle_stage: str | None, targeted: Collection[str]
) -> dict[str, str]:
    """Salutation and segment name for a customer; neutral ones when nothing (or nobody) is known."""
    if customer_segments is None:
        return {"salutation": NEUTRAL_SALUTATION, "segment_name": NEUTRAL_SEGMENT_NAME}
    segment = segment_for(customer_segments, targeted)
    if segment is not None:
        name = SEGMENT_NAMES[segment]
        return {"salutation": f"尊敬的{name}客户", "segment_name": name}
    if lifecycle_stage == "new":
        return {"salutation": "尊敬的新客户", "segment_name": NEUTRAL_SEGMENT_NAME}
    return {"salutation": NEUTRAL_SALUTATION, "segment_name": NEUTRAL_SEGMENT_NAME}


def longest_customer_values() -> dict[str, str]:
    """The longest value each customer placeholder can take: screening checks lengths against these."""
    salutations = [NEUTRAL_SALUTATION, "尊敬的新客户", *(f"尊敬的{n}客户" for n in SEGMENT_NAMES.values())]
    names = [NEUTRAL_SEGMENT_NAME, *SEGMENT_NAMES.values()]
    return {"salutation": max(salutations, key=len), "segment_name": max(names, key=len)}


def product_values(name: str, attributes: Mapping[str, object]) -> dict[str, str]:
    """The product placeholders' values: its name, its rate (or expected yield) and its term."""
    values = {"product_name": name}
    rate = attributes.get("rate", attributes.get("expected_yield"))
    if isinstance(rate, int | float):
        values["rate"] = f"{rate * 100:.2f}%"
    term = attributes.get("term_days")
    if isinstance(term, int):
        values["term_days"] = str(term)
    return values
