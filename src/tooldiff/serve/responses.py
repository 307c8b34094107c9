"""OpenAI-shaped response bodies: completions, stream chunks, errors."""

from __future__ import annotations

import secrets
import time
from typing import Optional

from tooldiff.serve.output import OutputAssembler
from tooldiff.serve.steering import Steering

FINISH_REASONS = ("stop", "length", "tool_calls")


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def finish_reason(assembler: OutputAssembler, engine_reason: str) -> str:
    """tool_calls whenever a call came back (as OpenAI), else the engine's stop / length."""
    if assembler.calls:
        return "tool_calls"
    return engine_reason if engine_reason in FINISH_REASONS else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(cid: str, model: str, assembler: OutputAssembler, reason: str, prompt_tokens: int,
                    completion_tokens: int, steering: Steering) -> dict:
    message: dict = {"role": "assistant", "content": assembler.content}
    if assembler.calls:
        message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"} for call in assembler.calls]
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(assembler, reason), "logprobs": None}],
        "usage": usage(prompt_tokens, completion_tokens),
        "steering": [b.spec.to_json() for b in steering],  # what was applied (request or profile)
    }


def chunk_body(cid: str, model: str, created: int, delta: dict, reason: Optional[str] = None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}]}


def usage_chunk_body(cid: str, model: str, created: int, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
            "usage": usage(prompt_tokens, completion_tokens)}


def error_body(message: str, kind: str = "invalid_request_error", code: Optional[str] = None,
               param: Optional[str] = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
