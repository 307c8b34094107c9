"""Server-sent events for `stream: true`, shaped as the OpenAI client expects.

A first chunk with the role, then content deltas as text settles and one `tool_calls` delta
per call as its block closes (id, type, name and the whole arguments string at once), a last
chunk with the finish reason, an optional usage chunk, and `data: [DONE]`. A failure mid-way
(timeout, engine error) is sent as an `{"error": ...}` event, which the client raises.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator

from tooldiff.serve.engine import Job, JobResult
from tooldiff.serve.output import Delta, OutputAssembler
from tooldiff.serve.responses import chunk_body, error_body, finish_reason, usage_chunk_body

DONE = "data: [DONE]\n\n"


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _delta_dict(delta: Delta) -> dict:
    out: dict = {}
    if delta.content:
        out["content"] = delta.content
    if delta.tool_calls:
        out["tool_calls"] = delta.tool_calls
    return out


def failure_message(result: JobResult, timeout_s: float) -> str:
    if result.finish_reason == "timeout":
        return f"the request timed out after {timeout_s:g}s"
    return result.error or f"the request ended early ({result.finish_reason})"


async def stream_job(job: Job, assembler: OutputAssembler, forced: str, cid: str, model: str,
                     include_usage: bool, timeout_s: float) -> AsyncIterator[str]:
    created = int(time.time())
    finished = False
    try:
        yield sse(chunk_body(cid, model, created, {"role": "assistant", "content": ""}))
        assembler.feed(forced)  # a forced call start is output too (it opens a block: nothing to send yet)
        while True:
            remaining = job.deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            kind, payload = await asyncio.wait_for(job.events.get(), timeout=remaining)
            if kind == "text":
                delta = _delta_dict(assembler.feed(forced + payload))
                if delta:
                    yield sse(chunk_body(cid, model, created, delta))
                continue
            result: JobResult = payload
            finished = True
            if result.finish_reason in ("timeout", "cancelled", "error"):
                kind = "timeout" if result.finish_reason == "timeout" else "server_error"
                yield sse(error_body(failure_message(result, timeout_s), kind))
                break
            delta = _delta_dict(assembler.finish(forced + result.text))
            if delta:
                yield sse(chunk_body(cid, model, created, delta))
            yield sse(chunk_body(cid, model, created, {}, finish_reason(assembler, result.finish_reason)))
            if include_usage:
                yield sse(usage_chunk_body(cid, model, created, job.prompt_tokens, result.completion_tokens))
            break
        yield DONE
    except asyncio.TimeoutError:
        job.cancel()
        yield sse(error_body(f"the request timed out after {timeout_s:g}s", "timeout"))
        yield DONE
    finally:
        if not finished:  # the client went away (or timed out): free the row
            job.cancel()
