"""The measurements ``entropic-local bench`` makes: our generation against llama-cpp-python's
``create_completion`` (``completion``), batched generation against one prompt at a time
(``batch``), and the kernels on one logit vector (``kernels``)."""
