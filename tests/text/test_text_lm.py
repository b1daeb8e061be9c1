"""Language models: causality, sampling filters, a model that learns, exact resume, CLI."""
import json
import math
import shutil

import numpy as np
import pytest

import shendu as sd
from shendu.text.lm import (
    GPTLanguageModel,
    LSTMLanguageModel,
    evaluate_lm,
    generate,
    lm_loss,
    sample_next,
)
from shendu.text.train_lm import LMConfig, cosine_lr, load_lm, train_lm


def test_gpt_is_causal_and_checks_length():
    sd.manual_seed(0)
    m = GPTLanguageModel(11, block_size=6, d_model=16, nhead=2, num_layers=2).eval()
    a = sd.tensor([[1, 2, 3, 4, 5]])
    b = sd.tensor([[1, 2, 3, 9, 0]])  # differs from position 3 on
    la, lb = m(a)[0].detach().numpy(), m(b)[0].detach().numpy()
    np.testing.assert_allclose(la[0, :3], lb[0, :3], rtol=1e-5, atol=1e-6)
    assert np.abs(la[0, 3:] - lb[0, 3:]).max() > 1e-4
    assert m.head.weight is m.tok.weight  # tied
    with pytest.raises(ValueError, match="block_size=6"):
        m(sd.tensor([[1] * 7]))
    with pytest.raises(ValueError, match="empty sequence"):
        m(sd.zeros(1, 0, dtype=sd.int64))


def test_lstm_state_carries_across_windows():
    sd.manual_seed(0)
    m = LSTMLanguageModel(9, embed_dim=4, hidden_size=8).eval()
    x = sd.tensor([[1, 2, 3, 4, 5, 6]])
    whole = m(x)[0].detach().numpy()
    first, st = m(x[:, :3])
    second, _ = m(x[:, 3:], st)
    parts = [first.detach().numpy(), second.detach().numpy()]
    np.testing.assert_allclose(np.concatenate(parts, 1), whole, rtol=1e-5, atol=1e-6)


def test_lm_loss_is_mean_nats():
    logits = sd.tensor(np.log(np.array([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]])))
    got = lm_loss(logits, sd.tensor([[0, 2]])).item()
    assert got == pytest.approx(-(math.log(0.5) + math.log(0.8)) / 2, rel=1e-6)


def test_sample_next_filters():
    z = np.log([0.5, 0.3, 0.15, 0.05])
    assert sample_next(z, temperature=0) == 0
    assert sample_next(z, top_k=1) == 0
    rng = np.random.default_rng(0)
    n = 4000
    draws = np.bincount([sample_next(z, top_p=0.7, generator=rng) for _ in range(n)],
                        minlength=4)
    assert draws[2] == draws[3] == 0  # 0.5 + 0.3 reach 0.7: the nucleus is {0, 1}
    p0 = draws[0] / n  # renormalised 0.5 / 0.8; binomial sd ~0.008
    assert abs(p0 - 0.625) < 0.04
    draws = np.bincount([sample_next(z, top_k=3, temperature=0.5, generator=rng)
                         for _ in range(n)], minlength=4)
    q = np.array([0.5, 0.3, 0.15]) ** 2
    q /= q.sum()
    assert draws[3] == 0 and np.abs(draws[:3] / n - q).max() < 0.04
    with pytest.raises(ValueError, match="top_p"):
        sample_next(z, top_p=0)


def test_lstm_lm_learns_a_periodic_text(tmp_path):
    text = "abcdefgh" * 300
    cfg = LMConfig(arch="lstm", steps=60, batch_size=4, bptt=16, embed_dim=8, hidden_size=32,
                   lr=1e-2, warmup=5, eval_every=60, val_fraction=0.1, progress=False)
    m = train_lm(cfg, tmp_path, text=text, log=lambda *a: None)
    assert m["val_loss"] < 0.1  # log(8) = 2.08 at chance; the text is deterministic
    model, vocab, _ = load_lm(tmp_path)
    ids = generate(model, vocab(list("abc")), 8, temperature=0)
    assert "".join(vocab.lookup_tokens(ids)) == "abcdefghabc"


def test_resume_matches_an_uninterrupted_run(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 40
    kw = dict(arch="transformer", batch_size=4, bptt=16, d_model=16, nhead=2, num_layers=2,
              warmup=2, eval_every=3, eval_tokens=200, val_fraction=0.2, progress=False)
    quiet = dict(log=lambda *a: None)
    def snapshot(msg):  # the checkpoint is written before the line is logged
        if msg.startswith("step 3/"):
            shutil.copytree(tmp_path / "a", tmp_path / "b")

    full = train_lm(LMConfig(steps=6, **kw), tmp_path / "a", text=text, log=snapshot)
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    assert hist["step"] == [3]  # the run as it stood when it was "killed"
    resumed = train_lm(LMConfig(steps=6, **kw), tmp_path / "b", text=text, resume=True, **quiet)
    assert resumed["val_loss"] == pytest.approx(full["val_loss"], rel=1e-6)


def test_evaluate_lm_uniform_model_gives_log_vocab():
    m = GPTLanguageModel(7, block_size=4, d_model=8, nhead=2, num_layers=1)
    with sd.no_grad():
        for p in m.parameters():
            p.mul_(0)
    assert evaluate_lm(m, list(range(7)) * 10, batch_size=2, bptt=4) == pytest.approx(
        math.log(7), rel=1e-5)


def test_cosine_lr_shape():
    lrs = [cosine_lr(s, 1.0, 5, 50, 0.1) for s in range(51)]
    assert lrs[4] == 1.0 and lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))


def test_cli_train_and_sample(tmp_path, capsys):
    from shendu.cli import main
    path = tmp_path / "t.txt"
    path.write_text("hello world, hello there. " * 50)
    out = tmp_path / "run"
    assert main(["text", "train-lm", "--data", str(path), "--steps", "4", "--batch-size", "2",
                 "--bptt", "8", "--hidden-size", "16", "--embed-dim", "8", "--eval-every", "2",
                 "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    assert main(["text", "train-lm", "--out", str(out), "--resume", "--steps", "6",
                 "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 6
    assert main(["text", "sample", str(out), "--prompt", "he", "--length", "5"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()[-1]) >= 2
    assert main(["text", "train-lm", "--out", str(tmp_path / "none"), "--resume",
                 "--no-progress"]) == 2
