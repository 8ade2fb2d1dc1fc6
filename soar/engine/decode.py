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
    """Prefill once, then one token per step, for a batch of left-padded prompts.

    Each distinct prompt is run once in the prefill (the k samples of a prompt are k equal rows). When each
    prompt owns k >= 2 consecutive rows (as `sample` lays them out), its keys and values are kept once and a
    decoding step attends to them with one matrix product for all k rows (the prompt's cache is read once
    per step, not k times), and to each row's written tokens, under one softmax. Otherwise every row keeps
    its prompt's keys and attention is one `scaled_dot_product_attention`."""

    def __init__(self, model, batch: int, capacity: int) -> None:
        self.model = model
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        p = next(model.parameters())
        self.dtype = getattr(model, "soar_autocast", None) or p.dtype  # K/V are computed in the compute dtype
        self.device = p.device
        self.batch, self.capacity = batch, capacity
        self.prompt_keys: list[torch.Tensor] = []  # per layer (U, kv_heads, P, head_dim)
        self.prompt_values: list[torch.Tensor] = []
        self.prompt_valid = torch.zeros(0)  # (U, P) False on left padding
        self.row_of = torch.zeros(0)  # (B,) the distinct prompt of each row
        self.group = 0  # k when row b belongs to prompt b // k for every row, else 0
        self.shared = False  # the prompts' keys kept once (group >= 2)
        self.offset = 0  # where a row's written tokens start in its own cache
        self.length = 0  # tokens written after the prompt

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits of the last position of each row; `mask` is 1 on prompt tokens, 0 on left padding."""
        B, T = ids.shape
        unique, row_of = torch.unique(ids, dim=0, return_inverse=True)  # equal ids: equal mask and positions
        first = torch.zeros(len(unique), dtype=torch.long, device=ids.device)
        first[row_of] = torch.arange(B, device=ids.device)  # a row of each distinct prompt
        U = len(unique)
        order = row_of[torch.arange(0, B, max(B // U, 1), device=ids.device)] if B % U == 0 else None
        k = B // U
        if order is not None and torch.equal(row_of, order.repeat_interleave(k)) and len(set(order.tolist())) == U:
            unique, first, self.group = unique[order], first[order], k  # prompt u owns rows u*k .. u*k+k-1
            row_of = torch.arange(U, device=ids.device).repeat_interleave(k)
        self.row_of = row_of
        self.prompt_valid = mask[first].bool()
        self.shared = self.group >= 2  # else each row keeps its prompt's keys too, and attention is one kernel
        self.offset = 0 if self.shared else T  # where a row's written tokens start in its cache
        shape = (B, self.kv_heads, self.capacity - T + self.offset, self.head_dim)
        self.keys = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in self.model.model.layers]
        self.values = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in self.model.model.layers]
        self.written = torch.zeros((B, self.capacity - T + self.offset), dtype=torch.bool, device=self.device)
        if not self.shared:
            self.written[:, :T] = self.prompt_valid[row_of]
        causal = torch.ones((T, T), dtype=torch.bool, device=ids.device).tril()
        allowed = causal[None] & self.prompt_valid[:, None, :]  # (U, T, T)
        allowed |= torch.eye(T, dtype=torch.bool, device=ids.device)[None]  # a pad position sees itself: no NaN
        return self._forward(unique, positions[first], prefill=allowed[:, None])[row_of]

    def step(self, tokens: torch.Tensor, keep: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits after one more token per row; `keep` is False for rows whose new token is padding."""
        self.written[:, self.offset + self.length] = keep
        return self._forward(tokens[:, None], positions)

    def _attend_step(self, i: int, q: torch.Tensor, scale: float) -> torch.Tensor:
        """One query per row (B, heads, 1, D) against its prompt's keys (shared by its k rows: one product
        per prompt) and its own written keys, under one softmax."""
        B, rep, D = q.shape[0], self.heads // self.kv_heads, self.head_dim
        q = q.view(B, self.kv_heads, rep, D)  # the query heads that share each key-value head
        t = self.length + 1
        gk, gv = self.keys[i][:, :, :t], self.values[i][:, :, :t]
        pk, pv = self.prompt_keys[i], self.prompt_values[i]
        U, P = pk.shape[0], pk.shape[2]
        # (U, kv, k*rep, D): all rows of a prompt in one product with its keys
        qg = q.view(U, self.group, self.kv_heads, rep, D).transpose(1, 2).reshape(U, self.kv_heads, -1, D)
        sp = torch.matmul(qg, pk.transpose(-1, -2))  # (U, kv, k*rep, P)
        sp = sp.view(U, self.kv_heads, self.group, rep, P).transpose(1, 2).reshape(B, self.kv_heads, rep, P)
        sg = torch.matmul(q, gk.transpose(-1, -2))  # (B, kv, rep, t)
        scores = torch.cat((sp, sg), dim=-1) * scale
        allowed = torch.cat((self.prompt_valid[self.row_of], self.written[:, :t]), dim=-1)[:, None, None]
        w = torch.softmax(scores.masked_fill(~allowed, float("-inf")).float(), dim=-1).to(q.dtype)
        wp, wg = w[..., :P], w[..., P:]
        wp = wp.view(U, self.group, self.kv_heads, rep, P).transpose(1, 2).reshape(U, self.kv_heads, -1, P)
        op = torch.matmul(wp, pv).view(U, self.kv_heads, self.group, rep, D).transpose(1, 2)
        op = op.reshape(B, self.kv_heads, rep, D)
        return (op + torch.matmul(wg, gv)).reshape(B, self.heads, 1, D)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, prefill: torch.Tensor | None = None) -> torch.Tensor:
        """The prompts' forward (`prefill`: their attention mask), or one decoding step of every row."""
        inner = self.model.model
        x = F.embedding(ids, inner.embed_tokens.weight)
        cos, sin = inner.rotary_emb(x, position_ids=positions)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, D): broadcast over heads
        B, T, _ = x.shape
        for i, layer in enumerate(inner.layers):
            att = layer.self_attn
            h = _rms(x, layer.input_layernorm)
            q = F.linear(h, att.q_proj.weight).view(B, T, self.heads, self.head_dim).transpose(1, 2)
            k = F.linear(h, att.k_proj.weight).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            v = F.linear(h, att.v_proj.weight).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            gqa = self.kv_heads != self.heads
            if prefill is not None:
                if self.shared:
                    self.prompt_keys.append(k.to(self.dtype))
                    self.prompt_values.append(v.to(self.dtype))
                else:
                    self.keys[i][:, :, :T] = k[self.row_of]
                    self.values[i][:, :, :T] = v[self.row_of]
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=prefill, scale=att.scaling, enable_gqa=gqa)
            else:
                at = self.offset + self.length
                self.keys[i][:, :, at] = k[:, :, 0]
                self.values[i][:, :, at] = v[:, :, 0]
                if self.shared:
                    o = self._attend_step(i, q, att.scaling)
                else:
                    keys, values = self.keys[i][:, :, : at + 1], self.values[i][:, :, : at + 1]
                    allowed = self.written[:, None, None, : at + 1]
                    o = F.scaled_dot_product_attention(
                        q, keys, values, attn_mask=allowed, scale=att.scaling, enable_gqa=gqa
                    )
            x = x + F.linear(o.transpose(1, 2).reshape(B, T, -1), att.o_proj.weight)
            h = _rms(x, layer.post_attention_layernorm)
            mlp = layer.mlp
            x = x + F.linear(F.silu(F.linear(h, mlp.gate_proj.weight)) * F.linear(h, mlp.up_proj.weight), mlp.down_proj.weight)
        if prefill is None:
            self.length += 1
        x = _rms(x[:, -1], inner.norm)
        return F.linear(x, self.model.lm_head.weight)
