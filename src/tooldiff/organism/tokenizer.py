"""The organism's byte-level BPE tokenizer, trained locally, saved as a PreTrainedTokenizerFast.

Pre-tokenization splits text into letter runs, digit runs, whitespace runs and punctuation runs
before byte-level BPE. Hence:
- a word is the same token in a request and inside a JSON call (`Paris` in `in Paris?` and in
  `"city":"Paris"`): copying an argument is one lookup, there is no " Paris" vs "Paris" pair;
- every number 1-99 and every word of the world becomes one token (checked by
  `check_single_tokens`), which SPEC section 5 found essential for copying;
- a JSON key and its colon are one token (`"city":"`, `"hour":`), so the token right before a
  value says which argument comes: copying is then a one-step lookup from that token. With the
  key and `":"` as separate tokens, the model must first carry the key one position forward,
  and copying stayed at chance for 800 steps of call logs (3 and 4 layers, seed 0).

The tool-call tags are added tokens that are NOT special (TRL decodes with skip_special_tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

from tooldiff.organism.chat import CHAT_TEMPLATE, EOS_TURN, PAD, SPECIAL_TOKENS, TOOL_TAGS

# a JSON key with its colon (and the opening quote of a string value) | letters/underscore |
# digits | whitespace | other symbols (JSON punctuation merges into `","` etc.)
PRETOKEN_PATTERN = r'"[A-Za-z_]+":"?|[A-Za-z_]+|[0-9]+|\s+|(?:(?!"[A-Za-z_]+":)[^A-Za-z_0-9\s])+'


def train_tokenizer(texts: list[str], vocab_size: int):
    """Train the BPE on `texts` and wrap it for transformers (chat template, eos, pad)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    core.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in TOOL_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TURN,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",  # decoder-only generation pads on the left
        model_max_length=4096,
    )


def save_tokenizer(tokenizer, path: Path) -> None:
    """save_pretrained, then pin the class so that every loader gets this exact tokenizer.

    SPEC section 5's trap: transformers forces `Qwen2Tokenizer` for a qwen2 config.json (model type
    "qwen2" is on its list of repos with a wrong hub tokenizer class), and Qwen2Tokenizer swaps
    in its own pre-tokenizer, which splits every digit. Two settings prevent it:
    - `tokenizer_class: PreTrainedTokenizerFast`: tooldiff.hf.load_tokenizer keys on it and loads
      that class explicitly;
    - `auto_map.AutoTokenizer = [None, "PreTrainedTokenizerFast"]`: AutoTokenizer then skips the
      forced class and builds the fast tokenizer from tokenizer.json as is (identical ids; the
      round-trip test checks it). With trust_remote_code=True AutoTokenizer would look for remote
      code and fail loudly rather than re-split digits silently.
    """
    tokenizer.save_pretrained(str(path))
    cfg_file = Path(path) / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["auto_map"] = {"AutoTokenizer": [None, "PreTrainedTokenizerFast"]}
    cfg_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def check_single_tokens(tokenizer, words: list[str]) -> None:
    """Raise if some argument value or tool word is split: copying would become multi-step."""
    split = [w for w in words if len(tokenizer(w, add_special_tokens=False)["input_ids"]) != 1]
    if split:
        raise RuntimeError(f"the organism tokenizer splits {len(split)} world words, e.g. {split[:5]}; "
                           "raise vocab_size")
