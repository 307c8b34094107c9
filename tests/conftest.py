"""Shared pytest fixtures. Helpers append fixtures below; keep each one small and offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --- organism (src/tooldiff/organism) ---------------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_organism(tmp_path_factory):
    """Directory of the tiny organism (preset "tiny", seed 0), built once per test session.

    Layout: base/ rl/ tokenizer/ data/{pretrain,rl,calibration,test,generic}.jsonl eval/
    organism.json; open it with `tooldiff.organism.load_organism(path)`.
    """
    from tooldiff.organism import build_organism

    return build_organism(tmp_path_factory.mktemp("organism") / "tiny", preset="tiny", seed=0)
