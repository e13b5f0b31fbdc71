"""The decision path's in-memory view of each customer's contact history and cool-downs.

The policies need a customer's recent decisions (for the caps) and running cool-downs before they
rank anything. Reading them from the database for every decision cost a transaction per request
(about a quarter of a decision's CPU on SQLite). The ledger keeps them in memory instead:

- a customer's first decision loads the window from the database (one query);
- every group commit of the audit log settles its decisions' contact slots against the database
  (:meth:`recommender.repository.contacts.ContactRepository.settle`, exact under row locks) and hands
  back each customer's window as stored: :meth:`ContactLedger.remember` keeps it;
- a feedback that starts a cool-down makes the ledger :meth:`~ContactLedger.forget` the customer;
- an impression reported through feedback is noted (:meth:`~ContactLedger.shown`) for the no-repeat
  rule (another replica's impressions arrive with the next load, at most ``ttl_s`` later: the
  no-repeat rule is a courtesy, not a cap).

The ledger is only the first look, never the last word: a slot is granted only by the settlement in
the database, which re-counts every cap and re-checks the offered products' cool-downs in the same
transaction as the audit record. So a ledger that lags behind another replica can make a decision
answer ``contact_cap`` late or be made again (a cool-down it missed), never breach a rule.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from qianmian_core.db import Database

from recommender.repository.contacts import ContactRepository, ContactWindow
from recommender.service.policies import ContactPolicy, ContactRecord, ContactState

#: Customers whose contact window the ledger keeps (about 0.5 KB each).
DEFAULT_MAX_CUSTOMERS: Final = 200_000
#: A window not refreshed by a settlement for this long is read again from the database.
DEFAULT_TTL_S: Final = 300.0


@dataclass(slots=True)
class _Entry:
    window: ContactWindow
    loaded: float


class ContactLedger:
    """Per-customer contact windows in memory, loaded on first use and refreshed by settlements."""

    def __init__(
        self,
        database: Database,
        policy: ContactPolicy,
        *,
        max_customers: int = DEFAULT_MAX_CUSTOMERS,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_customers < 1 or ttl_s < 0:
            raise ValueError("max_customers must be >= 1 and ttl_s >= 0")
        self.database = database
        self.policy = policy
        self.max_customers = max_customers
        self.ttl_s = ttl_s
        self.clock = clock
        self._longest = policy.longest_window()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.loads = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def state(self, customer_id: str, at: datetime) -> ContactState:
        """The customer's decisions within the longest cap window before ``at`` and the cool-downs
        running at ``at``; read from the database when not held (raises SQLAlchemy's errors)."""
        entry = self._entries.get(customer_id)
        if entry is None or self.clock() - entry.loaded > self.ttl_s:
            window = await asyncio.to_thread(self._load, customer_id, at)
            self.remember(customer_id, window)
            entry = self._entries[customer_id]
        else:
            self._entries.move_to_end(customer_id)
        since = at - self._longest
        return ContactState(
            contacts=tuple([ContactRecord(c, t) for c, t in entry.window.decisions if t > since]),
            cooldowns={p: until for p, until in entry.window.cooldowns.items() if until > at},
            shown=dict(entry.window.shown),
        )

    def shown(self, customer_id: str, product_id: str, at: datetime) -> None:
        """Note an impression of ``product_id`` (when the customer's window is held)."""
        entry = self._entries.get(customer_id)
        if entry is not None:
            last = entry.window.shown.get(product_id)
            if last is None or at > last:
                entry.window.shown[product_id] = at

    def remember(self, customer_id: str, window: ContactWindow) -> None:
        """Keep ``window`` as the customer's contact state (as stored by a settlement or a read)."""
        self._entries[customer_id] = _Entry(window, self.clock())
        self._entries.move_to_end(customer_id)
        while len(self._entries) > self.max_customers:
            self._entries.popitem(last=False)

    def forget(self, customer_id: str) -> None:
        """Drop what is held for the customer: the next decision reads the database."""
        self._entries.pop(customer_id, None)

    def _load(self, customer_id: str, at: datetime) -> ContactWindow:
        self.loads += 1
        with self.database.session() as session:
            windows = ContactRepository(session).contact_windows([customer_id], at - self._longest, at)
        return windows[customer_id]


__all__ = ["DEFAULT_MAX_CUSTOMERS", "DEFAULT_TTL_S", "ContactLedger"]
