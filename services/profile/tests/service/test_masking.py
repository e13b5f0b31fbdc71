"""Identifiers are returned masked, and a value the patterns miss is hidden entirely."""

from __future__ import annotations

from profile_service.models import CustomerPii
from profile_service.service.masking import masked_pii


def test_masks_each_identifier() -> None:
    row = CustomerPii(
        customer_id="C000000001",
        name="张三丰",
        mobile="13812345678",
        id_number="110101199003071234",
        card_number="6222021234567890123",
    )
    masked = masked_pii(row)
    assert masked.model_dump() == {
        "name": "张**",
        "mobile": "138****5678",
        "id_number": "110101********1234",
        "card_number": "6222 **** **** 0123",
    }


def test_malformed_identifiers_are_hidden_not_leaked() -> None:
    row = CustomerPii(
        customer_id="C000000001", name="李", mobile="555-0100", id_number="ABC123", card_number="12"
    )
    masked = masked_pii(row)
    assert masked.name == "*"
    assert masked.mobile == "********"
    assert masked.id_number == "******"
    assert masked.card_number == "**"
