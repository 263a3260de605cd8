"""Batch input lines, derived seeds and the output file's resume (no model)."""

from __future__ import annotations

import json

from entropic_local.batch.jobs import BadLine, Job, derive_seed, parse_line
from entropic_local.batch.output import OutputFile


def test_parse_line_shapes():
    j = parse_line('{"custom_id": 7, "prompt": "Hi", "max_tokens": 5, "temperature": 0.5, "stop": "x"}', 1)
    assert isinstance(j, Job) and j.custom_id == "7" and j.kind == "prompt"
    assert j.settings == {"max_tokens": 5, "temperature": 0.5, "stop": ["x"]}
    j = parse_line(json.dumps({"custom_id": "c", "method": "POST", "url": "/v1/chat/completions",
                               "body": {"model": "x", "messages": [{"role": "user", "content": [
                                   {"type": "text", "text": "Hi"}]}], "max_completion_tokens": 9}}), 2)
    assert j.kind == "chat" and j.messages == [{"role": "user", "content": "Hi"}]
    assert j.settings == {"max_tokens": 9}
    for bad, code in [("{", "invalid_json"), ("[1]", "invalid_request"), ('{"prompt": "x"}', "invalid_request"),
                      ('{"custom_id": "a"}', "invalid_request"),
                      ('{"custom_id": "a", "prompt": "x", "max_tokens": "9"}', "invalid_request"),
                      ('{"custom_id": "a", "url": "/v1/embeddings", "body": {}}', "invalid_request"),
                      ('{"custom_id": "a", "url": "/v1/chat/completions", "body": {"messages": []}}',
                       "invalid_request")]:
        r = parse_line(bad, 3)
        assert isinstance(r, BadLine) and r.code == code, bad
        assert r.message.startswith("line 3: ")


def test_derived_seeds():
    assert derive_seed(1, "a") == derive_seed(1, "a")
    assert len({derive_seed(1, "a"), derive_seed(1, "b"), derive_seed(2, "a")}) == 3
    assert 0 <= derive_seed(123, "x") < 2**63


def test_output_resume_repairs_partial_last_line(tmp_path):
    p = tmp_path / "out.jsonl"
    rows = [json.dumps({"custom_id": c, "response": {}, "error": None}) for c in "abc"]
    p.write_text("\n".join(rows) + "\n" + rows[0][:17])       # killed mid-line
    out = OutputFile(str(p)).open()
    assert out.done == {"a", "b", "c"} and out.repaired == 17
    out.write({"custom_id": "d", "response": {}, "error": None})
    out.close()
    lines = p.read_text().splitlines()
    assert [json.loads(x)["custom_id"] for x in lines] == ["a", "b", "c", "d"]
