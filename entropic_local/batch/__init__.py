"""``entropic-local batch``: many prompts from a JSONL file, answers appended to a JSONL file.

* ``jobs.py``: input lines -> jobs (the plain ``{"custom_id", "prompt"}`` shape and the
  OpenAI batch shape), per-line settings, seeds derived from ``--seed`` and the custom_id.
* ``output.py``: the output file: OpenAI batch output rows, append-and-flush per line,
  resume (skip what is done, repair a half-written last line).
* ``runner.py``: running jobs on a loaded model with continuous batching
  (``Model.iter_batch``), progress bar and summary.
* ``ray_runner.py``: the same jobs on a Ray cluster (``--ray``), one model per actor.

The click command is ``cli/batch.py``.
"""
