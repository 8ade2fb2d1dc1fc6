"""Models and tokenizers: the tiny character-level Llama of the arithmetic world, and loading any HF causal LM.

The tiny model is a plain `LlamaForCausalLM` and its tokenizer a `PreTrainedTokenizerFast`, both saved in
Hugging Face format, so `AutoModelForCausalLM.from_pretrained(dir)` loads them like any hub model and
nothing downstream knows it is tiny.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

# Multi-character pieces of the prompt formats get one token each, so every digit keeps one position.
FORMAT_TOKENS = ("User: ", " Assistant: ", "\\boxed{", "<question>", "</question>", "<answer>", "</answer>")
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
CHARS = "0123456789+-*=,.:;?!()/ {}\\<>_^'\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "assets" / "tiny-arith"


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer in HF format: every character one token, format strings one token."""
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    # Like Llama tokenizers, encoding a text adds <bos> (id 1) in front.
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        padding_side="left",
    )
    fast.add_tokens(list(FORMAT_TOKENS))
    return fast


@dataclass
class TinyModelConfig:
    """Shape of the tiny default model (about 1.06M parameters)."""

    hidden_size: int = 128
    """width of the residual stream"""
    num_layers: int = 4
    """transformer blocks"""
    num_heads: int = 4
    """attention heads (no grouped-query attention)"""
    intermediate_size: int = 512
    """MLP width"""
    max_positions: int = 256
    """longest sequence (prompt + completion) in tokens"""


def build_tiny_model(tokenizer: PreTrainedTokenizerBase, cfg: TinyModelConfig, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def load_policy(
    path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load any causal LM and its tokenizer from a local directory (or a hub name when online)."""
    path = str(path)
    local = Path(path)
    if local.exists() and not (local / "config.json").exists():
        raise FileNotFoundError(f"{path}: no config.json here; not a Hugging Face model directory")
    if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise FileNotFoundError(f"model path {path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32).to(device)
    return model, tokenizer


def clone_model(model: PreTrainedModel) -> PreTrainedModel:
    """An independent copy (students are copies of the baseline; references are frozen copies)."""
    return copy.deepcopy(model)


def frozen(model: PreTrainedModel) -> PreTrainedModel:
    ref = clone_model(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def save_policy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
