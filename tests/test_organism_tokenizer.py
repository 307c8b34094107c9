"""The organism tokenizer: round trip through every way the project (or a user) loads it."""

from __future__ import annotations

import json

import pytest

from tooldiff.hf import load_tokenizer, render_prompt
from tooldiff.organism.chat import CALL_CLOSE, CALL_OPEN, call_text, render_chat
from tooldiff.organism.store import read_jsonl


def _texts(records: list[dict]) -> list[str]:
    """Every rendered test prompt, every right answer, and all numbers up to 999."""
    prompts = [render_chat(r["messages"], r["tools"]) for r in records]
    answers = [call_text(r["needs"]) for r in records if r["needs"]]
    numbers = [" ".join(str(n) for n in range(k, k + 100)) for k in range(0, 1000, 100)]
    return prompts + answers + numbers + ["12.5 and 3.25, 2026-01-01 at 07:45"]


def _loaders(path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    return {
        "tooldiff.hf.load_tokenizer": load_tokenizer(path),
        "AutoTokenizer": AutoTokenizer.from_pretrained(str(path)),
        "PreTrainedTokenizerFast": PreTrainedTokenizerFast.from_pretrained(str(path)),
    }


def test_round_trip_identical_ids_on_whole_test_split(tiny_organism):
    """Saved next to a qwen2 config (base/ and rl/), reloaded every way: identical ids."""
    test = read_jsonl(tiny_organism / "data" / "test.jsonl")
    texts = _texts(test)
    reference = load_tokenizer(tiny_organism / "tokenizer")(texts, add_special_tokens=False)["input_ids"]
    for model_dir in ("base", "rl"):
        assert json.loads((tiny_organism / model_dir / "config.json").read_text())["model_type"] == "qwen2"
        for name, tok in _loaders(tiny_organism / model_dir).items():
            ids = tok(texts, add_special_tokens=False)["input_ids"]
            assert ids == reference, f"{name} on {model_dir}/ gives other ids"
            assert tok.decode(ids[-1]) == texts[-1]


def test_digits_stay_whole_and_world_words_are_single_tokens(tiny_organism):
    from tooldiff.organism.build import _world_words

    tok = load_tokenizer(tiny_organism / "rl")
    for n in range(1, 100):
        assert len(tok(str(n), add_special_tokens=False)["input_ids"]) == 1, n
    for word in _world_words():
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_tool_tags_are_added_but_not_special(tiny_organism):
    tok = load_tokenizer(tiny_organism / "rl")
    added = {t.content: t for t in tok.added_tokens_decoder.values()}
    for tag in (CALL_OPEN, CALL_CLOSE):
        assert tag in added and not added[tag].special
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    text = call_text({"name": "set_alarm", "arguments": {"hour": 7}})
    ids = tok(text + tok.eos_token, add_special_tokens=False)["input_ids"]
    # TRL decodes completions like this; the tags must survive it.
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_chat_template_matches_corpus_rendering(tiny_organism):
    tok = load_tokenizer(tiny_organism / "base")
    for r in read_jsonl(tiny_organism / "data" / "calibration.jsonl")[:20]:
        rendered = tok.apply_chat_template(r["messages"], tools=r["tools"], add_generation_prompt=True,
                                           tokenize=False)
        assert rendered == render_chat(r["messages"], r["tools"]) == render_prompt(tok, r)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_saved_config_pins_the_class(tiny_organism):
    cfg = json.loads((tiny_organism / "rl" / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_qwen2_tokenizer_would_split_digits(tiny_organism, tmp_path):
    """Why the pinning matters: without it AutoTokenizer re-splits numbers (SPEC section 5)."""
    import shutil

    from transformers import AutoTokenizer

    copy = tmp_path / "unpinned"
    shutil.copytree(tiny_organism / "rl", copy)
    cfg_file = copy / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("auto_map")
    cfg_file.write_text(json.dumps(cfg))
    unpinned = AutoTokenizer.from_pretrained(str(copy))
    if type(unpinned).__name__ != "Qwen2Tokenizer":
        pytest.fail(f"transformers no longer forces Qwen2Tokenizer (got {type(unpinned).__name__}); "
                    "revisit the tokenizer pinning in organism/tokenizer.py")
    assert len(unpinned("42", add_special_tokens=False)["input_ids"]) == 2
