"""``shendu rl train`` / ``shendu rl eval`` end to end on small settings."""
import json

import numpy as np
import pytest

from shendu.cli import main
from shendu.rl import EpisodeStats, load_agent

pytest.importorskip("gymnasium", reason="shendu.rl needs gymnasium (the 'rl' extra)")


def test_train_writes_agent_returns_plot_and_eval_reads_it(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["rl", "train", "q-learning", "--env", "CliffWalking-v1", "--seed", "0",
                 "--out", str(out), "--eval-episodes", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exact_greedy_return"] == -13.0 == summary["eval_mean_return"]
    assert summary["settings"]["epsilon"] == 0.1 and summary["length"] == 500
    assert len(EpisodeStats.read_csv(out / "returns.csv")) == 500
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    assert (out / "returns.png").exists()
    capsys.readouterr()
    assert main(["rl", "eval", str(out), "--episodes", "4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mean_return"] == -13.0 and result["episodes"] == 4
    assert load_agent(out).act(36) == 0  # up, away from the cliff first


def test_flags_override_defaults_and_dqn_resumes(tmp_path):
    out = tmp_path / "dqn"
    common = ["rl", "train", "dqn", "--env", "CartPole-v1", "--seed", "1", "--out", str(out),
              "--hidden", "16", "--learning-starts", "100", "--train-freq", "4",
              "--gradient-steps", "1", "--eval-every", "100", "--eval-episodes", "2",
              "--save-buffer", "--no-double"]
    assert main(common + ["--length", "200"]) == 0
    first = load_agent(out / "checkpoint.sd")
    assert first.steps_done == 200 and not first.double and first.hidden == [16]
    episodes = len(EpisodeStats.read_csv(out / "returns.csv"))
    assert main(common + ["--length", "300", "--resume"]) == 0
    # The returns CSV continues the first run's episodes instead of starting over.
    assert len(EpisodeStats.read_csv(out / "returns.csv")) > episodes
    again = load_agent(out / "checkpoint.sd")
    assert again.best_eval is not None and again.best_state is not None
    assert again.steps_done == 300 and len(again.buffer) >= len(first.buffer)
    assert again.updates_done == first.updates_done + 25
    n = len(first.buffer)
    np.testing.assert_array_equal(again.buffer.obs[:n], first.buffer.obs[:n])


@pytest.mark.parametrize("argv, message", [
    (["dqn", "--env", "Pendulum-v1"], "dqn needs a discrete (Discrete) action space"),
    (["ddpg", "--env", "CartPole-v1"], "ddpg needs a continuous (Box) action space"),
    (["sarsa", "--env", "NoSuchEnv-v3"], "unknown environment id 'NoSuchEnv-v3'"),
    (["sarsa", "--env", "CartPole-v1"], "needs a Discrete observation space"),
])
def test_clear_errors(tmp_path, capsys, argv, message):
    assert main(["rl", "train", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
