"""DQN on CartPole: environment steps (greedy action from the Q-network each step) and
gradient updates, written once for shendu and for PyTorch with the same network (4-256-256-2),
batch (64), replay buffer (shendu.rl's NumPy arrays) and Gymnasium environment.

Small batches make the per-call overhead of the framework what decides these numbers.
"""
from _bench_util import twin_benchmark

HIDDEN, BATCH, GAMMA = 256, 64, 0.99


def _qnet(fw):
    nn = fw.nn
    fw.seed(0)
    return nn.Sequential(nn.Linear(4, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, 2))


def _buffer():
    from shendu.rl import Env, ReplayBuffer

    env = Env("CartPole-v1", seed=0)
    buf = ReplayBuffer(10_000, obs_shape=(4,), seed=0)
    obs = env.reset()
    for _ in range(5_000):
        a = int(env.action_space.sample())
        step = env.step(a)
        buf.add(obs, a, step.reward, step.obs, step.terminated)
        obs = env.reset() if step.done else step.obs
    return buf


@twin_benchmark("dqn_cartpole_env_steps", "train", items_per_iter=100, unit="steps/s")
def dqn_env_steps(fw):
    """100 CartPole steps, each acting greedily through the Q-network and stored in replay."""
    from shendu.rl import Env, ReplayBuffer

    net = _qnet(fw)
    env = Env("CartPole-v1", seed=0)
    buf = ReplayBuffer(100_000, obs_shape=(4,), seed=0)
    state = {"obs": env.reset()}

    def step():
        obs = state["obs"]
        for _ in range(100):
            with fw.no_grad():
                a = int(net(fw.tensor(obs.reshape(1, 4))).argmax())
            s = env.step(a)
            buf.add(obs, a, s.reward, s.obs, s.terminated)
            obs = env.reset() if s.done else s.obs
        state["obs"] = obs
    return step


@twin_benchmark("dqn_cartpole_updates", "train", items_per_iter=1, unit="updates/s")
def dqn_updates(fw):
    """One Double-DQN update: sample 64, target-net targets, Huber loss, clip, Adam."""
    import copy

    net = _qnet(fw)
    target = copy.deepcopy(net)
    opt = fw.optim.Adam(net.parameters(), lr=1e-3)
    buf = _buffer()

    def step():
        b = buf.sample(BATCH)
        nxt = fw.tensor(b.next_obs)
        with fw.no_grad():
            a_star = net(nxt).argmax(1, keepdim=True)
            v = target(nxt).gather(1, a_star).squeeze(1)
            y = fw.tensor(b.rewards) + fw.tensor(b.discounts(GAMMA)) * v
        q = net(fw.tensor(b.obs)).gather(1, fw.tensor(b.actions.reshape(-1, 1))).squeeze(1)
        loss = fw.F.smooth_l1_loss(q, y)
        opt.zero_grad()
        loss.backward()
        fw.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
    return step
