"""Shared fixtures: a tiny random Llama with the character tokenizer, built locally (no network)."""

import pytest
import torch

from soar.engine.model import TinyModelConfig, build_char_tokenizer, build_tiny_model, save_policy

TINY = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=256)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny():
    tok = build_char_tokenizer()
    return build_tiny_model(tok, TINY, seed=0).eval(), tok


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TINY, seed=0)
    path = tmp_path_factory.mktemp("tiny-model")
    save_policy(model, tok, path)
    return path


def load_probe(name: str):
    """Import research/<name>.py (a script, not a package module) for testing."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "research" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
