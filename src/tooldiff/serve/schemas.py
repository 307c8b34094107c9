"""The request body of `POST /v1/chat/completions`, validated strictly.

Strict JSON validation: a string where a number belongs is a 400, never a silent coercion;
NaN and inf are refused. Fields the server cannot honour (n > 1, logprobs, penalties, logit
bias, JSON mode) are refused too rather than ignored, so a client never gets a different
behaviour than it asked for. Unknown fields are ignored, as OpenAI-compatible servers do.
`steering` items are validated here, as `tooldiff.interventions.Intervention`s (strict, unknown
keys refused); `steering.py` then admits them under the server's policy and binds them.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tooldiff.errors import UserError, describe_validation
from tooldiff.interventions.spec import Intervention

_STRICT = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)
MAX_STOP_STRINGS = 4  # as OpenAI


class FunctionDef(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64)
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None


class Tool(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: FunctionDef


class ToolCallFunction(BaseModel):
    model_config = _STRICT
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = _STRICT
    id: Optional[str] = None
    type: Literal["function"] = "function"
    function: ToolCallFunction


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Optional[str | list[TextPart]] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ToolCall]] = None
    tool_call_id: Optional[str] = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class NamedFunction(BaseModel):
    model_config = _STRICT
    name: str


class NamedToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = _STRICT

    model: str
    messages: list[Message] = Field(min_length=1)
    tools: Optional[list[Tool]] = None
    tool_choice: Optional[Literal["auto", "none", "required"] | NamedToolChoice] = None
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    stop: Optional[str | list[str]] = None
    seed: Optional[int] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    parallel_tool_calls: Optional[bool] = None
    steering: Optional[list[Intervention]] = None  # the wire model of tooldiff.interventions
    # Accepted only at their no-op values (see `_refuse_unsupported`).
    n: int = 1
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    logit_bias: Optional[dict[str, float]] = None
    response_format: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _check(self) -> "ChatRequest":
        self._refuse_unsupported()
        self._check_tools()
        if isinstance(self.stop, list) and len(self.stop) > MAX_STOP_STRINGS:
            raise ValueError(f"stop: at most {MAX_STOP_STRINGS} stop strings, got {len(self.stop)}")
        return self

    def _refuse_unsupported(self) -> None:
        if self.n != 1:
            raise ValueError(f"n: only n=1 is supported, got {self.n}")
        if self.logprobs or self.top_logprobs:
            raise ValueError("logprobs: not supported by this server")
        if self.presence_penalty or self.frequency_penalty:
            raise ValueError("presence_penalty/frequency_penalty: not supported by this server")
        if self.logit_bias:
            raise ValueError("logit_bias: not supported by this server")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise ValueError("response_format: only {'type': 'text'} is supported")

    def _check_tools(self) -> None:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError(f"tools: function names repeat in {names}")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice: function {choice.function.name!r} is not among the tools {names}")
        if choice == "required" and not names:
            raise ValueError("tool_choice: 'required' needs at least one tool")

    @property
    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def requested_max_tokens(self) -> Optional[int]:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def forced_function(self) -> Optional[str]:
        return self.tool_choice.function.name if isinstance(self.tool_choice, NamedToolChoice) else None


class ActivationsRequest(ChatRequest):
    """`POST /v1/steering/activations`: a chat request (its prompt is rendered as for a completion)
    and the latents to read at every prompt token."""

    features: list[int] = Field(min_length=1)


def parse_activations_request(body: bytes) -> ActivationsRequest:
    return _parsed(ActivationsRequest, body)


def parse_chat_request(body: bytes, default_layer: Optional[int] = None) -> ChatRequest:
    """A validated request from raw body bytes, its steering items included (a steering item
    without `layer` gets `default_layer`); any problem is a one-line `UserError`."""
    return _parsed(ChatRequest, body, default_layer)


def _parsed(request_cls: type[ChatRequest], body: bytes, default_layer: Optional[int] = None) -> Any:
    try:
        return request_cls.model_validate_json(body, strict=True, context={"default_layer": default_layer})
    except ValidationError as e:
        raise UserError(describe_error(e)) from None


def describe_error(e: ValidationError) -> str:
    """`errors.describe_validation`, with the two errors only a whole body can have."""
    err = e.errors()[0]
    if err.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {str(err.get('msg', '')).removeprefix('Invalid JSON: ')}"
    if not err.get("loc") and err.get("type") in ("model_type", "model_attributes_type", "dict_type"):
        return "the request body must be a JSON object"
    return describe_validation(e)
