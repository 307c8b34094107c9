"""Server pieces without a server: request schema, steering checks, prompt rendering, output assembly."""

import json
import random
import re
from pathlib import Path

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.interventions import BoundIntervention
from tooldiff.serve.config import ServerSettings, server_settings
from tooldiff.features.ranking import write_ranking
from tooldiff.serve.features import list_features, load_feature_list
from tooldiff.serve.output import OutputAssembler, assemble
from tooldiff.serve.prompting import render_request
from tooldiff.serve.schemas import parse_chat_request
from tooldiff.serve.steering import SteeringBinder

torch.set_num_threads(1)
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
OUTPUT = ('Let me check.\n<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call>\n'
          '<tool_call>\n[{"name":"a","arguments":{}}, {"name":"b","arguments":{"x":[1,2]}}]\n</tool_call>\nDone.  ')


def request(**fields) -> bytes:
    body = {"model": "m", "messages": [{"role": "user", "content": "weather in Paris?"}], **fields}
    return json.dumps(body).encode()


# --- request schema -----------------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    (b'{"model": "m", "messages": [', "not valid JSON"),
    (request(messages=[]), "messages: List should have at least 1 item"),
    (request(temperature="0.5"), "temperature: Input should be a valid number"),
    (request(max_tokens=True), "max_tokens: Input should be a valid integer"),
    (request(temperature=7), "temperature: Input should be less than or equal to 2"),
    (request(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
    (request(n=2), "n=1 is supported"),
    (request(logit_bias={"1": 5}), "logit_bias"),
    (request(tool_choice={"type": "function", "function": {"name": "nope"}}, tools=[WEATHER]), "'nope' is not among"),
    (request(tool_choice="required"), "needs at least one tool"),
    (request(stop=["a", "b", "c", "d", "e"]), "at most 4 stop strings"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": NaN}', "top_p"),
])
def test_bad_requests_are_one_line_user_errors(body, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        parse_chat_request(body)
    assert "\n" not in str(info.value)


def test_a_good_request_parses_with_its_defaults():
    req = parse_chat_request(request(tools=[WEATHER], stop="x", max_completion_tokens=5))
    assert req.stop_strings == ["x"] and req.requested_max_tokens == 5 and req.tool_choice is None
    assert req.steering is None


# --- steering -----------------------------------------------------------------------------
DIAL = ServerSettings(model="m").steering_policy  # the server's default dial


@pytest.fixture(scope="module")
def binder(tiny):
    tok = tiny.tokenizer()
    model = tiny.model("qwen2", len(tok))
    return SteeringBinder(model, tiny.crosscoder(), 0, DIAL, default_layer=tiny.LAYER)


def steer(tiny, binder, items):
    """A request's steering as the server treats it: validated with the body, then admitted and bound."""
    return binder.for_request(parse_chat_request(request(steering=items), default_layer=tiny.LAYER).steering)


def test_good_steering_is_bound_once_and_gets_the_default_layer(tiny, binder):
    items = [{"op": "steer", "feature": 3, "alpha": 4.0}, {"op": "add", "vector": [1.0] * 32, "dose": -1, "positions": "all"}]
    bound = steer(tiny, binder, items)
    assert [b.layer for b in bound] == [tiny.LAYER, tiny.LAYER] and bound[0].spec.feature == (3,)
    assert all(isinstance(b, BoundIntervention) for b in bound)
    assert [b.edit for b in steer(tiny, binder, items)] == [b.edit for b in bound]  # the same spec is not bound again
    assert binder.for_request(None) == () and steer(tiny, binder, []) == ()


@pytest.mark.parametrize("item, message", [
    ({"op": "steer", "feature": 9999, "alpha": 2}, "latent 9999 out of range"),
    ({"op": "steer", "feature": 3, "alpha": 2, "layer": 3}, "layer 3 is out of range"),  # tiny decoders have 3
    ({"op": "steer", "feature": 3, "alpha": float("nan")}, "alpha must be finite"),
    ({"op": "steer", "feature": 3, "alpha": 1e9}, "alpha"),
    ({"op": "steer", "feature": 3, "alpha": 500}, r"cap |alpha| <= 128"),
    ({"op": "add", "vector": [1.0] * 32, "dose": 9}, r"cap |dose| <= 8"),
    ({"op": "add", "vector": [1.0] * 5, "dose": 1}, "vector has 5 entries"),
    ({"op": "steer", "feature": "3", "alpha": 2}, "feature"),
    ({"op": "steer", "feature": 3, "alpha": "2"}, "alpha: Input should be a valid number"),
    ({"op": "steer", "feature": 3, "alpha": 2, "dose": 2}, "dose is not used by op 'steer'"),
    ({"op": "reconstruct"}, "op: must be one of steer, add, ablate, clamp"),
    ({"op": "steer", "feature": 3, "alpha": 2, "colour": "red"}, "unknown key 'steering[0].colour'"),
    ({"op": "steer", "feature": 75, "alpha": 2}, "b_excl"),  # a base-only latent on the RL side
    ("steer", "Input should be an object"),
])
def test_bad_steering_is_refused_with_its_cause(tiny, binder, item, message):
    with pytest.raises(UserError) as info:
        steer(tiny, binder, [item])
    assert message in str(info.value) and "steering[0]" in str(info.value) and "\n" not in str(info.value)


def test_steering_must_be_a_short_list(tiny, binder):
    with pytest.raises(UserError, match="steering: Input should be a valid array"):
        steer(tiny, binder, {"op": "steer"})
    with pytest.raises(UserError, match="17 items exceed the cap of 16"):
        steer(tiny, binder, [{"op": "steer", "feature": 3, "alpha": 2}] * 17)


def test_profile_is_the_default_and_a_request_replaces_it(tiny, binder, tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"steering": [{"op": "steer", "feature": 5, "alpha": 3}]}))
    profiled = SteeringBinder(binder.model, binder.crosscoder, 0, DIAL, tiny.LAYER, profile=path)
    assert [b.spec.feature for b in profiled.for_request(None)] == [(5,)]
    assert profiled.for_request([]) == ()
    path.write_text(json.dumps([{"op": "steer", "feature": 9999, "alpha": 3}]))
    with pytest.raises(UserError, match="profile.json: steering\\[0\\]: latent 9999"):
        SteeringBinder(binder.model, binder.crosscoder, 0, DIAL, tiny.LAYER, profile=path)
    path.write_text(json.dumps([{"op": "steer", "feature": 5, "alpha": 300}]))
    with pytest.raises(UserError, match="profile.json: steering\\[0\\].alpha: alpha=300 exceeds the cap"):
        SteeringBinder(binder.model, binder.crosscoder, 0, DIAL, tiny.LAYER, profile=path)


