"Residual PPO with an env on a torch device: the step loop stays there (CPU checks always, the CUDA check on a GPU)"
import contextlib, inspect, math
import numpy as np, pytest, torch
import gymnasium as gym
from gymnasium.vector import AutoresetMode, VectorEnv
from waypoint_rl.utils import UserError
from waypoint_rl.env import ToyWaypointConfig, ToyWaypointVecEnv
from waypoint_rl.policy import WaypointNet, WaypointNetConfig
from waypoint_rl.ppo import PPOConfig, PPOTrainer, compute_gae, is_tensor_obs
from waypoint_rl.ppo_delta import (EpisodeOutcomes, ResidualDeltaAgent, _training_env, make_residual_trainer,
                                  residual_env_config)

torch.set_num_threads(1)
_numpy, _cpu = torch.Tensor.numpy, torch.Tensor.cpu      # the env's own conversions, taken before any test patches them
K, S = 3, 16                                             # waypoints per action, image side [px]

# ---------------------------------------------------------------- a small env on a torch device
class TensorCarEnv(VectorEnv):
    """A 1-D car per row, rendered as a gradient image, with the device env's contract: tensors on `device` in and
    out (or numpy arrays with `as_numpy`), NEXT_STEP autoreset, episodes ending on goal, off route or a time limit"""
    metadata = {'autoreset_mode': AutoresetMode.NEXT_STEP}

    def __init__(self, n:int, device='cpu', as_numpy:bool=False):
        self.num_envs, self.device, self.as_numpy = n, torch.device(device), as_numpy
        self.single_observation_space = gym.spaces.Dict({
            'front': gym.spaces.Box(0, 255, (S, S, 3), np.uint8), 'image_valid': gym.spaces.Box(0, 1, (1,), np.int8),
            'state': gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)})
        self.single_action_space = gym.spaces.Box(-20., 20., (K, 2), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n)
        z = lambda dtype=torch.float32: torch.zeros(n, dtype=dtype, device=self.device)
        self.x, self.t, self.ep, self.seed = z(), z(torch.int64), z(torch.int64), 0
        self.restart = z(torch.bool)
        self.goal_len = 3 + torch.arange(n, device=self.device) % 4
        self.grid = torch.linspace(-1, 1, S, device=self.device).view(1, 1, S, 1)
        self.img = torch.zeros((n, S, S, 3), dtype=torch.uint8, device=self.device)   # reused, like copy=False

    def _start(self, rows):
        "Counter-based start positions: seed, car and episode give x0 (no generator state to keep)"
        car = torch.arange(self.num_envs, device=self.device)
        x0 = torch.sin(self.seed*12.9898 + car*78.233 + self.ep*3.1)
        self.x = torch.where(rows, x0, self.x); self.t = torch.where(rows, 0, self.t)

    def _out(self, x):
        return _numpy(_cpu(x)) if self.as_numpy else x

    def _obs(self):
        gray = ((self.x.view(-1, 1, 1, 1) + self.grid)*60 + 128).clamp(0, 255).to(torch.uint8)
        self.img.copy_(gray.expand_as(self.img))
        valid = (self.t % 5 != 4).to(torch.int8).view(-1, 1)          # some frames drop out
        state = torch.stack([self.x, self.t.float()/10, torch.zeros_like(self.x), torch.zeros_like(self.x)], 1)
        return {'front': self._out(self.img), 'image_valid': self._out(valid), 'state': self._out(state)}

    def _info(self, success, off):
        return {'is_success': self._out(success), 'off_route': self._out(off),
                'expert_waypoints': self._out(torch.zeros((self.num_envs, K, 2), device=self.device))}

    def reset(self, *, seed=None, options=None):
        self.seed = 0 if seed is None else seed
        self.ep.zero_(); self.restart.zero_()
        self._start(torch.ones_like(self.restart))
        no = torch.zeros_like(self.restart)
        return self._obs(), self._info(no, no)

    def step(self, actions):
        a = torch.as_tensor(actions, device=self.device).float()
        r = self.restart
        self.ep += r
        moved = self.x + 0.05*a[..., 0].mean(1) - 0.02
        self._start(r)
        self.x, self.t = torch.where(r, self.x, moved), torch.where(r, self.t, self.t + 1)
        reward = torch.where(r, 0., 1. - self.x.abs())
        success = ~r & (self.t >= self.goal_len) & (self.x.abs() < 0.5)
        off = ~r & (self.x.abs() > 1.5)
        term = success | off
        trunc = ~r & ~term & (self.t >= 8)
        self.restart = term | trunc
        return self._obs(), self._out(reward), self._out(term), self._out(trunc), self._info(success, off)

    def state_dict(self)->dict:
        return {k: getattr(self, k).clone() for k in ('x', 't', 'ep', 'restart')} | {'seed': self.seed}

    def load_state_dict(self, sd:dict)->tuple:
        for k in ('x', 't', 'ep', 'restart'): getattr(self, k).copy_(sd[k])
        self.seed = sd['seed']
        no = torch.zeros_like(self.restart)
        return self._obs(), self._info(no, no)

