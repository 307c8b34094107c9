"""Generated text -> OpenAI `content` and `tool_calls`, incrementally (one code path for
streamed and whole responses, so both always agree).

Text outside call blocks is content; each closed `<tool_call>` block is parsed by the shared
parser (`tooldiff.evaluation.parse_calls`) and becomes tool calls. While a block is open, or
the text ends in what could be the start of `<tool_call>`, nothing past it is released.
An unreadable block is handed back as content so that nothing the model wrote is lost; a
ToolRL `{"name": "None"}` block (an explicit "no call") is dropped. Leading and trailing
whitespace of the content is trimmed, also when streaming (whitespace is held back until
something follows it). The server never executes a call: it only reports it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Optional

from tooldiff.evaluation import parse_calls
from tooldiff.evaluation.parsing import CALL_CLOSE, CALL_OPEN


@dataclass
class Delta:
    content: Optional[str] = None
    tool_calls: list[dict] = field(default_factory=list)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _partial_tag_length(text: str, start: int) -> int:
    """Length of the longest suffix of text[start:] that is a proper prefix of CALL_OPEN."""
    for n in range(min(len(CALL_OPEN) - 1, len(text) - start), 0, -1):
        if text.endswith(CALL_OPEN[:n]):
            return n
    return 0


class OutputAssembler:
    """Feed it the whole output text so far (it only grows); it returns what became final."""

    def __init__(self, parse_format: str, calls_allowed: bool):
        self.parse_format, self.calls_allowed = parse_format, calls_allowed
        self.position = 0  # text before this index has been released
        self.calls: list[dict] = []  # OpenAI tool calls released so far
        self.content_parts: list[str] = []
        self._held_whitespace = ""

    @property
    def content(self) -> Optional[str]:
        return "".join(self.content_parts) or None

    def feed(self, text: str) -> Delta:
        text = text.rstrip("\ufffd")  # a multi-byte character still being decoded
        delta = Delta()
        if not self.calls_allowed:
            self._release_content(text[self.position:], delta)
            self.position = len(text)
            return delta
        while True:
            start = text.find(CALL_OPEN, self.position)
            if start < 0:
                end = len(text) - _partial_tag_length(text, self.position)
                self._release_content(text[self.position:end], delta)
                self.position = end
                return delta
            self._release_content(text[self.position:start], delta)
            self.position = start
            close = text.find(CALL_CLOSE, start + len(CALL_OPEN))
            if close < 0:
                return delta  # a block in progress: wait for its end
            self.position = close + len(CALL_CLOSE)
            self._release_block(text[start:self.position], delta)

    def finish(self, text: str) -> Delta:
        """The last delta: whatever is still held (an unclosed block, a partial tag)."""
        delta = self.feed(text)
        rest = text[self.position:]
        self.position = len(text)
        if rest:
            self._release_block(rest, delta)
        return delta

    def _release_block(self, block: str, delta: Delta) -> None:
        parsed = parse_calls(block, self.parse_format, strict=False)
        if not parsed.calls and parsed.malformed == 0 and block.startswith(CALL_OPEN):
            return  # ToolRL's explicit "no call": nothing to report
        if not parsed.calls:
            self._release_content(block, delta)
            return
        self._release_content(parsed.text, delta)  # text around an unclosed block's JSON
        for call in parsed.calls:
            openai_call = {"index": len(self.calls), "id": new_call_id(), "type": "function",
                           "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}
            self.calls.append(openai_call)
            delta.tool_calls.append(openai_call)

    def _release_content(self, piece: str, delta: Delta) -> None:
        if not piece:
            return
        text = self._held_whitespace + piece
        if not self.content_parts:
            text = text.lstrip()
        body = text.rstrip()
        self._held_whitespace = text[len(body):]
        if body:
            self.content_parts.append(body)
            delta.content = (delta.content or "") + body


def assemble(text: str, parse_format: str, calls_allowed: bool) -> OutputAssembler:
    """A whole output at once (non-streamed responses)."""
    assembler = OutputAssembler(parse_format, calls_allowed)
    assembler.finish(text)
    return assembler
