"""The second stage: a LightGBM ranker of candidate products over point-in-time Feast features.

Offline (this package): a monthly holdings panel (``panel.py``: the synthetic bank's adoption
dynamics or any Santander-layout CSV) becomes Feast feature sources and views (``features.py``),
training examples are read from Feast's historical store as of each month's cut-off
(``training.py``) with CF scores of models fitted before that month (``cf.py``), and a binary
LightGBM model is trained (``model.py``), registered (``model.txt`` + manifest) and evaluated on
"next product added" (``evaluation.py``).

Online (the recommender's decision pipeline): ``recommender.ml.ranker.model.load_ranker`` a
registered version, then ``RankerModel.score_customers`` with the customer's ``ranker_*`` feature
values, the candidate product ids, the product features, the snapshot date and the CF stage's
scores: one LightGBM call per request for all candidates.

The package itself imports nothing, so that ``recommender --help`` and the CLI's argument parsing
do not load Feast and LightGBM; import from the modules.
"""
