"""llama.cpp's own grammar engine (GBNF) through llama-cpp-python's low-level API: one
``llama_sampler_init_grammar`` per sequence, checked and advanced token by token.

``Grammar(engine, text)`` parses a GBNF grammar (``root`` rule); a grammar llama.cpp refuses
raises ``GrammarError`` with llama.cpp's own log line. ``allows(token)`` checks one token
(llama.cpp's single-token test: the token as a one-entry candidate array), ``mask(ids,
logits, n)`` applies the grammar to a candidate set, ``accept(token)`` advances it (only
ever with an allowed token: llama.cpp aborts the process on a rejected one), ``reset``
starts over, ``clone`` copies the state (per sequence in a batch). End-of-generation
tokens are allowed exactly when the grammar is complete.

``json_schema_grammar(schema)`` converts a JSON schema with llama-cpp-python's maintained
converter (``llama_cpp.llama_grammar.json_schema_to_gbnf``, a port of llama.cpp's
``json_schema_to_grammar.py``); ``JSON_OBJECT_GRAMMAR`` is any JSON object (OpenAI's
``response_format: {"type": "json_object"}``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from typing import Any

import numpy as np

from ..errors import GrammarError
from .backend import llama, recent_errors
from .token_data import TokenDataArray

__all__ = ["Grammar", "json_schema_grammar", "JSON_OBJECT_GRAMMAR"]

JSON_OBJECT_SCHEMA = {"type": "object"}


# assertions llama-cpp-python's converter does not turn into grammar (it would drop them
# silently and let through text the schema refuses): refused instead
UNENFORCED = frozenset({
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minProperties", "maxProperties", "uniqueItems", "not", "if", "then", "else",
    "dependentRequired", "dependentSchemas", "dependencies", "patternProperties",
    "propertyNames", "contains", "minContains", "maxContains", "unevaluatedProperties",
    "unevaluatedItems",
})
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "additionalItems")


def unenforced_keyword(schema: Any, where: str = "") -> str | None:
    """The first assertion in ``schema`` the converter cannot enforce, as ``'kw' at /path``."""
    if not isinstance(schema, dict):
        return None
    for k in schema:
        if k in UNENFORCED:
            return f"'{k}' at {where or '/'}"
    for k in _SCHEMA_MAPS:
        sub = schema.get(k)
        if isinstance(sub, dict):
            for name, v in sub.items():
                found = unenforced_keyword(v, f"{where}/{k}/{name}")
                if found:
                    return found
    for k in _SCHEMA_LISTS:
        sub = schema.get(k)
        if isinstance(sub, list):
            for i, v in enumerate(sub):
                found = unenforced_keyword(v, f"{where}/{k}/{i}")
                if found:
                    return found
    for k in _SCHEMA_ONE:
        found = unenforced_keyword(schema.get(k), f"{where}/{k}")
        if found:
            return found
    return None


def json_schema_grammar(schema: Any) -> str:
    """GBNF for a JSON schema (a dict, or its JSON text). Raises ``GrammarError`` when the
    text is not JSON, the converter cannot handle the schema, or the schema asserts what the
    converter does not enforce (``UNENFORCED``: numeric ranges, ``uniqueItems``, ``not``...)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise GrammarError(f"the JSON schema is not valid JSON: {e}") from None
    if not isinstance(schema, dict):
        raise GrammarError(f"a JSON schema must be a JSON object, got {type(schema).__name__}")
    bad = unenforced_keyword(schema)
    if bad is not None:
        raise GrammarError(f"the JSON schema uses {bad}, which the grammar converter cannot "
                           "enforce", hint="drop it, or check that part after generating")
    try:
        return _strict_strings(json_schema_to_gbnf(json.dumps(schema)))
    except RecursionError:
        raise GrammarError("the JSON schema cannot be converted to a grammar: it nests too deeply") from None
    except Exception as e:  # the converter asserts / raises ValueError, KeyError...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GrammarError(f"the JSON schema cannot be converted to a grammar: {msg[:200]}") from None