def test_features_fall_back_explicitly_and_take_the_ranking_of_this_crosscoder(tiny, binder, tmp_path):
    cc = binder.crosscoder
    cc_dir = cc.save(tmp_path / "run" / "crosscoders" / "dfc")
    fallback = list_features(cc, "dfc", load_feature_list(cc, cc_dir, None), 0, limit=5)
    assert fallback["source"] == "decoder_norms" and fallback["note"].startswith("no ranking at") and len(fallback["data"]) == 5
    assert [row["group"] for row in fallback["data"]] == ["a_excl"] * 5  # Δ = 0 first
    assert all(row["delta"] == 0.0 and row["steerable"] for row in fallback["data"])

    stats = {"rl_dominant": False, "delta": 0.5, "rl_norm_share": 0.5, "strict_d": 0.0, "strict_auroc": 0.5,
             "nu_eps": 0.0, "nu_r": 0.0, "firing": {}}
    latents = [{"latent": i, "group": cc.latent_group(i), **stats, "extra": 1} for i in range(cc.dict_size)]
    ranking = {"n": {}, "best": {}, "least_related": [], "examples": {}}
    path = write_ranking(tmp_path / "run" / "experiment", "dfc", {**ranking, "latents": latents[::-1]}, cc_dir).resolve()
    found = load_feature_list(cc, cc_dir, None)  # the run layout: RUN/crosscoders/dfc -> RUN/experiment/features/dfc.json
    listing = list_features(cc, "dfc", found, 0, limit=2)
    assert listing["source"] == str(path) and listing["crosscoder"] == "dfc" and "note" not in listing
    shown = [{k: row[k] for k in ("latent", "group", "strict_auroc", "steerable")} for row in listing["data"]]
    assert shown == [{"latent": 79, "group": "b_excl", "strict_auroc": 0.5, "steerable": False},
                     {"latent": 78, "group": "b_excl", "strict_auroc": 0.5, "steerable": False}]
    assert "extra" not in listing["data"][0]  # the ranking's own keys only
    for given in (path, tmp_path / "run" / "experiment"):  # --features: the file, or the experiment directory
        assert Path(load_feature_list(cc, cc_dir, str(given)).source).resolve() == path

    other_cc = tiny.crosscoder(seed=1)
    other = other_cc.save(tmp_path / "other" / "crosscoders" / "dfc")
    with pytest.raises(UserError, match="computed from other weights"):  # asked for: refused
        load_feature_list(other_cc, other, str(path))
    stale = tmp_path / "other" / "experiment" / "features" / "dfc.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(path.read_text())
    skipped = load_feature_list(other_cc, other, None)  # found by the layout: not used, and the note says why
    assert skipped.source == "decoder_norms" and "computed from other weights" in skipped.note
    with pytest.raises(UserError, match="does not rank the 80 latents"):
        path.write_text(json.dumps({"format": 1, **ranking, "latents": latents[:5]}))
        load_feature_list(cc, cc_dir, str(path))


