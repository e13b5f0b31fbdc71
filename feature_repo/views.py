"""Feature views: typed columns of each source, and how long a value stays usable.

The TTL bounds point-in-time joins offline and materialisation windows. Feast does not
apply it to online reads; ``qianmian_features.check_freshness`` does that on every read.
"""

from datetime import timedelta

from entities import customer, product
from feast import FeatureView, Field
from feast.types import Float64, Int64, String
from qianmian_rules import CHANNELS, SEGMENTS
from sources import customer_activity_push, customer_profile_source, product_stats_source

CONSENT_CHANNELS = CHANNELS

# Monthly snapshots: 62 days keeps the previous month-end usable until the next arrives.
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=62),
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="age_band", dtype=String),
        Field(name="city_tier", dtype=Int64),
        Field(name="region", dtype=String),
        *[Field(name=f"seg_{segment}", dtype=Int64) for segment in SEGMENTS],
        Field(name="aum", dtype=Float64),
        Field(name="deposits", dtype=Float64),
        Field(name="loans", dtype=Float64),
        Field(name="lifecycle_stage", dtype=String),
        Field(name="tenure_months", dtype=Int64),
        Field(name="risk_level", dtype=Int64, description="1-5; 0 = never assessed"),
        Field(name="risk_expires_ts", dtype=Int64, description="epoch seconds; 0 = none"),
        *[Field(name=f"consent_{channel}", dtype=Int64) for channel in CONSENT_CHANNELS],
        Field(name="personalised_opt_out", dtype=Int64, description="PIPL art. 24 opt-out"),
    ],
    source=customer_profile_source,
    online=True,
    tags={"owner": "profile", "cadence": "monthly"},
)

# Weekly snapshots plus pushes from the services between snapshots.
customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=14),
    schema=[
        Field(name="impressions_7d", dtype=Int64),
        Field(name="impressions_30d", dtype=Int64),
        Field(name="clicks_7d", dtype=Int64),
        Field(name="clicks_30d", dtype=Int64),
        Field(name="purchases_30d", dtype=Int64),
        Field(name="moments_7d", dtype=Int64),
        Field(name="moments_30d", dtype=Int64),
        Field(name="logins_7d", dtype=Int64),
        Field(name="last_moment_type", dtype=String, description='"" = none'),
        Field(name="last_moment_ts", dtype=Int64, description="epoch seconds; 0 = none"),
    ],
    source=customer_activity_push,
    online=True,
    tags={"owner": "profile", "cadence": "weekly+push"},
)

product_stats = FeatureView(
    name="product_stats",
    entities=[product],
    ttl=timedelta(days=14),
    schema=[
        Field(name="popularity_30d", dtype=Float64),
        Field(name="conversion_30d", dtype=Float64),
        *[Field(name=f"pop_{segment}_30d", dtype=Float64) for segment in SEGMENTS],
        *[Field(name=f"conv_{segment}_30d", dtype=Float64) for segment in SEGMENTS],
    ],
    source=product_stats_source,
    online=True,
    tags={"owner": "recommender", "cadence": "weekly"},
)