_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _strict_strings(gbnf: str) -> str:
    """The converter's string characters without the control characters JSON forbids raw
    in a string: llama-cpp-python 0.3.36's port writes ``char ::= [^"\\] | ...``, which lets
    a raw line break into a string (text ``json.loads`` refuses); llama.cpp's own converter
    excludes ``\x00-\x1F`` and ``\x7F`` there, and so does this."""
    return "\n".join(_STRICT_CHAR + ln[len(_LOOSE_CHAR):] if ln.startswith(_LOOSE_CHAR) else ln
                     for ln in gbnf.split("\n"))


JSON_OBJECT_GRAMMAR = None  # filled on first use (the converter is imported lazily)


def json_object_grammar() -> str:
    global JSON_OBJECT_GRAMMAR
    if JSON_OBJECT_GRAMMAR is None:
        JSON_OBJECT_GRAMMAR = json_schema_grammar(JSON_OBJECT_SCHEMA)
    return JSON_OBJECT_GRAMMAR


@contextlib.contextmanager
def _captured_stderr():
    """Capture what C code writes to file descriptor 2 inside the block (llama.cpp's grammar
    parser reports with ``fprintf(stderr)``); yields a function returning its lines."""
    out: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr: nothing to capture
        yield lambda: out
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.extend(tmp.read().decode("utf-8", "replace").splitlines())


class Grammar:
    """One grammar state over ``engine``'s vocabulary (see the module doc)."""

    def __init__(self, engine: Any, text: str, root: str = "root", *, _ptr=None):
        self.engine = engine
        self.text = text
        self.root = root
        self.n_vocab = int(engine.n_vocab)
        if _ptr is None:
            if not isinstance(text, str) or not text.strip():
                raise GrammarError("empty grammar")
            recent_errors()
            with _captured_stderr() as said:
                ptr = llama.llama_sampler_init_grammar(engine._vocab, text.encode("utf-8"),
                                                       root.encode("utf-8"))
            errs = [e for e in recent_errors() if e]
            if not ptr:
                # llama.cpp's parser prints its reason to stderr itself; its logger adds more
                lines = [ln.strip() for ln in said() if "error" in ln.lower()] + errs
                detail = lines[0] if lines else "llama.cpp refused it"
                detail = detail.removeprefix("parse: ").removeprefix("error parsing grammar: ")
                raise GrammarError(f"the grammar does not parse: {detail[:300]}")
            _ptr = ptr
        self._ptr = _ptr
        self._one = TokenDataArray(1)
        self._one_ids = np.zeros(1, dtype=np.int32)
        self._one_logit = np.ones(1, dtype=np.float32)
        self._td: TokenDataArray | None = None

    # -- checks ------------------------------------------------------------------------------
    def allows(self, token: int) -> bool:
        """Whether the grammar lets ``token`` come next."""
        self._one_ids[0] = int(token)
        self._one.load(self._one_ids, self._one_logit, 1)
        self._one.apply(self._ptr)
        return bool(self._one.buf["logit"][0] != -np.inf)

    def allowed_mask(self, ids: np.ndarray, n: int) -> np.ndarray:
        """A bool array over ``ids[:n]``: which the grammar allows next."""
        if self._td is None:
            self._td = TokenDataArray(self.n_vocab)
        td = self._td
        b = td.buf
        b["id"][:n] = ids[:n]
        b["logit"][:n] = 0.0
        td.load_prepared(n)
        td.apply(self._ptr)
        return b["logit"][:n] != -np.inf

    # -- state -------------------------------------------------------------------------------
    def accept(self, token: int) -> None:
        """Advance by ``token``; refuses (``GrammarError``) a token the grammar does not allow,
        which llama.cpp would abort on."""
        if not self.allows(token):
            raise GrammarError(f"token {int(token)} does not continue the grammar")
        llama.llama_sampler_accept(self._ptr, int(token))

    def reset(self) -> None:
        llama.llama_sampler_reset(self._ptr)

    def clone(self) -> "Grammar":
        return Grammar(self.engine, self.text, self.root, _ptr=llama.llama_sampler_clone(self._ptr))

    def close(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr:
            llama.llama_sampler_free(ptr)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