def tiny_net(seed=0):
    torch.manual_seed(seed)
    return WaypointNet(WaypointNetConfig(horizon_steps=K, image_size=S, channels=[4, 8], z_dim=16, hidden=16))

def trainer(n=4, T=16, iters=2, device='cpu', as_numpy=False, seed=3, env=None):
    env = TensorCarEnv(n, device, as_numpy) if env is None else env
    envs = EpisodeOutcomes(env)
    cfg = PPOConfig(num_envs=n, num_steps=T, total_steps=n*T*iters, num_minibatches=2, update_epochs=2,
                    reward_scale=0.1, seed=seed, device=str(device))
    torch.manual_seed(seed)
    agent = ResidualDeltaAgent(tiny_net(), ['front'], max_delta=2., hidden=8, delta_l2=0.02,
                               action_low=env.single_action_space.low, action_high=env.single_action_space.high,
                               state=True)
    return PPOTrainer(envs, agent, cfg)

def history(tr):
    out = []
    for r in tr.history:
        r = dict(r); r.pop('charts/SPS'); out.append(r)
    return out

def goal_rate(tr, rec): rec.update({f'charts/{k}': v for k, v in tr.envs.pop().items()})

# ---------------------------------------------------------------- the tensor path on the CPU
def test_the_tensor_env_trains_like_its_numpy_twin():
    "the same env giving tensors or numpy arrays: the same rollout, losses, episode counts and weights"
    a = trainer(); a.train(callback=goal_rate, progress_bar=False)        # one after the other: torch's global RNG
    b = trainer(as_numpy=True); b.train(callback=goal_rate, progress_bar=False)
    assert a.tensor_env and not b.tensor_env
    ha, hb = history(a), history(b)
    assert ha == hb
    assert sum(h.get('charts/episodes', 0) for h in ha) > 4 and all(math.isfinite(h['losses/value_loss']) for h in ha)
    assert 'charts/goal_rate' in ha[-1] and 0 < a.episodes == b.episodes
    for p, q in zip(a.params, b.params): assert torch.equal(p, q)
    assert not torch.equal(a.agent.delta.net[-1].weight, torch.zeros_like(a.agent.delta.net[-1].weight))  # it learned

@contextlib.contextmanager
def no_host_reads(monkeypatch):
    "Every way of reading a tensor's value on the host raises inside the block"
    def boom(name):
        def f(*a, **k): raise AssertionError(f"host sync in the step loop: Tensor.{name}")
        return f
    with monkeypatch.context() as m:
        for name in ('item', 'cpu', 'numpy', 'tolist', '__bool__', '__float__', '__int__', '__array__'):
            m.setattr(torch.Tensor, name, boom(name))
        yield

def test_the_step_loop_never_reads_a_tensor_on_the_host(monkeypatch):
    tr = trainer()
    tr.collect()                                                   # buffers allocated, features cached
    with no_host_reads(monkeypatch): ended_ret, ended_len = tr.collect_steps()
    assert ended_ret.shape == (16, 4) and tr.buf.dones.any() and (ended_len[tr.buf.dones] > 0).all()
    with pytest.raises(AssertionError, match='host sync'):       # the check bites: the numpy env's loop does read
        with no_host_reads(monkeypatch): trainer(as_numpy=True).collect_steps()

def test_the_toy_env_on_a_device_neither(monkeypatch):
    "the same check with the project's toy env on a torch device (the CPU here)"
    net = tiny_net()
    cfg = PPOConfig(num_envs=4, num_steps=8, total_steps=64, num_minibatches=2, device='cpu', seed=1)
    tr = make_residual_trainer(net, cfg, residual_env_config(net), state=True, tensor_env='on')
    tr.collect()
    assert tr.tensor_env and torch.is_tensor(tr.obs['front'])
    with no_host_reads(monkeypatch): tr.collect_steps()

