"""The second stage: a LightGBM ranker of candidate products over point-in-time Feast features.

Offline (this package): a monthly holdings panel (``panel.py``: the synthetic bank's adoption
dynamics or any Santander-layout CSV) becomes Feast feature sources and views (``features.py``),
training examples are read from Feast's historical store as of each month's cut-off
(``training.py``) with CF scores of models fitted before that month (``cf.py``), and a binary
LightGBM model is trained (``model.py``), registered (``model.txt`` + manifest) and evaluated on
"next product added" (``evaluation.py``).

Online (``serving.py``, used by ``recommender.service.ranker``): ``load_serving_ranker`` loads a
registered version with its *companions*, the CF models ``train-ranker`` fitted at the newest
snapshot (registry status ``companion``); ``ServingRanker.score`` turns a customer's online
``ranker_*`` values and the product view into the rows training built (no pandas on this path) and
scores every product the customer did not hold at the snapshot in one LightGBM call.

The package itself imports nothing, so that ``recommender --help`` and the CLI's argument parsing
do not load Feast and LightGBM; import from the modules.
"""