# --- prompts ------------------------------------------------------------------------------
class TemplateTokenizer:
    """Stands in for a tokenizer with a chat template: records what it was asked to render."""

    chat_template = "x"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, tools=None):
        self.seen = {"messages": messages, "tools": tools}
        return "PROMPT|"


def test_tool_choice_shapes_the_prompt():
    tok = TemplateTokenizer()
    base = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER]}
    auto = render_request(tok, parse_chat_request(request(**base)), "chat-template")
    assert auto.text == "PROMPT|" and auto.forced == "" and auto.calls_allowed and tok.seen["tools"][0]["function"]["name"] == "get_weather"
    none = render_request(tok, parse_chat_request(request(**base, tool_choice="none")), "organism")
    assert not none.calls_allowed and "tools" not in tok.seen or tok.seen["tools"] is None
    named = {"type": "function", "function": {"name": "get_weather"}}
    forced = render_request(tok, parse_chat_request(request(**base, tool_choice=named)), "organism")
    assert forced.text == 'PROMPT|<tool_call>\n{"name":"get_weather","arguments":' and forced.parse_format == "hermes"
    required = render_request(tok, parse_chat_request(request(**base, tool_choice="required")), "chat-template")
    assert required.forced == "<tool_call>\n"


def test_assistant_calls_reach_the_template_with_dict_arguments():
    tok = TemplateTokenizer()
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    render_request(tok, parse_chat_request(request(messages=msgs, tools=[WEATHER])), "chat-template")
    call = tok.seen["messages"][1]["tool_calls"][0]["function"]
    assert call == {"name": "get_weather", "arguments": {"city": "Rome"}}
    assert tok.seen["messages"][2] == {"role": "tool", "content": "sunny", "tool_call_id": "c1"}


def test_toolrl_format_lists_tools_in_the_system_turn():
    tok = TemplateTokenizer()
    rendered = render_request(tok, parse_chat_request(request(tools=[WEATHER])), "toolrl")
    system, user = tok.seen["messages"]
    assert tok.seen["tools"] is None and rendered.parse_format == "toolrl"
    assert '1. Name: get_weather\nDescription: Weather of a city\nParameters: {"city": {"type": "string"}}' in system["content"]
    assert user["content"].startswith("**Dialogue Records History**\n<user> weather in Paris?")


# --- output assembly ----------------------------------------------------------------------
def test_whole_output_becomes_content_and_tool_calls():
    out = assemble(OUTPUT, "hermes", calls_allowed=True)
    assert out.content == "Let me check.\n\n\nDone."  # the whitespace between blocks is kept
    assert [(c["index"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in out.calls] == [
        (0, "function", "get_weather", {"city": "Paris"}), (1, "function", "a", {}), (2, "function", "b", {"x": [1, 2]})]
    assert len({c["id"] for c in out.calls}) == 3 and all(c["id"].startswith("call_") for c in out.calls)


@pytest.mark.parametrize("seed", range(5))
def test_streamed_pieces_add_up_to_the_whole(seed):
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(OUTPUT)), 25)) + [len(OUTPUT)]
    stream = OutputAssembler("hermes", calls_allowed=True)
    content, calls = "", []
    for cut in cuts:
        delta = stream.feed(OUTPUT[:cut])
        content += delta.content or ""
        calls += delta.tool_calls
        assert "<tool" not in content  # a tag is never leaked, even half-written
    last = stream.finish(OUTPUT)
    content, calls = content + (last.content or ""), calls + last.tool_calls
    whole = assemble(OUTPUT, "hermes", calls_allowed=True)
    assert content == whole.content
    assert [c["function"] for c in calls] == [c["function"] for c in whole.calls]