def test_episode_outcomes_count_on_the_device(monkeypatch):
    ea, eb = EpisodeOutcomes(TensorCarEnv(4)), EpisodeOutcomes(TensorCarEnv(4, as_numpy=True))
    ea.reset(seed=1); eb.reset(seed=1)
    act = torch.full((4, K, 2), 3.)
    with no_host_reads(monkeypatch):
        for _ in range(30): ea.step(act)
    for _ in range(30): eb.step(_numpy(act))
    ra, rb = ea.pop(), eb.pop()
    assert ra == rb and set(ra) == {'goal_rate', 'off_route_rate'} and 0 < ra['goal_rate'] < 1
    assert ea.pop() == {}

def test_resume_with_a_tensor_env_is_bit_identical():
    whole = trainer(iters=3); whole.train(progress_bar=False)
    first = trainer(iters=3); first.num_iterations = 1; first.train(progress_bar=False)
    sd = first.state_dict()
    torch.manual_seed(123)                                         # the state to restore includes the RNG
    second = trainer(iters=3, seed=5)
    second.agent.delta.net[-1].weight.data.add_(1.)                # to be overwritten by the loaded state
    second.load_state_dict(sd); second.train(progress_bar=False)
    assert history(whole)[1:] == history(second) and second.global_step == whole.global_step
    for p, q in zip(whole.params, second.params): assert torch.equal(p, q)
    assert second._autoreset.dtype == torch.bool and second._ep_ret.dtype == torch.float64

def test_the_env_kind_is_chosen_and_checked():
    cfg = ToyWaypointConfig(cameras=())
    assert not is_tensor_obs(_training_env(2, cfg, torch.device('cpu'), 'auto').reset(seed=0)[0])  # numpy on the CPU
    with pytest.raises(UserError, match=r"tensor_env \(--tensor-env\): must be 'auto', 'on' or 'off'"):
        _training_env(2, cfg, torch.device('cpu'), 'yes')
    if 'device' not in inspect.signature(ToyWaypointVecEnv).parameters:
        with pytest.raises(UserError, match='has no torch device'): _training_env(2, cfg, torch.device('cpu'), 'on')
    else:
        env = _training_env(2, cfg, torch.device('cpu'), 'on')
        assert torch.is_tensor(env.reset(seed=0)[0]['state'])

def test_the_compile_flag_reaches_the_agent():
    "(compiling itself is measured, not tested: it takes tens of seconds on a small CPU)"
    net = tiny_net()
    cfg = PPOConfig(num_envs=2, num_steps=4, total_steps=8, num_minibatches=1, device='cpu')
    env_cfg = ToyWaypointConfig(cameras=('front',), image_size=S, horizon_steps=K)
    assert make_residual_trainer(net, cfg, env_cfg, compile=True).agent.compile_encoder
    tr = make_residual_trainer(net, cfg, env_cfg)
    assert not tr.agent.compile_encoder and tr.agent.frozen_net(torch.device('cpu')) is tr.agent.sft

# ---------------------------------------------------------------- on CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

def _device_envs():
    envs = [pytest.param(lambda n: TensorCarEnv(n, 'cuda'), id='test-env')]
    if 'device' in inspect.signature(ToyWaypointVecEnv).parameters:
        cfg = ToyWaypointConfig(cameras=('front',), image_size=S, horizon_steps=K)
        envs.append(pytest.param(lambda n: ToyWaypointVecEnv(n, cfg, device='cuda', copy=False), id='toy-env'))
    return envs

@cuda
@pytest.mark.parametrize('make_env', _device_envs())
def test_one_cuda_iteration_without_a_host_sync(make_env):
    tr = trainer(n=8, T=16, iters=3, device='cuda', env=make_env(8))
    tr.train(progress_bar=False, callback=lambda t, r: t.iteration >= 1)   # warm-up: buffers, kernels, cuDNN plans
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try: tr.collect_steps()
    finally: torch.cuda.set_sync_debug_mode('default')
    for x in (tr.buf.values, tr.buf.rewards, tr.buf.dones, tr.buf.actions, tr.buf.features['z'], tr._ep_ret,
              tr.obs['front'], tr.obs['state']):
        assert x.device.type == 'cuda'
    assert tr.agent.frozen_net(tr.device) is not tr.agent.sft                 # the channels-last bf16 copy
    assert tr.buf.features['z'].dtype == torch.float32
    rec = tr.update(*compute_gae(
        tr.buf.rewards, tr.buf.values, tr.buf.next_values(tr.agent.get_value(tr.agent.encode(tr.obs))),
        tr.buf.terminated, tr.buf.dones, 0.99, 0.95))
    assert all(math.isfinite(v) for k, v in rec.items() if k.startswith('losses/') and k != 'losses/explained_variance')
