"""tooldiff.hf: loading and saving without library noise, and the pair's config checks."""

import pytest
import torch
from transformers import AutoConfig

from tooldiff import hf
from tooldiff.errors import UserError
from tooldiff.progress import VERBOSE_ENV

torch.set_num_threads(1)
LIBRARY_BARS = ("Loading weights", "Writing model shards")


@pytest.mark.parametrize("verbose", [False, True])
def test_loads_and_saves_show_no_library_bars_unless_verbose(tiny, tmp_path, capfd, monkeypatch, verbose):
    if verbose:
        monkeypatch.setenv(VERBOSE_ENV, "1")
    tok = tiny.tokenizer()
    capfd.readouterr()
    hf.save_model(tiny.model("qwen2", len(tok)), tmp_path)
    tok.save_pretrained(tmp_path)
    hf.load_model(tmp_path), hf.load_tokenizer(tmp_path)
    shown = capfd.readouterr()
    printed = shown.out + shown.err
    assert all((bar in printed) == verbose for bar in LIBRARY_BARS), printed
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()  # restored: nothing global was left switched off


def test_pair_configs_are_checked_from_config_files_alone(tiny, tmp_path):
    tok = tiny.tokenizer()
    for name, layers in (("a", 3), ("b", 3), ("c", 2)):
        tiny.model("qwen2", len(tok)).config.__class__(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                                                      intermediate_size=64).save_pretrained(tmp_path / name)
    assert hf.check_pair_configs(tmp_path / "a", tmp_path / "b", tok, tok, layer=2) == (32, 3)
    with pytest.raises(UserError, match="3 vs 2 decoder layers"):
        hf.check_pair_configs(tmp_path / "a", tmp_path / "c", tok, tok, layer=1)
    with pytest.raises(UserError, match="layer 3 is out of range"):
        hf.check_config_pair(AutoConfig.from_pretrained(tmp_path / "a"), AutoConfig.from_pretrained(tmp_path / "b"), 3)
    with pytest.raises(UserError, match="cannot read the model config"):
        hf.load_config(tmp_path / "missing")


def test_a_generic_fast_tokenizer_saved_by_transformers_loads_as_saved(tmp_path, tiny):
    """save_pretrained writes `TokenizersBackend` for a generic fast tokenizer; beside a qwen2 config
    AutoTokenizer would load Qwen2Tokenizer, which reads a word-level vocabulary as nothing."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tooldiff.hf import load_tokenizer

    vocab = {"<pad>": 0, "<unk>": 1, **{f"w{i}": i + 2 for i in range(50)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>")
    model = tiny.model("qwen2", len(vocab))
    model.save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    loaded = load_tokenizer(tmp_path)
    assert loaded("w3 w7 w11", add_special_tokens=False)["input_ids"] == [5, 9, 13]
