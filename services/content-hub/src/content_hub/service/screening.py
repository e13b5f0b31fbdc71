"""Compliance screening: forbidden claims, the risk disclosure, placeholders and rendered lengths.

Forbidden claims are matched on a *normalised* copy of the text (NFKC, case-folded, with spaces,
punctuation, symbols, zero-width and other format characters removed), so ``稳 赚``, ``稳\u200b赚``,
``零·风·险`` and full-width ``１００％安全`` are caught. Every normalised character remembers its
position in the original, so a finding points at the text as the author wrote it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from content_hub.schemas import Finding
from content_hub.service.channels import CUSTOMER_FACING, FIELD_LIMITS, SMS_LIMIT, text_fields
from content_hub.service.placeholders import (
    ALLOWED_PLACEHOLDERS,
    SENSITIVE_PLACEHOLDERS,
    fill,
    longest_customer_values,
    scan,
)
from content_hub.service.products import ProductDirectory

#: R2..R5 products need the risk disclosure on every piece of content about them.
DISCLOSURE_FROM_RISK: Final = 2


def _ignorable(char: str) -> bool:
    # Separators (Z*), punctuation (P*), symbols (S*), controls/format incl. zero-width (C*) and
    # combining marks (M*) never change what a Chinese claim says, so they cannot hide one.
    return unicodedata.category(char)[0] in "ZPSCM"


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised text and, for each of its characters, the index of its source character."""

    text: str
    origin: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original ``[start, end)`` of the normalised ``[start, end)``."""
        return self.origin[start], self.origin[end - 1] + 1


def normalise(text: str) -> Normalised:
    """NFKC + casefold each character and drop the ignorable ones, keeping source positions."""
    chars: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        for out in unicodedata.normalize("NFKC", char).casefold():
            if not _ignorable(out):
                chars.append(out)
                origin.append(i)
    return Normalised("".join(chars), tuple(origin))


def _occurrences(haystack: str, needle: str) -> Iterable[int]:
    start = haystack.find(needle)
    while start != -1:
        yield start
        start = haystack.find(needle, start + 1)


@dataclass(frozen=True, slots=True)
class ScreeningRules:
    """The configurable part of screening (from settings)."""

    forbidden_claims: Sequence[str]
    claim_exceptions: Sequence[str] = ()
    risk_disclosures: Sequence[str] = ("理财非存款、产品有风险、投资须谨慎",)
    sms_signature: str = "【千面银行】"
    sms_opt_out: str = "拒收请回复R"


class Screener:
    """Applies every compliance rule to a version's variants (or to a free text)."""

    def __init__(self, rules: ScreeningRules, products: ProductDirectory) -> None:
        self.rules = rules
        self._products = products
        # Normalised claim -> the claim as configured (for messages), longest first.
        by_norm = {normalise(c).text: c for c in rules.forbidden_claims}
        self._claims = {n: by_norm[n] for n in sorted(by_norm, key=len, reverse=True) if n}
        self._exceptions = [n for n in (normalise(e).text for e in rules.claim_exceptions) if n]
        self._disclosures = [n for n in (normalise(d).text for d in rules.risk_disclosures) if n]

    # -- single rules ------------------------------------------------------------------------------

    def forbidden_claims(self, text: str, variant: str, field: str) -> list[Finding]:
        """Every forbidden claim in ``text``, longest first where claims overlap, outside exceptions."""
        norm = normalise(text)
        excused = [(s, s + len(e)) for e in self._exceptions for s in _occurrences(norm.text, e)]
        taken: list[tuple[int, int]] = []
        findings: list[Finding] = []
        for claim, configured in self._claims.items():  # longest first: 稳赚不赔 beats the 稳赚 in it
            for s in _occurrences(norm.text, claim):
                e = s + len(claim)
                if any(a <= s and e <= b for a, b in excused) or any(a <= s and e <= b for a, b in taken):
                    continue
                taken.append((s, e))
                start, end = norm.span(s, e)
                findings.append(
                    Finding(
                        variant=variant,
                        field=field,
                        rule="forbidden_claim",
                        matched=text[start:end],
                        start=start,
                        end=end,
                        message=f"forbidden claim {configured!r}: financial marketing may not promise this",
                    )
                )
        return sorted(findings, key=lambda f: f.start or 0)

    def has_disclosure(self, texts: Iterable[str]) -> bool:
        """True when the texts together hold one of the accepted risk disclosures."""
        joined = "".join(normalise(t).text for t in texts)
        return any(d in joined for d in self._disclosures)

    def placeholders(
        self, text: str, variant: str, field: str, available: Mapping[str, str]
    ) -> list[Finding]:
        """Malformed, sensitive, unknown and unfillable placeholders in one template."""
        findings = []
        for use in scan(text):
            if use.name is None:
                rule, message = "placeholder_malformed", "braces that do not form a {placeholder}"
            elif use.name in SENSITIVE_PLACEHOLDERS:
                rule, message = (
                    "placeholder_forbidden",
                    f"{{{use.name}}} is personal data content may not use",
                )
            elif use.name not in ALLOWED_PLACEHOLDERS:
                allowed = ", ".join(sorted(ALLOWED_PLACEHOLDERS))
                rule, message = "placeholder_unknown", f"unknown placeholder; allowed: {allowed}"
            elif use.name not in available:
                rule, message = "placeholder_unfillable", f"{{{use.name}}} has no value for this content"
            else:
                continue
            findings.append(
                Finding(
                    variant=variant,
                    field=field,
                    rule=rule,
                    matched=use.raw,
                    start=use.start,
                    end=use.end,
                    message=message,
                )
            )
        return findings

    # -- whole content -----------------------------------------------------------------------------

    def screen(
        self,
        *,
        product_id: str | None,
        variants: Mapping[str, Mapping[str, Any] | None],
        free_text: str | None = None,
    ) -> list[Finding]:
        """Every finding for this content; an empty list means it may go to review."""
        product = self._products.get(product_id) if product_id is not None else None
        # Unknown product: its risk cannot be checked, so it is treated as risky (fail safe).
        needs_disclosure = product_id is not None and (
            product is None or (product.risk_rating or 0) >= DISCLOSURE_FROM_RISK
        )
        available = {**longest_customer_values(), **(product.values if product else {})}
        findings: list[Finding] = []

        if free_text is not None:
            findings += self.forbidden_claims(free_text, "text", "text")
            findings += self.placeholders(free_text, "text", "text", available)
            if needs_disclosure and not self.has_disclosure([free_text]):
                findings.append(self._missing_disclosure("text", "text", product_id))

        for channel, variant in variants.items():
            if variant is None:
                continue
            fields = list(text_fields(channel, variant))
            for field, text in fields:
                findings += self.forbidden_claims(text, channel, field)
                findings += self.placeholders(text, channel, field, available)
            if needs_disclosure:
                if channel in CUSTOMER_FACING and not self.has_disclosure(t for _, t in fields):
                    findings.append(self._missing_disclosure(channel, "*", product_id))
                if channel == "remote_agent" and not self.has_disclosure([str(variant["risk_statement"])]):
                    findings.append(self._missing_disclosure(channel, "risk_statement", product_id))
            findings += self.lengths(channel, variant, available)
        return findings

    def lengths(self, channel: str, variant: Mapping[str, Any], values: Mapping[str, str]) -> list[Finding]:
        """Fields that, filled with ``values``, exceed their channel's limit."""
        findings = []
        for field, limit in FIELD_LIMITS.get(channel, {}).items():
            rendered, _ = fill(str(variant[field]), values)
            if len(rendered) > limit:
                findings.append(self._too_long(channel, field, len(rendered), limit))
        if channel == "sms":
            rendered = self.format_sms(fill(str(variant["text"]), values)[0])
            if len(rendered) > SMS_LIMIT:
                findings.append(self._too_long(channel, "text", len(rendered), SMS_LIMIT))
        return findings

    def format_sms(self, text: str) -> str:
        """The SMS as sent: signature, text, opt-out instruction."""
        if not self.rules.sms_opt_out:
            return f"{self.rules.sms_signature}{text}"
        # The opt-out starts its own sentence.
        stop = "" if text and unicodedata.category(text[-1])[0] == "P" else "。"
        return f"{self.rules.sms_signature}{text}{stop}{self.rules.sms_opt_out}"

    @staticmethod
    def _too_long(channel: str, field: str, length: int, limit: int) -> Finding:
        return Finding(
            variant=channel,
            field=field,
            rule="length_exceeded",
            matched=None,
            start=limit,
            end=length,
            message=f"{length} characters once filled in (longest values), limit {limit}",
        )

    def _missing_disclosure(self, variant: str, field: str, product_id: str | None) -> Finding:
        return Finding(
            variant=variant,
            field=field,
            rule="risk_disclosure_missing",
            matched=None,
            start=None,
            end=None,
            message=(
                f"content about {product_id} (R2-R5 or unknown risk) must carry the risk disclosure "
                f"{self.rules.risk_disclosures[0]!r}"
            ),
        )
