from __future__ import annotations

from product_hub.schemas import TransitionRequest
from product_hub.service import ProductFilter, ProductService
from product_hub.service.seed import SEED_APPROVER, SEED_AUTHOR, seed_catalogue
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.db import Database


class NoFacts:
    async def facts_for(self, customer_id: str) -> object:
        raise AssertionError("seeding must not ask for customer facts")


def test_seed_activates_the_whole_catalogue_once(database_url: str) -> None:
    database = Database(database_url)
    service = ProductService(database, NoFacts())  # type: ignore[arg-type]
    first = seed_catalogue(service, CATALOGUE)
    assert (first.created, first.activated, first.unchanged) == (len(CATALOGUE), len(CATALOGUE), 0)

    active = service.query(ProductFilter(status="active", limit=500))
    assert active.total == len(CATALOGUE) >= 40
    assert {p.product_id for p in active.items} == {c.product_id for c in CATALOGUE}
    assert all(p.author == SEED_AUTHOR and p.approved_by == SEED_APPROVER for p in active.items)
    history = service.history(CATALOGUE[0].product_id).changes
    assert [(c.to_status, c.actor) for c in history] == [
        ("draft", SEED_AUTHOR),
        ("approved", SEED_APPROVER),
        ("active", SEED_APPROVER),
    ]

    # A second run changes nothing, and a retired product stays retired.
    service.transition(CATALOGUE[1].product_id, TransitionRequest(to="retired"), actor="console-alice")
    second = seed_catalogue(service, CATALOGUE)
    assert (second.created, second.activated, second.unchanged) == (0, 0, len(CATALOGUE))
    assert service.get(CATALOGUE[1].product_id).status == "retired"
    assert len(service.history(CATALOGUE[0].product_id).changes) == 3
    database.dispose()


def test_seed_resumes_a_product_left_half_way(database_url: str) -> None:
    database = Database(database_url)
    service = ProductService(database, NoFacts())  # type: ignore[arg-type]
    seed_catalogue(service, CATALOGUE[:1])
    item = CATALOGUE[2]
    seed_catalogue(service, [])  # nothing to do
    from product_hub.service.seed import _to_create

    service.create(_to_create(item), author=SEED_AUTHOR)
    report = seed_catalogue(service, [item])
    assert (report.created, report.activated) == (0, 1)
    assert service.get(item.product_id).status == "active"
    database.dispose()
