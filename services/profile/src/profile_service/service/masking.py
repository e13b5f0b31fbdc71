"""Masking of the identifiers in ``customer_pii`` for reads; a value the patterns miss is fully hidden."""

from __future__ import annotations

from collections.abc import Callable

from qianmian_core.masking import mask_card_number, mask_id_number, mask_mobile, mask_name

from profile_service.models import CustomerPii
from profile_service.schemas import MaskedPii


def _mask_or_hide(value: str, mask: Callable[[str], str]) -> str:
    masked = mask(value)
    # A malformed identifier does not match the masking pattern; it must still never leave unmasked.
    return masked if masked != value else "*" * len(value)


def masked_pii(row: CustomerPii) -> MaskedPii:
    """Identifiers as the API may show them: 张**, 138****5678, 110101********1234, 6222 **** **** 0123."""
    return MaskedPii(
        name=_mask_or_hide(row.name, mask_name),
        mobile=_mask_or_hide(row.mobile, mask_mobile),
        id_number=_mask_or_hide(row.id_number, mask_id_number),
        card_number=_mask_or_hide(row.card_number, mask_card_number),
    )
