"""Structured output and the new samplers' flags from the command line: real subprocesses,
the real default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

CLI = [sys.executable, "-m", "entropic_local"]
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city"],
          "properties": {"city": {"type": "string", "maxLength": 16}}}


def run(*args, stdin=None, timeout=240):
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "ENTROPIC_LOCAL_THREADS": "1"})


def one_line_error(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("entropic-local: error: ") and "Traceback" not in r.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]
    assert r.stdout == ""


def test_json_schema_from_a_file_and_inline(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps(SCHEMA))
    for given in (str(f), json.dumps(SCHEMA)):
        r = run("generate", "The capital of France as JSON:", "--json-schema", given, "--seed", "2",
                "-n", "48", "--json")
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        jsonschema.validate(json.loads(d["text"]), SCHEMA)
        assert d["constraint"]["complete"] and d["constraint"]["log_mass_removed"] >= 0
        assert all("grammar_log_mass" in s and "grammar_entropy" in s for s in d["steps"])


def test_grammar_and_grammar_file(tmp_path):
    r = run("generate", "Answer yes or no:", "--grammar", 'root ::= "yes" | "no"', "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("yes", "no")
    g = tmp_path / "g.gbnf"
    g.write_text('root ::= [0-9]{2} "!"\n')
    r = run("generate", "Two digits:", "--grammar-file", str(g), "--seed", "1")
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert len(out) == 3 and out[:2].isdigit() and out[2] == "!"


@pytest.mark.parametrize("args,needles", [
    (["--grammar", "root ::= nowhere"], ["does not parse", "undefined rule", "nowhere"]),
    (["--grammar", 'root ::= "unterminated'], ["does not parse"]),
    (["--grammar", 'root ::= root "a"'], ["does not parse", "left recursion"]),
    (["--grammar", r"root ::= [^\x00-\U0010FFFF]"], ["dead end"]),
    (["--json-schema", '{"type": "nonsense"}'], ["cannot be converted"]),
    (["--json-schema", '{"type": '], ["not valid json"]),
    (["--json-schema", '{"type": "integer", "maximum": 3}'], ["'maximum'", "cannot enforce"]),
])
def test_bad_constraints_are_one_line_exit_9_and_write_nothing(tmp_path, args, needles):
    trace = tmp_path / "t.jsonl"
    r = run("generate", "x", *args, "--trace", str(trace))
    one_line_error(r, 9, *needles)
    assert not trace.exists()


def test_two_constraints_and_a_missing_file_are_usage_errors():
    one_line_error(run("generate", "x", "--grammar", 'root ::= "a"', "--json-schema", "{}"), 2, "give one")
    one_line_error(run("generate", "x", "--grammar-file", "/no/such.gbnf"), 2, "no such grammar file")


def test_new_sampler_flags_reach_the_chain_and_the_steps():
    r = run("generate", "Once upon a time", "-n", "12", "--seed", "3", "--json",
            "--dry-multiplier", "0.8", "--dry-sequence-breaker", "\n", "--dry-sequence-breaker", ".",
            "--xtc-probability", "1", "--xtc-threshold", "0.05")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["sampler"].startswith("dry:multiplier=0.8,breakers=%0A|.,")
    assert "xtc:probability=1.0,threshold=0.05" in d["sampler"]
    assert all("dry_penalised" in s and "xtc_removed" in s for s in d["steps"])
    r = run("generate", "Once upon a time", "-n", "8", "--seed", "3", "--json", "--mirostat", "2",
            "--mirostat-ent", "3", "--mirostat-lr", "0.2")
    d = json.loads(r.stdout)
    assert d["sampler"] == "temp=0.8,mirostat_v2:tau=3.0,eta=0.2"
    mus = [s["mirostat_mu"] for s in d["steps"]]
    assert mus[0] == 6.0 and len(set(mus)) > 1
    r = run("generate", "Once upon a time", "-n", "8", "--seed", "3", "--json", "--adaptive-target", "0.3")
    d = json.loads(r.stdout)
    assert d["sampler"].endswith("adaptive_p=0.3")
    assert all(0.0 <= s["adaptive_target"] <= 1.0 for s in d["steps"])
