"""Decoders behind the sampling seam: prefill a batch of left-padded prompts, then one token per step.

- `HFDecoder` (backend `hf`): the model's own Hugging Face forward with its dynamic KV cache; any model.
- `LlamaDecoder` (backend `fused`): a lean forward for a Llama (plain, or with PEFT LoRA adapters). In a CPU
  decoding step of the 1M-parameter default model, Hugging Face's forward builds a 4-D mask and grows its KV
  cache by concatenation (the largest single cost in a profile). This one reads the same weights (no copy,
  so it follows a model in training) and does the same maths with a preallocated KV buffer and a boolean
  key mask; it gives the same tokens (tested). Training and log-probs keep the Hugging Face forward.
  It also decodes one batch whose rows belong to different LoRA copies over one shared frozen base (the
  inner loop's students in lockstep, `soar.engine.sampling.sample_copies`): the base's products run once
  for all rows, each copy's adapters on its own rows.

`prefix_hidden` is the same lean forward for training: rows that share a prompt (a group of k RLOO samples)
run it once (`soar.engine.rloo.token_logprobs` uses it where `shares_prompts`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import transformers
from packaging.version import Version
from torch import nn

BACKENDS = ("auto", "hf", "fused")
CACHE_KEY = "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"
"""The name of a Hugging Face forward's KV cache, argument and output: transformers 5.24 renamed
`past_key_values` to `cache` (older names warn until 5.40); the GPU machine's image has 5.17."""
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


class HFDecoder:
    """The model's own forward and dynamic cache."""

    def __init__(self, model) -> None:
        self.model = model
        self.cache = None
        self.mask: torch.Tensor | None = None

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.mask = mask
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        self.cache = getattr(out, CACHE_KEY)
        return out.logits[:, -1, :]

    def step(self, tokens: torch.Tensor, keep: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, keep.long()[:, None]], dim=1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask,
            position_ids=positions,
            use_cache=True,
            **{CACHE_KEY: self.cache},
        )
        self.cache = getattr(out, CACHE_KEY)
        return out.logits[:, -1, :]


