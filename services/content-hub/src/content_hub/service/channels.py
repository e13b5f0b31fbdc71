"""What each channel's variant holds, which of its fields the customer sees, and their length limits."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

#: Channels whose text the customer reads themselves (the agent script is read out by an agent).
CUSTOMER_FACING: Final[tuple[str, ...]] = ("app", "mini_program", "push", "sms")

#: Maximum rendered length, in characters, of the customer-visible fields of each channel.
#: Push titles and bodies are what lock screens show without truncation; banners fit the home slot.
FIELD_LIMITS: Final[Mapping[str, Mapping[str, int]]] = {
    "app": {"title": 20, "subtitle": 40},
    "mini_program": {"title": 20, "description": 60},
    "push": {"title": 20, "body": 60},
}

#: One SMS segment: 70 characters *including* the signature and the opt-out instruction.
SMS_LIMIT: Final = 70

#: Fields that are links or asset ids, not text: never screened, never filled.
NON_TEXT_FIELDS: Final[frozenset[str]] = frozenset({"image_ref", "deep_link", "page_path"})


def text_fields(channel: str, variant: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field path, text)`` for every text of a variant, in reading order.

    Objection answers are addressed as ``objection_answers[0].answer``.
    """
    for name, value in variant.items():
        if name in NON_TEXT_FIELDS or value is None:
            continue
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, list):
            for i, item in enumerate(value):
                for key in ("objection", "answer"):
                    text = item.get(key) if isinstance(item, Mapping) else None
                    if isinstance(text, str):
                        yield f"{name}[{i}].{key}", text
