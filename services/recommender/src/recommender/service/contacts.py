"""Contact slots, feedback and cool-downs: the transactions around ``ContactRepository``."""

from __future__ import annotations

from datetime import datetime

from qianmian_core.db import Database

from recommender.repository.contacts import ContactRepository, Reservation
from recommender.service.policies import ContactPolicy, ContactRecord, ContactState


class ContactService:
    """Exact contact caps under the bank's :class:`ContactPolicy`."""

    def __init__(self, database: Database, policy: ContactPolicy | None = None) -> None:
        self.database = database
        self.policy = policy or ContactPolicy()

    def reserve(
        self, customer_id: str, channel: str, at: datetime, *, decision_id: str, product_id: str | None = None
    ) -> Reservation:
        """Take a contact slot for one decision, atomically against every cap of ``channel``."""
        with self.database.session() as session:
            return ContactRepository(session).reserve(
                customer_id,
                channel,
                at,
                self.policy.caps_for(channel),
                decision_id=decision_id,
                product_id=product_id,
            )

    def dismissed(
        self, customer_id: str, channel: str, product_id: str, at: datetime, *, decision_id: str | None
    ) -> datetime:
        """Record a dismiss and start the product's cool-down; returns when the cool-down ends."""
        until = at + self.policy.dismiss_cooldown
        with self.database.session() as session:
            repository = ContactRepository(session)
            repository.record(
                customer_id, channel, "dismiss", at, product_id=product_id, decision_id=decision_id
            )
            repository.start_cooldown(
                customer_id, product_id, until, reason="dismissed", decision_id=decision_id
            )
        return until

    def state(self, customer_id: str, at: datetime) -> ContactState:
        """The customer's contact snapshot the policies read (the reservation re-checks it exactly)."""
        with self.database.session() as session:
            since = at - self.policy.longest_window()
            window = ContactRepository(session).contact_windows([customer_id], since, at)[customer_id]
        return ContactState(
            contacts=tuple(ContactRecord(channel=c, at=t) for c, t in window.decisions),
            cooldowns=window.cooldowns,
            shown=window.shown,
        )
