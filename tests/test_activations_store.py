"""Reading harvests: every bad input is a one-line UserError naming the shard or field."""

import json
import shutil

import pytest
import torch

from tooldiff.activations import BatchStream, iter_batches, load_activations, split_rows
from tooldiff.activations.manifest import sha256_file
from tooldiff.activations.synthetic import planted_activations, write_harvest
from tooldiff.errors import UserError

torch.set_num_threads(1)


def harvest(path, layer=0, models=("rl", "base"), x=None, **kw):
    x = planted_activations(300, 8, seed=layer) if x is None else x
    write_harvest(path, x, layer=layer, models=models, shard_rows=100, **kw)
    return path


def edit_manifest(path, fn):
    manifest = json.loads((path / "manifest.json").read_text())
    fn(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_and_stats(tmp_path):
    x = planted_activations(300, 8, seed=0)
    store = load_activations(harvest(tmp_path / "h", x=x))
    assert torch.equal(store.acts_NMD, x) and store.n_rows == 300 and store.d_model == 8
    assert torch.allclose(store.mean_MD, x.double().mean(0)) and torch.allclose(store.var_MD, x.double().var(0))
    assert torch.equal(store.rows["sample"], torch.arange(300))


def test_corrupt_shard_is_named(tmp_path):
    h = harvest(tmp_path / "h")
    shard = h / "shard-00001.safetensors"
    blob = bytearray(shard.read_bytes())
    blob[-3] ^= 0x01
    shard.write_bytes(bytes(blob))
    with pytest.raises(UserError, match=r"shard .*shard-00001\.safetensors is corrupt"):
        load_activations(h)
    shard.unlink()
    with pytest.raises(UserError, match=r"shard-00001\.safetensors is missing"):
        load_activations(h)


@pytest.mark.parametrize("other", [{"layer": 3}, {"models": ("other-rl", "base")}])
def test_shards_from_another_harvest_are_named(tmp_path, other):
    h = harvest(tmp_path / "h")
    foreign = harvest(tmp_path / "foreign", **other)
    shutil.copy(foreign / "shard-00002.safetensors", h / "shard-00002.safetensors")
    # even with the checksum "fixed up", the shard's own identity gives it away
    edit_manifest(h, lambda m: m["shards"][2].update(sha256=sha256_file(h / "shard-00002.safetensors")))
    what = "layer 3" if "layer" in other else "other-rl"
    with pytest.raises(UserError, match=rf"shard-00002\.safetensors .*{what}.*mixed"):
        load_activations(h)


def test_nan_or_inf_rows_are_named(tmp_path):
    x = planted_activations(300, 8)
    x[150, 1, 3] = float("nan")
    x[160, 0, 0] = float("inf")
    with pytest.raises(UserError, match=r"shard-00001\.safetensors: row 50 holds NaN or inf .*2 bad rows"):
        load_activations(harvest(tmp_path / "h", x=x))


def test_incomplete_or_invalid_manifest(tmp_path):
    h = harvest(tmp_path / "h")
    edit_manifest(h, lambda m: m.update(complete=False))
    with pytest.raises(UserError, match="incomplete"):
        load_activations(h)
    edit_manifest(h, lambda m: m.update(complete=True, layer="three"))
    with pytest.raises(UserError, match="invalid manifest: layer: "):
        load_activations(h)
    with pytest.raises(UserError, match="manifest.json is missing"):
        load_activations(tmp_path / "nowhere")


def test_float16_storage(tmp_path):
    store = load_activations(harvest(tmp_path / "h", dtype="float16"))
    assert store.acts_NMD.dtype == torch.float16
    assert next(iter_batches(store, 32)).dtype == torch.float32


def test_batch_stream_is_a_pure_function_of_seed_and_step():
    a, b = BatchStream(100, 32, seed=4), BatchStream(100, 32, seed=4)
    steps = [a.indices(s) for s in range(10)]
    assert all(torch.equal(steps[s], b.indices(s)) for s in reversed(range(10)))  # any order, same batches
    epoch0 = torch.cat(steps)[:100]
    assert sorted(epoch0.tolist()) == list(range(100))  # each row once per epoch
    assert not torch.equal(BatchStream(100, 32, seed=5).indices(0), steps[0])
    with pytest.raises(UserError, match="batch_size=200 exceeds"):
        BatchStream(100, 200, seed=0)


def test_split_rows_is_disjoint_and_seeded():
    train, held = split_rows(50, 10, seed=1)
    assert len(held) == 10 and not set(train.tolist()) & set(held.tolist())
    assert torch.equal(held, split_rows(50, 10, seed=1)[1])


def test_shard_files_are_standard_safetensors_written_from_their_pieces(tmp_path):
    """write_pieces: the file safetensors loads is the pieces concatenated, its hash is the file's."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from tooldiff.activations.manifest import sha256_file
    from tooldiff.activations.shards import write_pieces

    gen = torch.Generator().manual_seed(0)
    acts = [torch.randn(n, 2, 5, generator=gen).to(dt) for n, dt in ((3, torch.float32), (4, torch.float32))]
    pieces = {"acts": acts, "sample": [torch.arange(3), torch.arange(3, 7)],
              "kind": [torch.tensor([1, 2, 3], dtype=torch.int16), torch.tensor([4, 5, 6, 7], dtype=torch.int16)],
              "half": [torch.randn(3, 2, generator=gen).to(torch.bfloat16), torch.randn(4, 2, generator=gen).to(torch.bfloat16)],
              "flag": [torch.tensor([1, 0, 1], dtype=torch.uint8), torch.tensor([0, 0, 1, 1], dtype=torch.uint8)]}
    digest = write_pieces(tmp_path / "s.safetensors", pieces, {"harvest_id": "x"})
    loaded = load_file(str(tmp_path / "s.safetensors"))
    assert set(loaded) == set(pieces)
    for name, parts in pieces.items():
        assert torch.equal(loaded[name], torch.cat(parts)), name
    with safe_open(str(tmp_path / "s.safetensors"), framework="pt") as fh:
        assert fh.metadata() == {"harvest_id": "x"}
    assert digest == sha256_file(tmp_path / "s.safetensors")
