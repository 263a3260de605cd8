"""Teacher-forced analyses of a model on a text: scoring samplers' distributions
(``scoring.evaluate_text``, the ``eval`` command; measures in ``metrics``) and calibrating
Entropix's thresholds (``calibrate.calibrate``)."""
