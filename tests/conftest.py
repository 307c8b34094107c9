"""Shared pytest fixtures. Helpers append fixtures below; keep each one small and offline."""

import os
from pathlib import Path

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

    TOOLDIFF_TEST_ORGANISM=DIR keeps it in DIR across sessions (built there once, then reused
    while the tiny config is unchanged): for iterating on one test file without the 80 s build.
    """
    from tooldiff.organism import build_organism

    keep = os.environ.get("TOOLDIFF_TEST_ORGANISM")
    out = Path(keep) if keep else tmp_path_factory.mktemp("organism") / "tiny"
    return build_organism(out, preset="tiny", seed=0)
