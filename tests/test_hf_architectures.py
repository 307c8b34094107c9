"""Architecture coverage (issue 7): harvest, the splice identity and steering on tiny random
decoders of seven families, built from configs (no downloads)."""

import json

import pytest
import torch
from transformers import (
    AutoModelForCausalLM, Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig, MistralConfig, Phi3Config, Qwen2Config,
)

from tooldiff import hf
from tooldiff.activations import harvest_pair, load_activations
from tooldiff.interventions import Intervention, intervene

torch.set_num_threads(1)
D, LAYERS, LAYER, VOCAB = 32, 2, 1, 64
ARCHS = ["qwen2", "llama", "mistral", "gemma2", "gpt2", "gpt_neox", "phi3"]


def arch_config(arch: str, vocab_size: int):
    common = dict(vocab_size=vocab_size, initializer_range=0.3, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    decoder = dict(hidden_size=D, intermediate_size=64, num_hidden_layers=LAYERS, num_attention_heads=4,
                   max_position_embeddings=256, **common)
    if arch == "qwen2":
        return Qwen2Config(num_key_value_heads=2, **decoder)
    if arch == "llama":
        return LlamaConfig(num_key_value_heads=4, **decoder)
    if arch == "mistral":
        return MistralConfig(num_key_value_heads=2, sliding_window=None, **decoder)
    if arch == "gemma2":
        return Gemma2Config(num_key_value_heads=2, head_dim=8, sliding_window=16, **decoder)
    if arch == "phi3":
        return Phi3Config(num_key_value_heads=4, **decoder)
    if arch == "gpt_neox":
        return GPTNeoXConfig(**decoder)
    if arch == "gpt2":
        return GPT2Config(n_embd=D, n_layer=LAYERS, n_head=4, n_positions=256, **common)
    raise ValueError(arch)


def arch_model(arch: str, vocab_size: int = VOCAB, seed: int = 0):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(arch_config(arch, vocab_size), attn_implementation="eager")
    model.generation_config.eos_token_id = 0
    return model.eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_layer_table_resolves_every_family(arch):
    model = arch_model(arch)
    assert model.config.model_type in hf.LAYER_PATHS
    assert hf.n_layers(model) == LAYERS and hf.hidden_size(model) == D


@pytest.mark.parametrize("arch", ARCHS)
def test_harvest_reads_layer_output_of_both_models(tiny, arch, tmp_path):
    tok = tiny.tokenizer()
    paths = {}
    for name, seed in (("base", 0), ("rl", 1)):
        arch_model(arch, len(tok), seed).save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
        paths[name] = tmp_path / name
    data = tmp_path / "data.jsonl"
    texts = ["the weather in paris", "call the calculator with 12", "tools: get_weather"]
    data.write_text("".join(json.dumps({"id": f"g{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    # Layer 0: hidden_states[1] is its raw output (the last entry of hidden_states is normed).
    harvest_pair(base=str(paths["base"]), rl=str(paths["rl"]), layer=0, data=data, out=tmp_path / "acts",
                 batch_size=2)
    store = load_activations(tmp_path / "acts")
    assert tuple(store.acts_NMD.shape) == (3, 2, D)
    # The stored row equals the layer output of a plain forward pass on the same prompt.
    rl = hf.load_model(paths["rl"])
    ids = tok(texts[0], add_special_tokens=True)["input_ids"]
    with torch.no_grad():
        hidden = rl(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[1][0, -1]
    row = int((store.rows["sample"] == 0).nonzero()[0])
    assert torch.allclose(store.acts_NMD[row, 0].float(), hidden, atol=1e-4)
    assert not torch.allclose(store.acts_NMD[row, 0], store.acts_NMD[row, 1])


@pytest.mark.parametrize("arch", ARCHS)
def test_splice_with_error_is_the_identity(tiny, arch):
    model, cc = arch_model(arch), tiny.crosscoder(d_model=D, layer=LAYER)
    ids_BT, mask_BT = tiny.padded_batch(VOCAB)
    clean = tiny.forward(model, ids_BT, mask_BT)
    splice = Intervention(op="reconstruct", layer=LAYER, add_error=True, positions="all")
    with intervene(model, [splice], cc, 0):
        spliced = tiny.forward(model, ids_BT, mask_BT)
    assert (spliced - clean).abs().max().item() <= 1e-5
    with intervene(model, [Intervention(op="reconstruct", layer=LAYER, positions="all")], cc, 0):
        reconstructed = tiny.forward(model, ids_BT, mask_BT)
    assert (reconstructed - clean).abs().max().item() > 1e-3  # the hook is really on


@pytest.mark.parametrize("arch", ARCHS)
def test_steering_moves_the_logits_at_the_last_prompt_token(tiny, arch):
    model = arch_model(arch)
    ids_BT, mask_BT = tiny.padded_batch(VOCAB)
    clean = tiny.forward(model, ids_BT, mask_BT)
    direction = torch.randn(D, generator=torch.Generator().manual_seed(3))
    add = Intervention(op="add", layer=LAYER, vector=direction, dose=2.0, positions="last_prompt")
    with intervene(model, [add], None, 0):
        steered = tiny.forward(model, ids_BT, mask_BT)
    assert (steered[:, -1] - clean[:, -1]).abs().max().item() > 1e-2
    # last_prompt edits only the last position; earlier positions are untouched (causal).
    assert (steered[:, :-1] - clean[:, :-1]).abs().max().item() <= 1e-5
    cc = tiny.crosscoder(d_model=D, layer=LAYER)
    latents = list(range(cc.cfg.n_excl_a + 4))  # A-exclusive and a few shared latents
    with intervene(model, [Intervention(op="steer", layer=LAYER, feature=latents, alpha=16.0)], cc, 0):
        latent_steered = tiny.forward(model, ids_BT, mask_BT)
    assert (latent_steered[:, -1] - clean[:, -1]).abs().max().item() > 1e-3
