"""Shared fixtures: the two real test models, loaded once per session through llama.cpp."""

from __future__ import annotations

import pytest

import entropic_local as el
from entropic_local.registry import resolve_model

MODEL_NAMES = ["smollm2-135m", "gemma3-270m"]


@pytest.fixture(scope="session")
def smollm2_path():
    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def gemma_path():
    return resolve_model("gemma3-270m")


@pytest.fixture(scope="session")
def smollm2():
    m = el.load("smollm2-135m", n_ctx=1024, seed=0)
    yield m
    m.close()


@pytest.fixture(scope="session")
def gemma():
    m = el.load("gemma3-270m", n_ctx=1024, seed=0)
    yield m
    m.close()


@pytest.fixture(params=["smollm2", "gemma"])
def any_model(request):
    """Each test using this runs on both real models."""
    return request.getfixturevalue(request.param)
