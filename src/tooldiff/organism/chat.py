"""The organism's chat format: one Jinja template, used both to write the pretraining corpus (before
any tokenizer exists) and by the saved tokenizer's `apply_chat_template`.

Rendering (ChatML turns, the tools on offer listed compactly in the system turn):

    <|im_start|>system
    tools:
    get_weather(city, unit?)
    set_alarm(hour, loud?)<|im_end|>
    <|im_start|>user
    Wake me up at 7.<|im_end|>
    <|im_start|>assistant
    <tool_call>
    {"name":"set_alarm","arguments":{"hour":7}}
    </tool_call><|im_end|>

`?` marks an optional parameter. Calls are compact JSON (no spaces) so that a call is few tokens.
"""

from __future__ import annotations

import json

from tooldiff.evaluation.parsing import CALL_CLOSE, CALL_OPEN

BOS_TURN = "<|im_start|>"
EOS_TURN = "<|im_end|>"
PAD = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, BOS_TURN, EOS_TURN]
TOOL_TAGS = [CALL_OPEN, CALL_CLOSE]  # added tokens, NOT special: TRL decodes with skip_special_tokens

# Every tag strips the whitespace around it and every newline is an explicit {{ NL }}, so that the
# rendering does not depend on how this string is laid out. `tojson(separators=...)` is the
# transformers chat-template filter; compact JSON keeps calls short.
CHAT_TEMPLATE = (
    "{%- set NL = '\\n' -%}"
    "{%- set sys = messages[0].content if messages and messages[0].role == 'system' else none -%}"
    "{%- if tools or sys -%}"
    "<|im_start|>system{{ NL }}"
    "{%- if sys -%}{{ sys }}{%- if tools -%}{{ NL }}{%- endif -%}{%- endif -%}"
    "{%- if tools -%}tools:"
    "{%- for tool in tools -%}"
    "{%- set f = tool.function if tool.function is defined else tool -%}"
    "{%- set req = f.parameters.required if f.parameters.required is defined else [] -%}"
    "{{ NL }}{{ f.name }}("
    "{%- for pname in f.parameters.properties -%}"
    "{{ pname }}{%- if pname not in req -%}?{%- endif -%}{%- if not loop.last -%}{{ ', ' }}{%- endif -%}"
    "{%- endfor -%})"
    "{%- endfor -%}"
    "{%- endif -%}"
    "<|im_end|>{{ NL }}"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m.role != 'system' -%}"
    "<|im_start|>{{ m.role }}{{ NL }}"
    "{%- if m.content -%}{{ m.content }}{%- endif -%}"
    "{%- if m.tool_calls is defined and m.tool_calls -%}"
    "{%- for c in m.tool_calls -%}"
    "{%- set fn = c.function if c.function is defined else c -%}"
    "{%- if not loop.first or m.content -%}{{ NL }}{%- endif -%}"
    "{%- set args = fn.arguments if fn.arguments is string else fn.arguments | tojson(separators=(',', ':')) -%}"
    "<tool_call>{{ NL }}{{ '{\"name\":' }}{{ fn.name | tojson }}{{ ',\"arguments\":' }}{{ args }}{{ '}' }}{{ NL }}</tool_call>"
    "{%- endfor -%}"
    "{%- endif -%}"
    "<|im_end|>{{ NL }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ NL }}{%- endif -%}"
)


def call_text(call: dict) -> str:
    """The hermes block the organism writes for one canonical call."""
    body = json.dumps({"name": call["name"], "arguments": call["arguments"]}, separators=(",", ":"))
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def render_chat(messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool = True) -> str:
    """The prompt text, exactly as the saved tokenizer's apply_chat_template renders it."""
    # transformers' own renderer (sandbox, filters) so that corpus text == apply_chat_template.
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages], tools=tools or None, chat_template=CHAT_TEMPLATE,
        add_generation_prompt=add_generation_prompt,
    )
    return rendered[0]
