"""Decoders behind the sampling seam: prefill a batch of left-padded prompts, then one token per step.

- `HFDecoder` (backend `hf`): the model's own Hugging Face forward with its dynamic KV cache; any model.
- `LlamaDecoder` (backend `fused`): a lean forward for a plain `LlamaForCausalLM`. In a CPU decoding step
  of the 1M-parameter default model, Hugging Face's forward builds a 4-D mask and grows its KV cache by
  concatenation (the largest single cost in a profile). This one reads the same weights (no copy, so it
  follows a model in training) and does the same maths with a preallocated KV buffer and a boolean key
  mask; it gives the same tokens (tested). Training and log-probs keep the Hugging Face forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


BACKENDS = ("auto", "hf", "fused")


class HFDecoder:
    """The model's own forward and dynamic cache."""

    def __init__(self, model) -> None:
        self.model = model
        self.cache = None
        self.mask: torch.Tensor | None = None

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.mask = mask
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        self.cache = out.cache
        return out.logits[:, -1, :]

    def step(self, tokens: torch.Tensor, keep: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, keep.long()[:, None]], dim=1)
        out = self.model(
            input_ids=tokens[:, None], attention_mask=self.mask, position_ids=positions, cache=self.cache, use_cache=True
        )
        self.cache = out.cache
        return out.logits[:, -1, :]


def decoder(model, batch: int, capacity: int, backend: str = "auto"):
    """The decoder of `backend`; `auto` = `fused` for a plain Llama on a CPU (where it was measured faster,
    docs/PERFORMANCE.md), else `hf`. `fused` on a model it cannot run is an error, not a silent fallback."""
    if backend not in BACKENDS:
        raise ValueError(f"sampler backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    on_cpu = next(model.parameters()).device.type == "cpu"
    if backend == "fused" or (backend == "auto" and on_cpu and supports(model)):
        if not supports(model):
            raise ValueError(
                f"sampler backend 'fused' runs plain LlamaForCausalLM models only (no LoRA adapters, no biases), "
                f"not {type(model).__name__}; use 'auto' or 'hf'"
            )
        return LlamaDecoder(model, batch, capacity)
    return HFDecoder(model)


def supports(model) -> bool:
    """True for a plain `LlamaForCausalLM` (no adapters, no biases, SiLU MLP, one tensor-parallel slice)."""
    if type(model).__name__ != "LlamaForCausalLM":
        return False
    cfg = model.config
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return False
    names = ("q_proj", "k_proj", "v_proj", "o_proj")
    for layer in model.model.layers:
        mods = [getattr(layer.self_attn, n) for n in names]
        mods += [layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj]
        if any(type(m) is not nn.Linear for m in mods):  # e.g. PEFT's LoRA layers
            return False
    return type(model.lm_head) is nn.Linear


def _rms(x: torch.Tensor, norm) -> torch.Tensor:
    """LlamaRMSNorm: normalised in float32, scaled in the input's dtype."""
    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class LlamaDecoder:
    """Prefill once, then one token per step, for a batch of left-padded prompts."""

    def __init__(self, model, batch: int, capacity: int) -> None:
        self.model = model
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        p = next(model.parameters())
        shape = (batch, self.kv_heads, capacity, self.head_dim)
        dtype = getattr(model, "soar_autocast", None) or p.dtype  # K/V are computed in the compute dtype
        self.keys = [torch.empty(shape, dtype=dtype, device=p.device) for _ in model.model.layers]
        self.values = [torch.empty(shape, dtype=dtype, device=p.device) for _ in model.model.layers]
        self.valid = torch.zeros((batch, capacity), dtype=torch.bool, device=p.device)
        self.length = 0

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits of the last position of each row; `mask` is 1 on prompt tokens, 0 on left padding.

        Each distinct prompt is run once (the k samples of a prompt are k equal rows), then its keys and
        values are copied to its rows: at k = 8 this was a third of a sampling call's time."""
        T = ids.shape[1]
        self.valid[:, :T] = mask.bool()
        unique, row_of = torch.unique(ids, dim=0, return_inverse=True)  # equal ids: equal mask and positions
        first = torch.zeros(len(unique), dtype=torch.long, device=ids.device)
        first[row_of] = torch.arange(len(ids), device=ids.device)  # a row of each distinct prompt
        valid = self.valid[first, :T]
        causal = torch.ones((T, T), dtype=torch.bool, device=ids.device).tril()
        allowed = causal[None] & valid[:, None, :]  # (U, T, T)
        allowed |= torch.eye(T, dtype=torch.bool, device=ids.device)[None]  # a pad position sees itself: no NaN
        logits = self._forward(unique, positions[first], allowed[:, None], rows=row_of)
        return logits[row_of]

    def step(self, tokens: torch.Tensor, keep: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits after one more token per row; `keep` is False for rows whose new token is padding."""
        self.valid[:, self.length] = keep
        allowed = self.valid[:, None, None, : self.length + 1]  # (B, 1, 1, L)
        return self._forward(tokens[:, None], positions, allowed)

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The forward of `ids` (one row per cache row, or with `rows`, the cache rows each input row fills)."""
        inner = self.model.model
        x = F.embedding(ids, inner.embed_tokens.weight)
        cos, sin = inner.rotary_emb(x, position_ids=positions)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, D): broadcast over heads
        B, T, _ = x.shape
        start, end = self.length, self.length + T
        for i, layer in enumerate(inner.layers):
            att = layer.self_attn
            h = _rms(x, layer.input_layernorm)
            q = F.linear(h, att.q_proj.weight).view(B, T, self.heads, self.head_dim).transpose(1, 2)
            k = F.linear(h, att.k_proj.weight).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            v = F.linear(h, att.v_proj.weight).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            if rows is None:
                self.keys[i][:, :, start:end] = k
                self.values[i][:, :, start:end] = v
                keys, values = self.keys[i][:, :, :end], self.values[i][:, :, :end]
            else:  # the prefill of distinct prompts: attend within them, then fill every row of each
                self.keys[i][:, :, start:end] = k[rows]
                self.values[i][:, :, start:end] = v[rows]
                keys, values = k, v
            o = F.scaled_dot_product_attention(
                q,
                keys,
                values,
                attn_mask=allowed,
                scale=att.scaling,
                enable_gqa=self.kv_heads != self.heads,
            )
            x = x + F.linear(o.transpose(1, 2).reshape(B, T, -1), att.o_proj.weight)
            h = _rms(x, layer.post_attention_layernorm)
            mlp = layer.mlp
            x = x + F.linear(F.silu(F.linear(h, mlp.gate_proj.weight)) * F.linear(h, mlp.up_proj.weight), mlp.down_proj.weight)
        self.length = end
        x = _rms(x[:, -1], inner.norm)
        return F.linear(x, self.model.lm_head.weight)
