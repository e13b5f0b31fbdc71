"""Entities: who and what the features describe.

Customer ids are pseudonymous (``C`` + 9 digits); product ids come from the bankgen
seed catalogue. Both are strings in every source and every request.
"""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A bank customer, by pseudonymous id (never a name, phone or card number).",
)

product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.STRING,
    description="A catalogue product (deposit, wealth, fund, insurance, loan, card ...).",
)