def decoder(model, batch: int, capacity: int, backend: str = "auto", copy_of_row: torch.Tensor | None = None):
    """The decoder of `backend`; `auto` = `fused` for a Llama it supports on a CPU (where it was measured
    faster, docs/PERFORMANCE.md), else `hf`. `fused` on a model it cannot run is an error, not a silent
    fallback. `model` may be a list of LoRA copies over one base, with `copy_of_row` (B,) naming each row's
    copy (rows grouped copy by copy): only `fused` decodes such a batch."""
    if backend not in BACKENDS:
        raise ValueError(f"sampler backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    models = model if isinstance(model, list) else [model]
    on_cpu = next(models[0].parameters()).device.type == "cpu"
    if len(models) > 1 or backend == "fused" or (backend == "auto" and on_cpu and supports(models[0])):
        for m in models:
            if not supports(m):
                raise ValueError(
                    f"sampler backend 'fused' runs Llama models only (plain or with plain LoRA adapters, no "
                    f"biases), not {type(m).__name__}; use 'auto' or 'hf'"
                )
        return LlamaDecoder(models, batch, capacity, copy_of_row)
    return HFDecoder(model)


def row_spans(counts: list[int]) -> list[tuple[int, int]]:
    """(first row, end) of each copy in a batch whose copies own `counts` consecutive rows, in order."""
    bounds = [0]
    for c in counts:
        bounds.append(bounds[-1] + c)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _llama(model):
    """The LlamaForCausalLM inside `model` (a PEFT model wraps it twice), or None."""
    inner = model.base_model.model if hasattr(model, "peft_config") else model
    return inner if type(inner).__name__ == "LlamaForCausalLM" else None


def _plain_lora(module) -> bool:
    """A PEFT LoRA linear layer with one active plain adapter (no DoRA or other variant, no bias, unmerged)."""
    base = getattr(module, "base_layer", None)
    if type(base) is not nn.Linear or base.bias is not None or not hasattr(module, "lora_A"):
        return False
    active = list(getattr(module, "active_adapters", []))
    if len(active) != 1 or module.merged or module.disable_adapters or getattr(module, "lora_variant", {}):
        return False
    name = active[0]
    return name in module.lora_A and module.lora_B[name].bias is None


def supports(model) -> bool:
    """True for a `LlamaForCausalLM` (no biases, SiLU MLP, one tensor-parallel slice) whose projections are
    plain linear layers or plain LoRA layers (soar's LoRA students), with plain embeddings and output layer."""
    llama = _llama(model)
    if llama is None:
        return False
    cfg = llama.config
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return False
    for layer in llama.model.layers:
        mods = [getattr(layer.self_attn, n) for n in _ATTENTION] + [getattr(layer.mlp, n) for n in _MLP]
        if any(type(m) is not nn.Linear and not _plain_lora(m) for m in mods):
            return False
    return type(llama.lm_head) is nn.Linear and type(llama.model.embed_tokens) is nn.Embedding


def _base_weight(module) -> torch.Tensor:
    return module.base_layer.weight if hasattr(module, "base_layer") else module.weight


class _Lora:
    """One projection's adapters of C copies: A (C, r, in), B (C, out, r), scale (C,); a copy without an
    adapter on it has zeros."""

    def __init__(self, modules: list) -> None:
        pairs = []
        for m in modules:
            if hasattr(m, "lora_A"):
                name = m.active_adapters[0]
                pairs.append((m.lora_A[name].weight, m.lora_B[name].weight, float(m.scaling[name])))
            else:
                pairs.append(None)
        shape = next(p for p in pairs if p is not None)
        zero_a, zero_b = torch.zeros_like(shape[0]), torch.zeros_like(shape[1])
        self.A = torch.stack([p[0] if p else zero_a for p in pairs])
        self.B = torch.stack([p[1] if p else zero_b for p in pairs])
        self.scale = torch.tensor([p[2] if p else 0.0 for p in pairs], dtype=self.A.dtype, device=self.A.device)

    def delta(self, h: torch.Tensor, segments: list[tuple[int, int]]) -> torch.Tensor:
        """B_c A_c h * scale_c for the rows of each copy c (rows of copy c are segments[c]), in the adapters'
        dtype, as PEFT computes it."""
        x = h.to(self.A.dtype)
        sizes = {e - s for s, e in segments}
        if len(sizes) == 1 and segments[0][0] == 0 and segments[-1][1] == h.shape[0]:  # equal blocks: 2 products
            C = len(segments)
            xc = x.reshape(C, -1, x.shape[-1])
            out = torch.bmm(torch.bmm(xc, self.A.transpose(1, 2)), self.B.transpose(1, 2)) * self.scale[:, None, None]
            return out.reshape(*h.shape[:-1], -1)
        out = x.new_zeros(*h.shape[:-1], self.B.shape[1])
        for c, (s, e) in enumerate(segments):
            if e > s:
                out[s:e] = (x[s:e] @ self.A[c].T) @ self.B[c].T * self.scale[c]
        return out


class _Layer:
    """The projections of one decoder layer for C copies over one base: the base's weights (read in place,
    so a decoder follows a model in training) and each copy's LoRA adapters, where it has them."""

    def __init__(self, layers: list) -> None:
        def module(layer, n):
            return getattr(layer.self_attn if n in _ATTENTION else layer.mlp, n)

        first = layers[0]
        self.weight = {n: _base_weight(module(first, n)) for n in _ATTENTION + _MLP}
        for layer in layers[1:]:
            if any(_base_weight(module(layer, n)).data_ptr() != w.data_ptr() for n, w in self.weight.items()):
                raise ValueError("LoRA copies decoded in one batch must share one frozen base model")
        self.lora: dict[str, _Lora] = {}
        for n in _ATTENTION + _MLP:
            mods = [module(layer, n) for layer in layers]
            if any(hasattr(m, "lora_A") for m in mods):
                self.lora[n] = _Lora(mods)

    def project(self, h: torch.Tensor, name: str, segments) -> torch.Tensor:
        """Projection `name` of `h`: the base product for every row, plus each copy's LoRA delta on its rows."""
        out = F.linear(h, self.weight[name])
        if name in self.lora:
            out = out + self.lora[name].delta(h, segments).to(out.dtype)
        return out


def _rms(x: torch.Tensor, norm) -> torch.Tensor:
    """LlamaRMSNorm: normalised in float32, scaled in the input's dtype (one kernel for the five of HF's in
    float32, where scaling inside the kernel gives the same values)."""
    if x.dtype == torch.float32 and norm.weight.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight=norm.weight, eps=norm.variance_epsilon)
    h = F.rms_norm(x.float(), (x.shape[-1],), eps=norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _rotate_signed(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """`_rotate` with the sign of the first half folded into `signed_sin` (one roll instead of a negation and a
    concatenation): bitwise the same values."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


class LlamaDecoder:
    """Prefill once, then one token per step, for a batch of left-padded prompts.

    Each distinct prompt (of each copy) is run once in the prefill (the k samples of a prompt are k equal
    rows). When each prompt owns k >= 2 consecutive rows (as `sample` lays them out), its keys and values
    are kept once and a decoding step attends to them with one matrix product for all k rows (the prompt's
    cache is read once per step, not k times), and to each row's written tokens, under one softmax.
    Otherwise every row keeps its prompt's keys and attention is one `scaled_dot_product_attention`.

    `models`: one model, or LoRA copies over one shared base whose rows `copy_of_row` (B,) names; rows of
    one copy must be consecutive, copies in order."""

    def __init__(self, models, batch: int, capacity: int, copy_of_row: torch.Tensor | None = None) -> None:
        models = models if isinstance(models, list) else [models]
        self.llamas = [_llama(m) for m in models]
        llama = self.llamas[0]
        self.model = llama
        cfg = llama.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        p = llama.model.embed_tokens.weight
        self.dtype = getattr(models[0], "soar_autocast", None) or p.dtype  # K/V are computed in the compute dtype
        self.device = p.device
        self.batch, self.capacity = batch, capacity
        self.layers = [_Layer([m.model.layers[i] for m in self.llamas]) for i in range(len(llama.model.layers))]
        if copy_of_row is None:
            copy_of_row = torch.zeros(batch, dtype=torch.long)
        if len(models) > 1 and (bool((copy_of_row.diff() < 0).any()) or int(copy_of_row.max()) >= len(models)):
            raise ValueError("copy_of_row must list each row's copy, copies in order, rows of a copy consecutive")
        self.copy_of_row = copy_of_row.to(self.device)
        self.copies = len(models)
        self.row_segments = self._segments(self.copy_of_row)  # each copy's rows in a decoding step
        self.prompt_keys: list[torch.Tensor] = []  # per layer (U, kv_heads, head_dim, P), transposed once
        self.prompt_values: list[torch.Tensor] = []  # per layer (U, kv_heads, P, head_dim)
        self.prompt_valid = torch.zeros(0)  # (U, P) False on left padding
        self.row_prompt_valid = torch.zeros(0)  # (B, P) the same for each row
        self.row_of = torch.zeros(0)  # (B,) the distinct prompt of each row
        self.group = 0  # k when row b belongs to prompt b // k for every row, else 0
        self.shared = False  # the prompts' keys kept once (group >= 2)
        self.offset = 0  # where a row's written tokens start in its own cache
        self.length = 0  # tokens written after the prompt
        self.blocked = torch.zeros(0, dtype=torch.bool)  # (B, 1, 1, keys) of this decoding step: True = masked
        self.rope: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, signed sin by position (static RoPE)

    def _segments(self, copy_of: torch.Tensor) -> list[tuple[int, int]]:
        """(start, stop) of each copy's rows in a forward whose rows belong to copies `copy_of`."""
        return row_spans(torch.bincount(copy_of, minlength=self.copies).tolist())

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits of the last position of each row; `mask` is 1 on prompt tokens, 0 on left padding."""
        B, T = ids.shape
        keyed = torch.cat((self.copy_of_row[:, None], ids), dim=1)  # a copy's prompt is its own: its adapters
        unique, row_of = torch.unique(keyed, dim=0, return_inverse=True)  # copy-major order
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
        self.row_prompt_valid = self.prompt_valid[row_of]  # (B, P): each row's prompt keys, fixed for the run
        self.shared = self.group >= 2  # else each row keeps its prompt's keys too, and attention is one kernel
        self.offset = 0 if self.shared else T  # where a row's written tokens start in its cache
        shape = (B, self.kv_heads, self.capacity - T + self.offset, self.head_dim)
        self.keys = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        self.values = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        self.written = torch.zeros((B, self.capacity - T + self.offset), dtype=torch.bool, device=self.device)
        if not self.shared:
            self.written[:, :T] = self.row_prompt_valid
        causal = torch.ones((T, T), dtype=torch.bool, device=ids.device).tril()
        allowed = causal[None] & self.prompt_valid[:, None, :]  # (U, T, T)
        allowed |= torch.eye(T, dtype=torch.bool, device=ids.device)[None]  # a pad position sees itself: no NaN
        self.rope = self._rope_table(int(positions.max()) + self.capacity - T + 1)
        segments = self._segments(self.copy_of_row[first])
        return self._forward(unique[:, 1:], positions[first], segments, prefill=allowed[:, None])[row_of]

    def _rope_table(self, span: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """cos and signed sin (`_rotate_signed`) of positions 0..span-1, from the model's own rotary embedding
        (elementwise in the position, so a lookup gives the same values); None for RoPE types whose
        frequencies depend on the sequence length (dynamic, longrope): those are computed at every step."""
        rotary = self.model.model.rotary_emb
        if any(kind in str(getattr(rotary, "rope_type", "default")) for kind in ("dynamic", "longrope")):
            return None
        like = self.model.model.embed_tokens.weight[:1]  # the dtype and device of the hidden states
        cos, sin = rotary(like, position_ids=torch.arange(span, device=self.device)[None])
        half = sin.shape[-1] // 2
        return cos[0], torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)

    def step(self, tokens: torch.Tensor, keep: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits after one more token per row; `keep` is False for rows whose new token is padding."""
        at = self.offset + self.length
        self.written[:, at] = keep
        seen = self.written[:, : at + 1]  # the keys each row attends to in this step, in every layer
        if self.shared:
            seen = torch.cat((self.row_prompt_valid, seen), dim=-1)
        self.blocked = ~seen[:, None, None]  # (B, 1, 1, keys)
        return self._forward(tokens[:, None], positions, self.row_segments)

    def _attend_step(self, i: int, q: torch.Tensor, scale: float) -> torch.Tensor:
        """One query per row (B, heads, 1, D) against its prompt's keys (shared by its k rows: one product
        per prompt) and its own written keys, under one softmax."""
        B, rep, D = q.shape[0], self.heads // self.kv_heads, self.head_dim
        q = q.view(B, self.kv_heads, rep, D)  # the query heads that share each key-value head
        t = self.length + 1
        gk, gv = self.keys[i][:, :, :t], self.values[i][:, :, :t]
        pk, pv = self.prompt_keys[i], self.prompt_values[i]
        U, P = pk.shape[0], pk.shape[3]
        kv, k = self.kv_heads, self.group
        # (U, kv, k*rep, D): all rows of a prompt in one product with its keys
        qg = q.view(U, k, kv, rep, D).transpose(1, 2).reshape(U, kv, -1, D)
        sp = torch.matmul(qg, pk).view(U, kv, k, rep, P).transpose(1, 2)  # (U, k, kv, rep, P), a view
        sg = torch.matmul(q, gk.transpose(-1, -2)).view(U, k, kv, rep, t)
        scores = torch.cat((sp, sg), dim=-1).view(B, kv, rep, P + t)  # the one copy lays rows out in order
        scores.mul_(scale).masked_fill_(self.blocked, float("-inf"))
        w = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        wp = w.view(U, k, kv, rep, P + t)[..., :P].transpose(1, 2).reshape(U, kv, -1, P)
        op = torch.matmul(wp, pv).view(U, kv, k, rep, D).transpose(1, 2).reshape(B, kv, rep, D)
        return torch.matmul(w[..., P:], gv).add_(op).reshape(B, self.heads, 1, D)

    def _attend_rows(self, i: int, q: torch.Tensor, t: int, scale: float) -> torch.Tensor:
        """One query per row (B, heads, 1, D) against the row's own first t cached keys (its prompt's and its
        written ones). Two matrix products and a masked softmax: at one query per row this was cheaper on a CPU
        than `scaled_dot_product_attention` with a mask (docs/PERFORMANCE.md, eleventh session)."""
        B, rep, D = q.shape[0], self.heads // self.kv_heads, self.head_dim
        q = q.view(B, self.kv_heads, rep, D)  # the query heads that share each key-value head
        scores = torch.matmul(q, self.keys[i][:, :, :t].transpose(-1, -2))  # (B, kv, rep, t)
        scores.mul_(scale).masked_fill_(self.blocked, float("-inf"))
        w = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        return torch.matmul(w, self.values[i][:, :, :t]).reshape(B, self.heads, 1, D)

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, segments, prefill: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The prompts' forward (`prefill`: their attention mask), or one decoding step of every row."""
        inner = self.model.model
        x = F.embedding(ids, inner.embed_tokens.weight)
        if self.rope is not None:
            cos, sin = self.rope[0][positions][:, None], self.rope[1][positions][:, None]  # (B, 1, T, D)
            rotate = _rotate_signed
        else:
            cos, sin = inner.rotary_emb(x, position_ids=positions)
            cos, sin, rotate = cos[:, None], sin[:, None], _rotate  # (B, 1, T, D): broadcast over heads
        B, T, _ = x.shape
        for i, (layer, proj) in enumerate(zip(inner.layers, self.layers, strict=True)):
            att = layer.self_attn
            h = _rms(x, layer.input_layernorm)
            q = proj.project(h, "q_proj", segments).view(B, T, self.heads, self.head_dim).transpose(1, 2)
            k = proj.project(h, "k_proj", segments).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            v = proj.project(h, "v_proj", segments).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            if prefill is not None:
                if self.shared:
                    # contiguous once here: a strided operand is copied by every step's product
                    self.prompt_keys.append(k.to(self.dtype).transpose(-1, -2).contiguous())
                    self.prompt_values.append(v.to(self.dtype).contiguous())
                else:
                    self.keys[i][:, :, :T] = k[self.row_of]
                    self.values[i][:, :, :T] = v[self.row_of]
                gqa = self.kv_heads != self.heads
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=prefill, scale=att.scaling, enable_gqa=gqa)
            else:
                at = self.offset + self.length
                self.keys[i][:, :, at] = k[:, :, 0]
                self.values[i][:, :, at] = v[:, :, 0]
                if self.shared:
                    o = self._attend_step(i, q, att.scaling)
                else:
                    o = self._attend_rows(i, q, at + 1, att.scaling)
            x = x + proj.project(o.transpose(1, 2).reshape(B, T, -1), "o_proj", segments)
            h = _rms(x, layer.post_attention_layernorm)
            gated = F.silu(proj.project(h, "gate_proj", segments)) * proj.project(h, "up_proj", segments)
            x = x + proj.project(gated, "down_proj", segments)
        if prefill is None:
            self.length += 1
        x = _rms(x[:, -1], inner.norm)
        return F.linear(x, self.model.lm_head.weight)


# --------------------------------------------------------------------------------------------------------
# Training forward with shared prompts
def shares_prompts(model) -> bool:
    """Can `prefix_hidden` run `model` in training: a plain Llama (no LoRA) on a CPU, without gradient
    checkpointing or attention dropout (where it was measured; elsewhere the Hugging Face forward runs)."""
    return (
        supports(model)
        and not hasattr(model, "peft_config")
        and next(model.parameters()).device.type == "cpu"
        and not _checkpointed(model)
        and not getattr(model.config, "attention_dropout", 0.0)
    )


def _checkpointed(model) -> bool:
    """Does `model` recompute its layers in the backward pass (activation/gradient checkpointing)?"""
    flag = getattr(model, "is_activation_checkpointing", None)
    return bool(getattr(model, "is_gradient_checkpointing", False) if flag is None else flag)


def _attention_inputs(layer, x: torch.Tensor, cos, sin, heads: int, kv_heads: int, head_dim: int):
    """q, k, v of one decoder layer for `x` (rows, T, hidden), rotated: (rows, heads, T, head_dim)."""
    B, T, _ = x.shape
    att, h = layer.self_attn, _rms(x, layer.input_layernorm)
    q = att.q_proj(h).view(B, T, heads, head_dim).transpose(1, 2)
    k = att.k_proj(h).view(B, T, kv_heads, head_dim).transpose(1, 2)
    v = att.v_proj(h).view(B, T, kv_heads, head_dim).transpose(1, 2)
    return _rotate(q, cos, sin), _rotate(k, cos, sin), v


def _layer_output(layer, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """The rest of a decoder layer after attention `o` (rows, heads, T, head_dim): output projection, MLP."""
    B, T, _ = x.shape
    x = x + layer.self_attn.o_proj(o.transpose(1, 2).reshape(B, T, -1))
    h = _rms(x, layer.post_attention_layernorm)
    return x + layer.mlp.down_proj(F.silu(layer.mlp.gate_proj(h)) * layer.mlp.up_proj(h))


def prefix_hidden(
    model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor, row_of: torch.Tensor
) -> torch.Tensor:
    """Final hidden states (B, T, hidden) of rows that share prompts: position j predicts completion token j.

    prompt_ids, prompt_mask: (U, P) the distinct prompts, left-padded; completion_ids: (B, T), each row's
    completion left-aligned (padding after it); row_of: (B,) each row's prompt. Each prompt runs through the
    layers once, not once per row (a group of k samples shares it), and every row's completion attends to its
    prompt's keys; the same maths as the model's own forward over the concatenated rows (tested), with its
    gradient flowing into the shared prompt."""
    llama = _llama(model)
    inner, cfg = llama.model, llama.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    P, (B, T) = prompt_ids.shape[1], completion_ids.shape
    dev = prompt_ids.device
    valid = prompt_mask.bool()
    pos_p = (prompt_mask.cumsum(-1) - 1).clamp(min=0)  # (U, P)
    pos_c = valid.sum(-1)[row_of][:, None] + torch.arange(T, device=dev)[None]  # (B, T): after the prompt
    xp = F.embedding(prompt_ids, inner.embed_tokens.weight)
    xc = F.embedding(completion_ids, inner.embed_tokens.weight)
    cos_p, sin_p = (t[:, None] for t in inner.rotary_emb(xp, position_ids=pos_p))
    cos_c, sin_c = (t[:, None] for t in inner.rotary_emb(xc, position_ids=pos_c))
    mask_p = torch.ones((P, P), dtype=torch.bool, device=dev).tril()[None] & valid[:, None, :]
    mask_p = (mask_p | torch.eye(P, dtype=torch.bool, device=dev)[None])[:, None]  # (U, 1, P, P); a pad sees itself
    causal_c = torch.ones((T, T), dtype=torch.bool, device=dev).tril()
    mask_c = torch.cat((valid[row_of][:, None, :].expand(B, T, P), causal_c[None].expand(B, T, T)), dim=-1)[:, None]
    gqa = kv_heads != heads
    for layer in inner.layers:
        scale = layer.self_attn.scaling
        qp, kp, vp = _attention_inputs(layer, xp, cos_p, sin_p, heads, kv_heads, head_dim)
        qc, kc, vc = _attention_inputs(layer, xc, cos_c, sin_c, heads, kv_heads, head_dim)
        op = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask_p, scale=scale, enable_gqa=gqa)
        keys, values = torch.cat((kp[row_of], kc), dim=2), torch.cat((vp[row_of], vc), dim=2)  # (B, kv, P+T, D)
        oc = F.scaled_dot_product_attention(qc, keys, values, attn_mask=mask_c, scale=scale, enable_gqa=gqa)
        xp, xc = _layer_output(layer, xp, op), _layer_output(layer, xc, oc)
    first = _rms(xp[:, -1:], inner.norm)[row_of]  # the prompt's last position predicts completion token 0
    return torch.cat((first, _rms(xc[:, :-1], inner.norm)), dim=1)
