"""The simulated experiments' definitions are valid experiments and change what they say they change."""

from __future__ import annotations

from recommender.experiments.definition import ExperimentDefinition
from recommender.simulation.runner import ab_definition, ranker_ab_definition


def test_the_cf_experiment_pins_a_version_per_arm() -> None:
    definition = ExperimentDefinition.model_validate(ab_definition("segpop-1", "lightfm-2", days=14))
    changes = {a.name: a.changes.model_dump(exclude_none=True) for a in definition.arms}
    assert changes == {"control": {"model_version": "segpop-1"}, "cf": {"model_version": "lightfm-2"}}


def test_the_ranker_experiment_switches_only_the_ranker_off_in_control() -> None:
    definition = ExperimentDefinition.model_validate(ranker_ab_definition(days=14, channel="app"))
    changes = {a.name: a.changes.model_dump(exclude_none=True) for a in definition.arms}
    # Control: production's model without the ranker; treatment: production as it serves (the ranker on).
    assert changes == {"control": {"ranker": "off"}, "ranker": {}}
    assert [a.weight for a in definition.arms] == [50, 50]
    assert definition.primary_metric == "conversion_rate"
    assert definition.population.channels == ["app"]
