"""pass@k against brute-force enumeration of every k-subset; mean/SD by hand."""

import itertools
import math
import random

import numpy as np
import pytest

from soar.engine.metrics import mean_pass_at_k, mean_sd, pass_at_k


@pytest.mark.parametrize("n,c,k", [(n, c, k) for n in range(1, 9) for c in range(n + 1) for k in range(1, n + 1)])
def test_pass_at_k_matches_enumeration(n, c, k):
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_known_values():
    assert pass_at_k(32, 0, 32) == 0.0
    assert pass_at_k(32, 1, 32) == 1.0
    assert pass_at_k(32, 1, 1) == pytest.approx(1 / 32)
    assert pass_at_k(128, 1, 32) == pytest.approx(32 / 128)


def test_pass_at_k_rejects_bad_arguments():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_mean_pass_at_k_and_mean_sd():
    assert mean_pass_at_k([(4, 0), (4, 4)], 1) == pytest.approx(0.5)
    m, s = mean_sd([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)
    assert mean_sd([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in mean_sd([]))


def test_vendi_hand_checked():
    import numpy as np

    from soar.engine.metrics import vendi_score

    assert vendi_score(np.ones((5, 3))) == pytest.approx(1.0)  # identical items: one "kind"
    assert vendi_score(np.eye(4)) == pytest.approx(4.0)  # orthogonal items
    two = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    assert vendi_score(two) == pytest.approx(2.0)  # two equal clusters
    # K = [[1, c], [c, 1]] / 2 has eigenvalues (1 +- c) / 2
    c = np.cos(np.pi / 3)
    lam = np.array([(1 + c) / 2, (1 - c) / 2])
    pair = np.array([[1.0, 0.0], [c, np.sin(np.pi / 3)]])
    assert vendi_score(pair) == pytest.approx(float(np.exp(-(lam * np.log(lam)).sum())))
    with pytest.raises(ValueError, match="all zeros"):
        vendi_score(np.zeros((2, 2)))


def test_vendi_bootstrap():
    import numpy as np

    from soar.engine.metrics import vendi_bootstrap

    m, s = vendi_bootstrap(np.eye(10), size=4, samples=20)
    assert m == pytest.approx(4.0) and s == pytest.approx(0.0, abs=1e-9)
    # A set no larger than the subsample (the paper's 128 of 128): the whole set's score, and an SD from
    # resampling with replacement, which is not 0 (a resample with a duplicate scores lower).
    m, s = vendi_bootstrap(np.eye(3), size=128, samples=50)
    assert m == pytest.approx(3.0) and s > 0.1
    assert vendi_bootstrap(np.eye(1), size=128) == (pytest.approx(1.0), 0.0)


def test_ngram_embeddings_separate_kinds():
    from soar.engine.embed import ngram_embeddings
    from soar.engine.metrics import vendi_score

    same = ngram_embeddings(["12345 a+11111"] * 8)
    varied = ngram_embeddings(["12345 a+11111", "999 a*7", "50000 a-12345 b+10000", "31 a*2"] * 2)
    assert vendi_score(same) == pytest.approx(1.0)
    assert vendi_score(varied) > 1.5


def test_slope_checkpoint_on_hand_made_curves():
    from soar.engine.metrics import slope_checkpoint

    # A ramp from step 10 to 30, flat afterwards: the smoothed slope is steepest mid-ramp and falls below
    # 15% of its maximum shortly after the ramp ends (the centred window of 5 blurs it by 2 steps).
    curve = [0.0] * 10 + [i / 20 for i in range(20)] + [1.0] * 30
    step = slope_checkpoint(curve, window=5, frac=0.15)
    assert 29 <= step <= 33
    assert slope_checkpoint([1.0, 0.5, 0.2, 0.1]) == 0  # never rises
    assert slope_checkpoint([0.0, 1.0, 2.0, 3.0], window=1) == 3  # never flattens
    assert slope_checkpoint([0.3]) == 0


def test_model_embeddings_are_normalised_mean_hidden_states_that_ignore_padding():
    from soar.engine.embed import model_embeddings
    from soar.engine.model import DEFAULT_MODEL, load_policy

    model, tok = load_policy(DEFAULT_MODEL)
    texts = ["12345 a+11111", "999 a*7 b-12 c+40000", "12345 a+11111"]
    together = model_embeddings(model, tok, texts, batch_size=3)  # the short ones padded to the long one
    alone = np.concatenate([model_embeddings(model, tok, [t]) for t in texts])
    assert together.shape == (3, model.config.hidden_size)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0)
    assert np.allclose(together, alone, atol=1e-5)  # padding changes nothing
    assert np.allclose(together[0], together[2]) and not np.allclose(together[0], together[1])


def test_question_stats_scores_vendi_on_the_embedding_it_is_given():
    from soar.jobs.main import RunConfig, question_stats
    from soar.world import ARITHMETIC
    from soar.world.arithmetic import make_problem

    rng = random.Random(0)
    ps = [make_problem("add", 1, rng) for _ in range(6)]
    cfg = RunConfig(vendi_size=6, vendi_samples=3)
    same = question_stats(ps, ARITHMETIC, cfg, embed=lambda texts: np.ones((len(texts), 4)) / 2)
    assert same["vendi"] == pytest.approx(1.0)  # identical embeddings: one effective question
    with pytest.raises(ValueError, match="vendi_embedding must be 'ngram' or 'model'"):
        RunConfig(vendi_embedding="sbert")
