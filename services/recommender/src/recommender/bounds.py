"""How many entries the decision path's memos keep.

The memos (a customer's candidate set, its offer parts, policy verdicts, audit entries, feature
snapshot, ranker rescoring …) each hold what one warm customer-channel's decisions share, and drop
their oldest entry beyond their bound. Served in turn, more customer-channels than the bound evict
each entry just before it is needed again, and then every memo misses: the bound must cover the
customer-channels a replica serves within the caches' lifetimes (feature and ranker caches: 300 s).

Measured in the decision benchmark's loop (10,000 customer-channels served in turn, one worker):
a bound of 10,000 gave 875 req/s, 40,000 gave 1,019 req/s; 1.18 GB resident with the 10,000 held.
"""

from __future__ import annotations

from typing import Final

#: Customer-channels each per-customer memo keeps (about 110 KB each over all memos: ~2.2 GB at the
#: bound; the chart's memory limit leaves room for it).
WARM_ENTRIES: Final = 20_000
