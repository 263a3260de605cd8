"""The sampler stages, one concept per module; ``samplers/registry.py`` lists them.

Every stage works on a ``Candidates`` set in place and keeps its flags truthful:

* a stage that truncates or reorders calls ``cands.touch()`` (the set is then no longer the
  untouched vocabulary) and sets ``cands.n`` to the kernel's result;
* ``cands.sorted`` is set to True after a kernel that leaves the live entries sorted by logit
  (descending), set to False after one that may break the order, and left alone otherwise;
* a *selecting* stage (``selects = True``: ``greedy``, ``dist``, ``entmax``, ``aes``,
  ``entropix``) sets ``cands.selected`` to the index, into the live entries, of the chosen
  token. ``cands.n`` at selection time is the number of tokens the selector could have
  picked: ``dist`` leaves the set as the earlier stages left it (masked ``-inf`` entries
  that no truncating stage dropped are still counted), ``greedy`` reduces it to the chosen
  token (``n = 1``), as ``temp ≤ 0``.

Parameters are validated when a stage is built; a bad value raises ``InvalidSamplerSpec``
naming the stage, the parameter and the allowed range, e.g.
``top_p: p=1.5 is out of range (0, 1]``.
"""
