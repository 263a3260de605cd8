"""The decode loops: what turns a model's logits into tokens, one sequence or many.

* ``sequence``: ``Step``, ``Timings``, ``Generation`` and ``SequenceState`` (one generation's
  per-token logic, shared by every loop);
* ``single``: ``DecodeLoop``, one sequence on sequence 0 of a context;
* ``batched``: continuous batching of many sequences on one multi-sequence context;
* ``branching``: fork roll-outs on sibling KV sequences;
* ``teacher``: teacher forcing (a text fed one token at a time, its logits read).
"""