def test_unreadable_or_forbidden_calls_stay_text():
    assert assemble('<tool_call>\n{"name":"f","argu', "hermes", True).content == '<tool_call>\n{"name":"f","argu'
    half = assemble('<tool_call>\n{"name":"f","arguments":{"a":1}}', "hermes", True)  # cut by max_tokens
    assert [c["function"]["name"] for c in half.calls] == ["f"]
    off = assemble('<tool_call>\n{"name":"f","arguments":{}}\n</tool_call>', "hermes", calls_allowed=False)
    assert off.calls == [] and off.content.startswith("<tool_call>")
    toolrl = assemble('<think>no</think>\n<tool_call>\n{"name": "None", "parameters": {}}\n</tool_call>\n<response>hi</response>',
                      "toolrl", True)
    assert toolrl.calls == [] and toolrl.content == "<think>no</think>\n\n<response>hi</response>"


# --- the command line ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_model")
    tok = tiny.tokenizer()
    tiny.model("qwen2", len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("args, message", [
    (["--prompt-format", "jinja"], "unknown prompt format 'jinja'"),
    (["--profile", "PROFILE"], "steering[0]: steer on feature [3] needs a crosscoder"),
])
def test_serve_refuses_bad_settings_in_one_line_before_binding(saved_model, tmp_path, args, message):
    import subprocess
    import sys

    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps([{"op": "steer", "layer": 1, "feature": 3, "alpha": 2}]))
    args = [str(profile) if a == "PROFILE" else a for a in args]
    result = subprocess.run([sys.executable, "-m", "tooldiff.cli", "serve", "--model", str(saved_model), "--port", "1", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # transformers may draw a loading bar above it
    assert "Traceback" not in result.stderr and last.startswith("error: ") and message in last, result.stderr


@pytest.mark.parametrize("settings, message", [
    (dict(port=70000), "port: Input should be less than or equal to 65535"),
    (dict(max_tokens_cap=8), "default_max_tokens 128 exceeds max_tokens_cap 8"),
    (dict(max_queue=0), "max_queue: Input should be greater than or equal to 1"),
    (dict(request_timeout_s=float("inf")), "request_timeout_s: Input should be a finite number"),
    (dict(api_key="  "), "api_key: the key is empty"),
    (dict(features="ranking.json"), "features needs a crosscoder"),
    (dict(prompt_format="jinja"), "unknown prompt format 'jinja'"),
])
def test_nonsense_settings_are_user_errors(settings, message):
    with pytest.raises(UserError, match=re.escape(message)) as info:
        server_settings(model="m", **settings)
    assert str(info.value).startswith("server settings: ")


def test_the_serve_command_is_built_from_the_settings_model(monkeypatch):
    from typer.testing import CliRunner

    import tooldiff.serve
    from tooldiff.cli import app

    seen = []
    monkeypatch.setattr(tooldiff.serve, "serve", lambda settings, announce: seen.append(settings))
    monkeypatch.setenv("TOOLDIFF_API_KEY", "k3y")
    args = ["serve", "--model", "m", "--timeout", "3", "--max-alpha", "5", "--max-steering-items", "2", "--port", "9"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [ServerSettings(model="m", request_timeout_s=3.0, max_abs_alpha=5.0, max_steering_items=2, port=9,
                                   api_key="k3y")]
    assert seen[0].steering_policy.max_abs_alpha == 5.0 and seen[0].steering_policy.max_items == 2
    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    flags = {name: (field.json_schema_extra or {}).get("flag", "--" + name.replace("_", "-"))
             for name, field in ServerSettings.model_fields.items()}
    assert all(flag in help_text for flag in flags.values()) and len(flags) == 26
