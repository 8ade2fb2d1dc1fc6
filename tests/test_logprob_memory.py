"""The log-prob pass never holds a (rows, T, vocabulary) float32 tensor: peak memory at Llama 3's vocabulary.

The bound, derived: the chunked pass holds at most five chunk-sized float32 tensors at once, each
chunk_tokens x V x 4 bytes: in the backward pass of one chunk, its recomputed logits, the exponentials
inside logsumexp, the softmax of its backward, the gradient of the logits, and the output layer's matmul
result. Five of them plus 64 MiB of slack (377 MiB here) is below the one (rows, T, V) float32 tensor (501
MiB) that the unchunked pass needs, so a regression to a full tensor fails. Measured on 2026-12-02: 267 MiB
chunked; 2,004 MiB with one chunk of all T positions."""

import subprocess
import sys

V = 128_256
ROWS, PROMPT, T, CHUNK = 8, 16, 128, 128

SCRIPT = f"""
import resource, torch
from transformers import LlamaConfig, LlamaForCausalLM
from soar.engine.rloo import token_logprobs
torch.manual_seed(0)
torch.set_num_threads(1)
cfg = LlamaConfig(vocab_size={V}, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
model = LlamaForCausalLM(cfg)
g = torch.Generator().manual_seed(0)
def run(rows, prompt, t):
    p = torch.randint(1, {V}, (rows, prompt), generator=g).tolist()
    c = torch.randint(1, {V}, (rows, t), generator=g).tolist()
    lp, mask = token_logprobs(model, p, c, 0, chunk_tokens={CHUNK})
    lp.sum().backward()
    model.zero_grad(set_to_none=False)
run(1, 4, 4)  # warm-up: kernels, gradient buffers
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run({ROWS}, {PROMPT}, {T})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


def test_peak_memory_of_the_log_prob_pass_is_bounded_by_its_chunks():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    peak_increase = int(r.stdout.strip().splitlines()[-1])
    chunk = CHUNK * V * 4
    bound = 5 * chunk + 64 * 2**20
    full = ROWS * T * V * 4  # one (rows, T, V) float32 tensor
    assert bound < full  # the check can tell the two apart
    assert peak_increase < bound, f"peak grew by {peak_increase / 2**20:.0f} MiB; bound {bound / 2**20:.0f} MiB"
