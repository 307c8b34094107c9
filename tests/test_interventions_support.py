"""Shared builders for the interventions tests: tiny random HF models, a tokenizer, a crosscoder.

Named test_interventions_* to stay inside the interventions test area; it holds no tests.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers import Qwen2Config, Qwen2ForCausalLM

from tooldiff.crosscoder.config import CrosscoderConfig
from tooldiff.crosscoder.model import CheckpointInfo, Crosscoder

D_MODEL = 32
N_LAYERS = 3
LAYER = 1
CORPUS = [
    "the weather in paris is sunny today",
    "call the calculator with 12 and 30",
    "tools: get_weather, add_numbers",
    "user: what is the weather in rome? assistant: let me check",
    "a quick brown fox jumps over the lazy dog 0123456789",
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on a few lines, with <eos>/<pad> special and <tool_call> NOT special."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    fast.add_tokens(["<tool_call>"])  # added, not special: generation must keep it in the text
    return fast


def tiny_model(arch: str, vocab_size: int, seed: int = 0):
    """A random decoder of the given family; a wide init spreads the logits so greedy ties are rare."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, initializer_range=0.3, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    if arch == "qwen2":
        cfg = Qwen2Config(hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=N_LAYERS,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **common)
        model = Qwen2ForCausalLM(cfg)
    elif arch == "llama":
        cfg = LlamaConfig(hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=N_LAYERS,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, **common)
        model = LlamaForCausalLM(cfg)
    elif arch == "gpt2":
        cfg = GPT2Config(n_embd=D_MODEL, n_layer=N_LAYERS, n_head=4, n_positions=256, **common)
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(arch)
    model.generation_config.eos_token_id = 0
    return model.eval()


def tiny_crosscoder(d_model: int = D_MODEL, layer: int | None = LAYER, seed: int = 0) -> Crosscoder:
    """A random DFC (10 % + 10 % exclusive) with non-trivial normalization statistics."""
    cfg = CrosscoderConfig(d_model=d_model, dict_size=80, excl_a=0.1, excl_b=0.1, k=8, seed=seed)
    cc = Crosscoder.initialized(cfg, CheckpointInfo(layer=layer))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        cc.set_normalization(torch.randn(2, d_model, generator=gen) * 0.5, torch.tensor([2.0, 3.0]))
        cc.b_dec_MD.copy_(torch.randn(2, d_model, generator=gen) * 0.1)
    return cc.eval()


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids_BT = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask_BT = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids_BT[r, width - len(row):] = torch.tensor(row)
        mask_BT[r, width - len(row):] = 1
    return ids_BT, mask_BT


def padded_batch(vocab_size: int, lengths=(7, 3, 5, 1), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded random token rows of different lengths (pad id 1, tokens drawn from 2..V)."""
    gen = torch.Generator().manual_seed(seed)
    rows = [torch.randint(2, vocab_size, (n,), generator=gen).tolist() for n in lengths]
    return left_pad(rows, pad_id=1)


def forward(model, ids_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """Logits of one plain forward call with proper position ids for left padding."""
    pos_BT = (mask_BT.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return model(input_ids=ids_BT, attention_mask=mask_BT, position_ids=pos_BT).logits


class LayerRecorder:
    """Records the (edited) output of one decoder layer on every forward call."""

    def __init__(self, layer_module):
        self.calls: list[torch.Tensor] = []
        self._handle = layer_module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        h = output if isinstance(output, torch.Tensor) else output[0]
        self.calls.append(h.detach().clone())

    def remove(self) -> None:
        self._handle.remove()
