"""Request bodies, validated into typed objects: OpenAI's field names, types and ranges
(``/v1/chat/completions``, ``/v1/completions``), llama-server's extra sampling fields, and
``sampler`` (a chain spec). Validation is pydantic's, strict: a string is not a number, a
bool is not an integer, an unknown field is refused (``Unrecognized request argument``, as
OpenAI answers). Every failure is an ``APIError`` (HTTP 400) naming the field.

Fields a client may send that change nothing here are accepted and ignored: ``model`` (one
model is served), ``user``, ``store``, ``metadata``, ``service_tier``, ``parallel_tool_calls``,
``n`` = 1. Structured output: ``response_format`` (``text``, ``json_object``, ``json_schema``
with its ``schema``) on chat, and llama-server's ``grammar`` (GBNF) / ``json_schema`` on both
endpoints, at most one of them (``constraint``). Features not served are refused by name
(``n`` > 1, ``tools``, image content).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..decode.request import constraint_setting
from ..errors import APIError

__all__ = ["ChatRequest", "CompletionRequest", "TokenizeRequest", "DetokenizeRequest", "parse_body",
           "validate", "SAMPLING_FIELDS"]

# llama-server's request names of the sampling flags (samplers/registry.flag_table): the
# request field -> the flag key SamplerChain.with_params takes
SAMPLING_FIELDS = {
    "temperature": "temp", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "typical_p": "typical_p",
    "top_n_sigma": "top_n_sigma", "repeat_penalty": "repeat_penalty", "repeat_last_n": "penalty_last_n",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
    "dynatemp_range": "dynatemp_range", "dynatemp_exponent": "dynatemp_exponent",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart], None] = None
    name: str | None = None
    refusal: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, description, strict: accepted
    schema_: dict[str, Any] = Field(alias="schema")


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")  # llama-server: json_object + schema


class _Sampling(_Strict):
    """What both endpoints take."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=100)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = None
    min_p: float | None = Field(None, ge=0, le=1)
    typical_p: float | None = Field(None, ge=0, le=1)
    top_n_sigma: float | None = None
    repeat_penalty: float | None = Field(None, ge=0)
    repeat_last_n: int | None = Field(None, ge=-1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    dynatemp_range: float | None = Field(None, ge=0)
    dynatemp_exponent: float | None = Field(None, ge=0)
    sampler: str | None = Field(None, min_length=1, max_length=4096)
    grammar: str | None = Field(None, min_length=1)      # llama-server: GBNF text
    json_schema: dict[str, Any] | None = None             # llama-server: a JSON schema
    seed: int | None = Field(None, ge=0, lt=2**64)
    stop: Union[str, list[str], None] = None
    logit_bias: dict[str, float] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        if isinstance(v, str):
            v = [v]
        if v is not None:
            if len(v) > 16:
                raise ValueError("at most 16 stop sequences")
            v = [s for s in v if s]
        return v or None

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, v):
        if v is None:
            return v
        out = {}
        for k, b in v.items():
            try:
                tok = int(k)
            except ValueError:
                raise ValueError(f"logit_bias keys must be token ids, got {k!r}") from None
            if not -100 <= b <= 100:
                raise ValueError(f"logit_bias values must be in [-100, 100], got {b}")
            out[tok] = b
        return out

    def constraint(self) -> dict[str, Any]:
        """``{"grammar": GBNF}``, ``{"json_schema": schema or "json_object"}`` or ``{}``
        (``decode.request.constraint_setting``); more than one given is an error."""
        src: dict[str, Any] = {"grammar": self.grammar, "json_schema": self.json_schema}
        rf = getattr(self, "response_format", None)
        if rf is not None:
            src["response_format"] = rf.model_dump(by_alias=True, exclude_none=True)
        try:
            return constraint_setting(src)
        except ValueError as e:
            raise APIError(str(e), 400, param="response_format" if rf is not None else "grammar",
                           code="invalid_value") from None

    def flags(self) -> dict[str, Any]:
        """The sampling flags given, by ``SamplerChain.with_params`` key."""
        return {key: getattr(self, f) for f, key in SAMPLING_FIELDS.items() if getattr(self, f) is not None}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    parallel_tool_calls: bool | None = None

    @property
    def limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Union[str, list[int], list[str], list[list[int]]]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    suffix: None = None
    best_of: Literal[1] | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v):
        if isinstance(v, list) and v and isinstance(v[0], (str, list)):
            if len(v) != 1:
                raise ValueError("one prompt per request (send several requests; they are batched)")
            v = v[0]
        if not v:
            raise ValueError("the prompt is empty")
        return v

    @property
    def limit(self) -> int | None:
        return self.max_tokens


class TokenizeRequest(_Strict):
    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False


class DetokenizeRequest(_Strict):
    tokens: list[int]


def parse_body(raw: bytes) -> Any:
    """The request body as JSON; not UTF-8 or not JSON is an ``APIError``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise APIError(f"the request body is not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise APIError(f"the request body is not valid JSON: {e.msg} (line {e.lineno} column {e.colno})") \
            from None
    except RecursionError:
        raise APIError("the request body is nested too deeply") from None


def validate(cls: type[BaseModel], body: Any):
    """``body`` (parsed JSON) as a ``cls``; the first problem as an ``APIError`` naming the field."""
    if not isinstance(body, dict):
        raise APIError("the request body must be a JSON object")
    try:
        return cls.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        top = str(err["loc"][0]) if err["loc"] else None
        if err["type"] == "extra_forbidden":
            raise APIError(f"Unrecognized request argument supplied: {loc}", param=loc,
                           code="unknown_parameter") from None
        if err["type"] == "missing":
            raise APIError(f"Missing required parameter: '{loc}'.", param=loc,
                           code="missing_required_parameter") from None
        msg = err["msg"].removeprefix("Value error, ")
        got = json.dumps(err.get("input"), default=str)
        if len(got) > 60:
            got = got[:57] + "..."
        raise APIError(f"Invalid value for '{loc}': {msg} (got {got}).", param=top or loc,
                       code="invalid_value") from None
