"""RLOO advantages and loss against hand-computed values."""

import math

import pytest
import torch

from soar.engine.rloo import RLOOConfig, kl_k3, lr_schedule, policy_loss, rloo_advantages


def test_advantages_hand_computed():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.2, 0.2, 0.2, 0.2]])
    a = rloo_advantages(r)
    # prompt 0, sample 0: baseline = (0 + 0 + 1) / 3 = 1/3 -> 2/3 ; sample 1: baseline = 2/3 -> -2/3
    assert torch.allclose(a[0], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    assert torch.allclose(a[1], torch.zeros(4))
    assert a.shape == r.shape


def test_advantages_sum_to_zero_per_prompt():
    r = torch.tensor([[0.1, 0.7, 0.3], [1.0, 0.0, 0.2]])
    assert torch.allclose(rloo_advantages(r).sum(-1), torch.zeros(2), atol=1e-6)


def test_unscorable_samples_are_left_out():
    r = torch.tensor([[1.0, math.nan, 0.0], [math.nan, 0.5, math.nan], [math.nan] * 3])
    a = rloo_advantages(r)
    assert torch.allclose(a[0], torch.tensor([1.0, 0.0, -1.0]))  # baseline over the two valid ones
    assert torch.equal(a[1], torch.zeros(3))  # one valid sample: no leave-one-out baseline
    assert torch.equal(a[2], torch.zeros(3))
    assert not torch.isnan(a).any()


def test_advantages_reject_bad_shape():
    with pytest.raises(ValueError, match="prompts, samples"):
        rloo_advantages(torch.zeros(4))


def test_policy_loss_hand_computed():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -1.0])
    loss, st = policy_loss(logp, mask, adv)
    # -(1 * (-1 - 2) + (-1) * (-0.5)) / 3 tokens
    assert loss.item() == pytest.approx(2.5 / 3)
    assert st["kl"] == 0.0


def test_policy_loss_kl_term():
    logp = torch.tensor([[-1.0, -1.0]])
    ref = torch.tensor([[-1.0, -2.0]])
    mask = torch.tensor([[1, 1]])
    loss, st = policy_loss(logp, mask, torch.tensor([0.0]), ref, kl_coef=0.5)
    k3 = math.exp(-1) + 1 - 1  # second token: d = -1 -> e^-1 - (-1) - 1
    assert st["kl"] == pytest.approx(k3 / 2)
    assert loss.item() == pytest.approx(0.5 * k3 / 2)


def test_kl_k3_zero_iff_equal_and_nonnegative():
    x = torch.linspace(-3, 0, 7)
    assert torch.allclose(kl_k3(x, x), torch.zeros(7))
    assert (kl_k3(x, x.flip(0)) >= 0).all()


def test_gradient_points_towards_rewarded_sample():
    # Two one-token completions; the rewarded one must gain probability after a step on the loss.
    logits = torch.zeros(2, requires_grad=True)
    logp = torch.log_softmax(logits, -1)
    loss, _ = policy_loss(torch.stack([logp[0:1], logp[1:2]]), torch.ones(2, 1), torch.tensor([1.0, -1.0]))
    loss.backward()
    assert logits.grad[0] < 0 < logits.grad[1]


def test_config_validation():
    with pytest.raises(ValueError, match="group_size >= 2"):
        RLOOConfig(group_size=1)
    with pytest.raises(ValueError, match="schedule"):
        RLOOConfig(schedule="linear")


def test_lr_schedule_warmup_then_cosine():
    f = lr_schedule(10, warmup=2)
    assert f(0) == pytest.approx(0.5) and f(1) == pytest.approx(1.0)
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.0, abs=1e-9)
    assert f(6) == pytest.approx(0.5)  # half-way through the decay: cos(pi / 2)
    assert lr_schedule(10, warmup=0, schedule="constant")(7) == 1.0


def test_lr_schedule_floor_is_pretrainings_cosine_to_ten_percent():
    f = lr_schedule(10, warmup=0, floor=0.1)
    assert f(0) == pytest.approx(1.0) and f(5) == pytest.approx(0.55) and f(10) == pytest.approx(0.1)


def test_micro_batches_give_the_one_pass_update(tiny):
    """rloo.micro_batch splits a policy update into passes: the same parameters to float rounding, and
    the same pg/kl statistics, as one pass over all rows (rows of several prompt and completion lengths)."""
    from soar.engine.model import clone_model, frozen
    from soar.engine.rloo import policy_update

    model, tok = tiny
    rng = torch.Generator().manual_seed(0)
    rows = []
    for i in range(12):
        prompt = torch.randint(3, 60, (3 + i % 4,), generator=rng).tolist()
        completion = torch.randint(3, 60, (2 + i % 5,), generator=rng).tolist()
        rows.append((prompt, completion, float(i % 3 - 1)))
    ref = frozen(clone_model(model))
    out = {}
    for mb in (12, 5, 1):
        student = clone_model(model)
        opt = torch.optim.SGD(student.parameters(), lr=1.0)  # the step is the gradient (Adam would magnify rounding)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        stats = policy_update(student, ref, opt, sched, rows, 0.01, 1.0, mb, tok.pad_token_id)
        out[mb] = (torch.cat([p.detach().flatten() for p in student.parameters()]), stats)
    moved = (out[12][0] - torch.cat([p.detach().flatten() for p in model.parameters()])).abs().max()
    assert moved > 1e-3  # the update did something
    for mb in (5, 1):
        torch.testing.assert_close(out[mb][0], out[12][0], atol=1e-6, rtol=1e-5)
        for key in ("pg_loss", "kl", "grad_norm"):
            assert out[mb][1][key] == pytest.approx(out[12][1][key], rel=1e-4, abs=1e-7)


def test_both_puts_the_first_batch_before_the_second_every_step():
    import random

    from soar.engine.rloo import both, phased

    first = lambda step, rng: [f"s{step}"]  # noqa: E731
    then = lambda step, rng: [f"h{step}", f"h{step}'"]  # noqa: E731
    assert [both(first, then)(i, random.Random(0)) for i in range(2)] == [["s0", "h0", "h0'"], ["s1", "h1", "h1'"]]
    assert [phased(first, 1, then)(i, random.Random(0)) for i in range(2)] == [["s0"], ["h1", "h1'"]]
