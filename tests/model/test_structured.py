"""Structured output on both real models: JSON-schema generations at temperature 1 always
parse and validate (``jsonschema``), a small GBNF language always matches, the grammar state
is per sequence in a batch, and what the constraint costs per step is consistent."""

from __future__ import annotations

import json
import math
import re

import jsonschema
import pytest

from entropic_local import BatchRequest
from entropic_local.errors import GrammarError

SCHEMAS = {
    "required fields": {"type": "object", "additionalProperties": False, "required": ["name", "age"],
                        "properties": {"name": {"type": "string", "maxLength": 12},
                                       "age": {"type": "integer"}}},
    "enum": {"enum": ["red", "green", "blue"]},
    "array of numbers": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3},
    "nested": {"type": "object", "additionalProperties": False, "required": ["user"],
               "properties": {"user": {
                   "type": "object", "additionalProperties": False, "required": ["id", "tags"],
                   "properties": {"id": {"type": "integer"},
                                  "tags": {"type": "array", "maxItems": 3,
                                           "items": {"type": "string", "maxLength": 8}}}}}},
}

PER_SCHEMA = 25   # 100 generations per model in all

# a small language: one to three assignments of a number to a name
GBNF = r'''
root ::= stmt{1,3}
stmt ::= name " = " num ";\n"
name ::= [a-z] [a-z0-9_]{0,7}
num  ::= "-"? [0-9]{1,4}
'''
LANG = re.compile(r"(?:[a-z][a-z0-9_]{0,7} = -?[0-9]{1,4};\n){1,3}")


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_json_schema_generations_parse_and_validate(any_model, name):
    schema = SCHEMAS[name]
    gens = any_model.generate_batch(["Reply with JSON:"] * PER_SCHEMA, sampler="temp=1",
                                    max_tokens=192, seeds=list(range(PER_SCHEMA)),
                                    json_schema=schema, parallel=8)
    texts = set()
    for g in gens:
        assert g.finish_reason == "stop", g.text
        assert g.constraint["complete"]
        jsonschema.validate(json.loads(g.text), schema)
        texts.add(g.text)
    assert len(texts) > 1   # temperature 1 really samples


def test_gbnf_small_language_always_matches(any_model):
    gens = any_model.generate_batch(["Some variables:\n"] * 20, sampler="temp=1", max_tokens=128,
                                    seeds=list(range(20)), grammar=GBNF, parallel=8)
    for g in gens:
        assert LANG.fullmatch(g.text), repr(g.text)
        assert g.finish_reason == "stop"


def test_grammar_state_is_per_sequence_in_a_batch(any_model):
    reqs = [BatchRequest("Pick:", grammar='root ::= "yes" | "no"', seed=i) for i in range(3)]
    reqs += [BatchRequest("Count:", grammar='root ::= [0-9]{3}', seed=i) for i in range(3)]
    reqs += [BatchRequest("Free:", seed=1, max_tokens=8)]
    gens = any_model.generate_batch(reqs, sampler="temp=1", max_tokens=32, parallel=4)
    for g in gens[:3]:
        assert g.text in ("yes", "no")
    for g in gens[3:6]:
        assert re.fullmatch(r"[0-9]{3}", g.text), g.text
    assert gens[6].constraint is None


def test_the_same_seed_gives_the_same_constrained_text(any_model):
    a = any_model.generate("JSON:", json_schema=SCHEMAS["nested"], sampler="temp=1", seed=5, max_tokens=96)
    b = any_model.generate("JSON:", json_schema=SCHEMAS["nested"], sampler="temp=1", seed=5, max_tokens=96)
    assert a.text == b.text and a.constraint == b.constraint   # the grammar is reset per generation


def test_constraint_costs_are_consistent(any_model):
    g = any_model.generate("A person as JSON:", json_schema=SCHEMAS["required fields"],
                           sampler="llama", seed=3, max_tokens=96)
    assert g.steps
    total = 0.0
    for s in g.steps:
        lm = s.info["grammar_log_mass"]
        total += lm
        # the chosen token is allowed: the allowed mass holds at least its probability
        assert s.logprob - 1e-9 <= lm <= 1e-9
        assert s.info["grammar_entropy"] >= 0.0
        if s.info["grammar_rejected"]:
            assert s.info["grammar_unchecked_mass"] == 0.0
        assert 0.0 <= s.info["grammar_unchecked_mass"] <= 1.0
    c = g.constraint
    assert c["log_mass_removed"] == pytest.approx(-(total + c["end_log_mass"]), abs=1e-9)
    rejected = sum(s.info["grammar_rejected"] for s in g.steps)
    assert rejected <= c["rejections"] <= rejected + 1   # + the step that ended it
    assert c["steps"] >= len(g.steps)
    # the model's own view of a JSON object after "A person as JSON:" is not certain:
    # the constraint removed some mass somewhere
    assert c["log_mass_removed"] > 0.0
    assert not math.isnan(c["log_mass_removed"])


def test_bad_constraints_are_refused_before_decoding(smollm2):
    with pytest.raises(GrammarError, match="does not parse"):
        smollm2.generate("x", grammar="root ::= nope")
    with pytest.raises(GrammarError, match="cannot be converted"):
        smollm2.generate("x", json_schema={"type": "nonsense"})
    with pytest.raises(GrammarError, match="'minimum' at /properties/a"):
        smollm2.generate("x", json_schema={"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}})
    with pytest.raises(GrammarError, match="dead end"):
        smollm2.generate("x", grammar=r"root ::= [^\x00-\U0010FFFF]")


def test_json_strings_refuse_raw_control_characters(any_model):
    """The converter's string rule let a raw line break into a JSON string (text json.loads
    refuses); the grammar given to llama.cpp excludes control characters there."""
    from entropic_local.engine.grammar import Grammar, json_schema_grammar

    e = any_model.engine
    g = Grammar(e, json_schema_grammar({"type": "string"}))
    quote = e.tokenize('"', add_special=False)
    assert len(quote) == 1
    g.accept(quote[0])
    for text in ("\n", "\t"):
        toks = e.tokenize(text, add_special=False)
        assert len(toks) == 1 and not g.allows(toks[0]), text
    assert g.allows(e.tokenize("a", add_special=False)[0])


def test_chat_set_grammar_and_json_schema(smollm2):
    from entropic_local.chat.session import ChatSession
    from entropic_local.chat.templates import select_template
    from entropic_local.registry import check_gguf_header
    from entropic_local.samplers import SamplerChain

    tmpl, _ = select_template(None, gguf_template=check_gguf_header(smollm2.engine.path).chat_template,
                              registry_template="gguf", model_label="smollm2-135m")
    s = ChatSession(smollm2, tmpl, SamplerChain.parse("llama"))
    assert "grammar" in s.set_param("grammar", 'root ::= "yes" | "no"')
    with pytest.raises(GrammarError):
        s.set_param("grammar", "root ::= nope")
    assert s.grammar == 'root ::= "yes" | "no"'          # unchanged by the refused one
    s.set_param("json_schema", '{"enum": ["up", "down"]}')
    assert s.grammar is None and s.json_schema == {"enum": ["up", "down"]}
    s.set_param("json_schema", "none")
    assert s.json_schema is None
    s.set_param("dry_multiplier", "0.8")
    s.set_param("dry_sequence_breaker", '["\\n"]')
    assert s.chain["dry"].breakers == ("\n",)
