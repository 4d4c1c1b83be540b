"Tests of the generic PPO core (waypoint_rl.ppo) that do not belong in the docs"
import math, sys
import numpy as np, pytest, torch, torch.nn as nn
import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import given, settings, strategies as st
from waypoint_rl.ppo import (PPOConfig, PPOTrainer, MLPActorCritic, JSONLLogger, compute_gae,
                            evaluate, ppo_train, plot_learning_curve, read_jsonl)
from waypoint_rl.utils import UserError, seed_everything

torch.set_num_threads(1)

# ---------------------------------------------------------------- a counting env with known episodes
class CountEnv(gym.Env):
    "obs = step counter k in the episode; reward k+1; `length` steps, alternately truncated (even), terminated (odd)"
    def __init__(self, length):
        self.length = length
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.episode = -1
    def reset(self, seed=None, options=None):
        super().reset(seed=seed); self.k = 0; self.episode += 1
        return np.array([0.], np.float32), {}
    def step(self, action):
        r = float(self.k + 1); self.k += 1
        end = self.k == self.length
        return np.array([self.k], np.float32), r, end and self.episode % 2 == 1, end and self.episode % 2 == 0, {}

class CounterValueAgent(nn.Module):
    "V(s) = k (the counter), a Gaussian policy around a learnable mean"
    def __init__(self):
        super().__init__(); self.mu = nn.Parameter(torch.zeros(1)); self.log_std = nn.Parameter(torch.zeros(1))
    def encode(self, obs): return torch.as_tensor(obs, dtype=torch.float32)
    def get_value(self, f): return f[:, 0].clone()
    def get_action_and_value(self, f, action=None):
        mean = self.mu.expand(len(f), 1); d = torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))
        if action is None: action = d.sample()
        return action, d.log_prob(action).sum(-1), d.entropy().sum(-1), self.get_value(f)

LENGTHS = [3, 4, 2]

def count_envs(mode):
    return SyncVectorEnv([lambda L=L: CountEnv(L) for L in LENGTHS], autoreset_mode=mode)

def reference(mode, env, s, T_start, T, gamma, lam):
    "(valid, advantage) of the transition at global vector step s of `env`, rollout rows [T_start, T_start+T), summed"
    L = LENGTHS[env]
    cyc = L + 1 if mode == AutoresetMode.NEXT_STEP else L
    p, e = s % cyc, s // cyc
    if p == L: return False, None                                   # NEXT_STEP reset step
    k, terminated = p, e % 2 == 1
    adv, j, s_j = 0., k, s
    while True:
        v_next = 0. if (j + 1 == L and terminated) else float(j + 1)
        adv += (gamma*lam)**(j - k)*((j + 1) + gamma*v_next - j)
        if j + 1 == L or s_j + 1 >= T_start + T: break            # episode end, or rollout end (bootstrap V(next obs))
        j, s_j = j + 1, s_j + 1
    return True, adv

@pytest.mark.parametrize('mode', [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_gae_over_autoreset_modes(mode):
    gamma, lam, T = 0.9, 0.8, 7
    cfg = PPOConfig(num_envs=3, num_steps=T, total_steps=3*T*2, num_minibatches=1, gamma=gamma, gae_lambda=lam,
                    device='cpu')
    tr = PPOTrainer(count_envs(mode), CounterValueAgent(), cfg)
    all_returns = []
    for it in range(2):                                     # two rollouts: episodes and reset steps cross the boundary
        roll = tr.collect()
        adv, ret = compute_gae(tr.buf.rewards, tr.buf.values, tr.buf.next_values(roll['last_value']),
                               tr.buf.terminated, tr.buf.dones, gamma, lam)
        torch.testing.assert_close(ret - adv, tr.buf.values)
        for t in range(T):
            for i in range(3):
                valid, a = reference(mode, i, it*T + t, it*T, T, gamma, lam)
                assert bool(tr.buf.valid[t, i]) == valid, (it, t, i)
                if valid:
                    assert math.isclose(adv[t, i].item(), a, rel_tol=1e-5, abs_tol=1e-5), (mode, it, t, i, a)
        all_returns += list(zip(roll['returns'], roll['lengths']))
    # returns tracked from rewards: every finished episode of length L returned 1+...+L
    assert all_returns and all(r == l*(l + 1)/2 and l in LENGTHS for r, l in all_returns)

def test_rewards_are_scaled_for_learning_not_in_the_returns():
    "reward_scale multiplies the rewards PPO learns from; the episode returns it reports stay the env's own"
    cfg = PPOConfig(num_envs=3, num_steps=7, total_steps=42, num_minibatches=1, reward_scale=0.25, device='cpu')
    tr = PPOTrainer(count_envs(AutoresetMode.SAME_STEP), CounterValueAgent(), cfg)
    roll = tr.collect()
    for t in range(7):                                     # env i's reward at step t: (t mod its length) + 1
        for i, L in enumerate(LENGTHS): assert tr.buf.rewards[t, i].item() == 0.25*(t % L + 1), (t, i)
    assert roll['returns'] and all(r == l*(l + 1)/2 for r, l in zip(roll['returns'], roll['lengths']))

def test_same_step_missing_final_obs_is_an_error():
    class NoFinal(SyncVectorEnv):
        def step(self, a):
            o, r, te, tr, info = super().step(a); info.pop('final_obs', None); return o, r, te, tr, info
    envs = NoFinal([lambda: CountEnv(2)], autoreset_mode=AutoresetMode.SAME_STEP)
    cfg = PPOConfig(num_envs=1, num_steps=4, total_steps=4, num_minibatches=1, device='cpu')
    tr = PPOTrainer(envs, CounterValueAgent(), cfg)
    with pytest.raises(UserError, match="final_obs"): tr.collect()

# ---------------------------------------------------------------- GAE against a direct sum (property)
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.floats(0, 1), st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_gae_matches_direct_sum(T, N, gamma, lam, seed):
    g = torch.Generator().manual_seed(seed)
    r, v, nv = (torch.randn(T, N, generator=g, dtype=torch.float64) for _ in range(3))
    done = torch.rand(T, N, generator=g) < 0.3
    term = done & (torch.rand(T, N, generator=g) < 0.5)
    adv, ret = compute_gae(r, v, nv, term, done, gamma, lam)
    for t in range(T):
        for i in range(N):
            a, j = 0., t
            while True:
                a += (gamma*lam)**(j - t)*(r[j, i] + gamma*nv[j, i]*(0. if term[j, i] else 1.) - v[j, i]).item()
                if done[j, i] or j == T - 1: break
                j += 1
            assert math.isclose(adv[t, i].item(), a, rel_tol=1e-9, abs_tol=1e-9)
    torch.testing.assert_close(ret, adv + v)

# ---------------------------------------------------------------- trainer pieces
def pendulum(n=2, mode=AutoresetMode.NEXT_STEP):
    return gym.make_vec('Pendulum-v1', num_envs=n, vectorization_mode='sync', vector_kwargs=dict(autoreset_mode=mode))

def small_cfg(**kw):
    return PPOConfig(**{**dict(num_envs=2, num_steps=32, total_steps=128, num_minibatches=2, update_epochs=2, gamma=0.9,
                               clip_vloss=False, seed=0, device='cpu'), **kw})

def test_same_step_determinism_and_log_std_trains():
    def run():
        seed_everything(5); e = pendulum(mode=AutoresetMode.SAME_STEP); a = MLPActorCritic.from_envs(e)
        tr = ppo_train(e, a, small_cfg(num_steps=120, total_steps=480, seed=5), progress=False)
        return [{k: v for k, v in r.items() if k != 'charts/SPS'} for r in tr.history], a, tr
    h1, a1, tr = run(); h2, a2, _ = run()
    assert h1 == h2
    assert any(p is a1.log_std for p in tr.params)
    assert not torch.equal(a1.log_std.detach(), torch.zeros(1))
    assert h1[-1]['charts/episodes'] >= 1 and h1[-1]['charts/episodic_length'] == 200

def test_resume_roundtrip(tmp_path):
    cfg = small_cfg(total_steps=256)                                 # 4 iterations of 64 steps
    seed_everything(0); e = pendulum(); tr = PPOTrainer(e, MLPActorCritic.from_envs(e), cfg)
    tr.train(callback=lambda t, r: t.iteration == 2, progress_bar=False)
    torch.save(tr.state_dict(), tmp_path/'trainer.pt')
    sd = torch.load(tmp_path/'trainer.pt', weights_only=True)
    seed_everything(1); e2 = pendulum(); tr2 = PPOTrainer(e2, MLPActorCritic.from_envs(e2), cfg)
    tr2.load_state_dict(sd)
    for p, q in zip(tr.agent.parameters(), tr2.agent.parameters()): assert torch.equal(p, q)
    s1, s2 = tr.optimizer.state_dict()['state'], tr2.optimizer.state_dict()['state']
    for k in s1: assert torch.equal(s1[k]['exp_avg'], s2[k]['exp_avg']) and torch.equal(s1[k]['step'], s2[k]['step'])
    assert torch.equal(tr2.shuffle_gen.get_state(), tr.shuffle_gen.get_state())
    h = tr2.train(progress_bar=False)
    assert [r['iteration'] for r in h] == [3, 4] and [r['global_step'] for r in h] == [192, 256]
    assert math.isclose(h[0]['charts/learning_rate'], cfg.learning_rate*0.5)
    sd2 = tr2.state_dict(agent=False)
    assert 'agent' not in sd2 and sd2['iteration'] == 4

class FrozenEncoderAgent(nn.Module):
    "Residual-shaped agent: a frozen encoder gives dict features {z, base}; the policy adds a delta to `base`"
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(3, 8).requires_grad_(False)
        self.head = nn.Linear(8, 1); self.value = nn.Linear(8, 1); self.log_std = nn.Parameter(torch.zeros(1))
        self.env_calls = 0
    def encode(self, obs):
        o = torch.as_tensor(obs, dtype=torch.float32)
        return {'z': torch.tanh(self.encoder(o)), 'base': -o[:, 2:3]}     # a made-up "SFT" action
    def get_value(self, f): return self.value(f['z']).squeeze(-1)
    def get_action_and_value(self, f, action=None):
        mean = self.head(f['z']); d = torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))
        if action is None: action = d.sample()
        return action, d.log_prob(action).sum(-1), d.entropy().sum(-1), self.get_value(f)
    def env_action(self, action, f):
        self.env_calls += 1
        return (f['base'] + action.clamp(-0.5, 0.5)).clamp(-2, 2).numpy()
    def aux_loss(self, f): return 1e-2*self.head(f['z']).pow(2).mean()

def test_dict_features_frozen_params_env_action_aux_loss():
    seed_everything(0); e = pendulum(); agent = FrozenEncoderAgent()
    enc0 = agent.encoder.weight.clone()
    cfg = small_cfg()
    tr = ppo_train(e, agent, cfg, progress=False)
    assert tr.buf.features['z'].shape == (32, 2, 8) and tr.buf.features['base'].shape == (32, 2, 1)
    assert all(p is not agent.encoder.weight for p in tr.params)
    assert torch.equal(agent.encoder.weight, enc0)
    assert agent.env_calls == cfg.num_iterations*cfg.num_steps
    assert all('losses/aux_loss' in r for r in tr.history)

def test_aux_loss_pulls():
    "with a strong pull toward zero mean, the head's output shrinks more than without"
    def head_out(pull):
        class A(FrozenEncoderAgent):
            def aux_loss(self, f): return pull*self.head(f['z']).pow(2).mean()
        seed_everything(0); e = pendulum(); a = A()
        with torch.no_grad(): a.head.bias.fill_(1.)
        ppo_train(e, a, small_cfg(learning_rate=1e-2), progress=False)
        return a.head.bias.abs().item()
    assert head_out(100.) < head_out(0.)

def test_errors():
    e = pendulum()
    with pytest.raises(UserError, match='no trainable parameters'):
        PPOTrainer(e, MLPActorCritic.from_envs(e).requires_grad_(False), small_cfg())
    class NoDet(CounterValueAgent): pass
    with pytest.raises(UserError, match='deterministic_action'):
        evaluate(count_envs(AutoresetMode.NEXT_STEP), NoDet(), 2)
    with pytest.raises(UserError, match='DISABLED'):
        PPOTrainer(count_envs(AutoresetMode.DISABLED), CounterValueAgent(), small_cfg(num_envs=3))

def test_evaluate_counts_episodes_in_both_modes(capsys):
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        res = evaluate(count_envs(mode), CounterValueAgent(), n_episodes=5, deterministic=False, seed=0)
        assert len(res['returns']) == 5 and all(r == l*(l + 1)/2 for r, l in zip(res['returns'], res['lengths']))
        assert res['goal_reached'] == [False]*5
    assert capsys.readouterr().err == ''                 # no progress bar: evaluation runs inside training loops

# ---------------------------------------------------------------- logs
def test_logger_without_tensorboard_and_plot(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)    # import now fails like an absent tensorboard
    lg = JSONLLogger(tmp_path/'a.jsonl')
    assert lg.writer is None
    for s in (1, 2, 3): lg.log({'global_step': s, 'charts/episodic_return': -s*1.})
    lg.close()
    assert [r['global_step'] for r in read_jsonl(tmp_path/'a.jsonl')] == [1, 2, 3]
    fig = plot_learning_curve({'a': tmp_path/'a.jsonl', 'b': read_jsonl(tmp_path/'a.jsonl')}, png=tmp_path/'c.png')
    assert (tmp_path/'c.png').read_bytes()[:4] == b'\x89PNG' and len(fig.axes[0].lines) == 2
    with pytest.raises(UserError, match="no record has both 'global_step' and 'losses/x'"):
        plot_learning_curve(tmp_path/'a.jsonl', y='losses/x')

def test_trainer_writes_jsonl(tmp_path):
    seed_everything(0); e = pendulum()
    lg = JSONLLogger(tmp_path/'log.jsonl', tensorboard=False)
    tr = ppo_train(e, MLPActorCritic.from_envs(e), small_cfg(), logger=lg, progress=False)
    recs = read_jsonl(tmp_path/'log.jsonl')
    assert len(recs) == 2 and recs[-1]['global_step'] == 128 and recs == [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in tr.history]

# ---------------------------------------------------------------- saving the env's state; several ranks, faked
class CountVecEnv(gym.vector.VectorEnv):
    "Counters like `CountEnv` (all truncated), batched, NEXT_STEP autoreset, and able to save and restore their state"
    metadata = {'autoreset_mode': AutoresetMode.NEXT_STEP}
    def __init__(self, lengths=LENGTHS):
        self.L, self.num_envs = np.array(lengths), len(lengths)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.single_action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.reset_seeds, self.loaded = [], []
    def _obs(self): return self.k[:, None].astype(np.float32)
    def reset(self, seed=None, options=None):
        self.reset_seeds.append(seed)
        self.k, self.reset_next = np.zeros(self.num_envs, np.int64), np.zeros(self.num_envs, bool)
        return self._obs(), {}
    def step(self, action):
        r = np.where(self.reset_next, 0., self.k + 1.)
        self.k = np.where(self.reset_next, 0, self.k + 1)
        trunc = ~self.reset_next & (self.k == self.L)
        self.reset_next = trunc
        return self._obs(), r, np.zeros(self.num_envs, bool), trunc, {}
    def state_dict(self): return {'k': torch.from_numpy(self.k.copy()), 'reset_next': torch.from_numpy(self.reset_next)}
    def load_state_dict(self, sd):
        self.loaded.append(sd)
        self.k, self.reset_next = sd['k'].numpy().copy(), sd['reset_next'].numpy().copy()
        return self._obs(), {}

def count_cfg(**kw):
    return PPOConfig(**{**dict(num_envs=3, num_steps=7, total_steps=84, num_minibatches=2, update_epochs=2, seed=0,
                               device='cpu'), **kw})

def without_sps(h): return [{k: v for k, v in r.items() if k != 'charts/SPS'} for r in h]

class FakeClock:
    "time.perf_counter that advances one second per call"
    def __init__(self): self.t = -1.
    def perf_counter(self): self.t += 1.; return self.t

def test_resume_restores_the_env_state_exactly(tmp_path, monkeypatch):
    "a run stopped mid-episode and resumed with the env's saved state replays the uninterrupted run"
    import waypoint_rl.ppo as ppo
    seed_everything(0); full = ppo_train(CountVecEnv(), MLPActorCritic.from_envs(CountVecEnv()), count_cfg(),
                                         progress=False)
    seed_everything(0); e = CountVecEnv(); tr = PPOTrainer(e, MLPActorCritic.from_envs(e), count_cfg())
    tr.train(callback=lambda t, r: t.iteration == 2, progress_bar=False)
    torch.save(tr.state_dict(), tmp_path/'trainer.pt')
    sd = torch.load(tmp_path/'trainer.pt', weights_only=True)
    assert sd['ranks'][0]['env']['k'].tolist() == [2, 4, 2] and sd['ranks'][0]['ep_ret'].tolist() == [3., 0., 0.]
    seed_everything(1); e2 = CountVecEnv(); tr2 = PPOTrainer(e2, MLPActorCritic.from_envs(e2), count_cfg())
    tr2.load_state_dict(sd)
    assert len(e2.loaded) == 1 and e2.reset_seeds == [0]                        # restored, not reset again
    monkeypatch.setattr(ppo, 'time', FakeClock())
    h = tr2.train(progress_bar=False)
    assert without_sps(h) == without_sps(full.history[2:])
    assert [r['charts/SPS'] for r in h] == [21., 21.]     # steps since the resume (2 × 21 over 2 fake seconds)

def test_resume_without_env_state_resets_on_fresh_seeds(tmp_path):
    "a state without the env's (saved by an env that cannot save it) resets the env on a seed from (seed, step)"
    seed_everything(0); e = CountVecEnv(); tr = PPOTrainer(e, MLPActorCritic.from_envs(e), count_cfg())
    tr.train(callback=lambda t, r: t.iteration == 2, progress_bar=False)
    sd = tr.state_dict()
    sd['ranks'][0]['env'] = None
    e2 = CountVecEnv(); tr2 = PPOTrainer(e2, MLPActorCritic.from_envs(e2), count_cfg())
    tr2.load_state_dict(sd)
    assert e2.loaded == [] and e2.reset_seeds == [0, int(np.random.SeedSequence([0, 42]).generate_state(1)[0])]
    assert tr2._ep_ret.tolist() == [0., 0., 0.] and tr2._ep_len.tolist() == [0, 0, 0]
    assert tr2._autoreset.tolist() == [False]*3           # the fresh episodes' first step counts
    class CannotLoad(CountVecEnv): load_state_dict = None
    e3 = CannotLoad(); tr3 = PPOTrainer(e3, MLPActorCritic.from_envs(e3), count_cfg())
    tr3.load_state_dict(tr.state_dict())                  # an env state, but this env cannot load it: reset
    assert len(e3.reset_seeds) == 2 and tr3._ep_len.tolist() == [0, 0, 0]

def test_two_ranks_bookkeeping(monkeypatch):
    "with `world()` faked to 2 ranks in one process (the collectives are no-ops there), steps count both ranks"
    import waypoint_rl.ppo as ppo
    bars = []
    real = ppo.progress
    monkeypatch.setattr(ppo, 'progress', lambda **kw: bars.append(kw) or real(**kw))
    def run(w):
        monkeypatch.setattr(ppo, 'world', lambda: (0, w))
        seed_everything(0); e = CountVecEnv()
        return ppo_train(e, MLPActorCritic.from_envs(e), count_cfg(total_steps=84*w), progress=False).history
    h1, h2 = run(1), run(2)
    assert [r['global_step'] for r in h2] == [42, 84, 126, 168] and bars[-1]['total'] == 168
    ep = lambda h: [(r['charts/episodic_return'], r['charts/episodic_length'], r['charts/episodes']) for r in h]
    assert ep(h2) == ep(h1) and ep(h1)[0] == (5.6, 2.8, 5)       # returns 6, 6, 10, 3, 3: whatever the actions
    assert all(r['dist/weight_spread'] == 0. for r in h2) and 'dist/weight_spread' not in h1[0]
    with pytest.raises(UserError, match=r'less than one rollout of all 2 processes \(42 env steps\)'):
        PPOTrainer(CountVecEnv(), CounterValueAgent(), count_cfg(total_steps=21))

def test_progress_bar_switch(monkeypatch):
    "progress_bar=False turns the bar off; True leaves it to the terminal (shown on one)"
    import waypoint_rl.ppo as ppo
    bars = []
    real = ppo.progress
    monkeypatch.setattr(ppo, 'progress', lambda **kw: bars.append(kw) or real(**kw))
    for on in (False, True):
        seed_everything(0); e = CountVecEnv()
        PPOTrainer(e, MLPActorCritic.from_envs(e), count_cfg(total_steps=21)).train(progress_bar=on)
    assert [b['disable'] for b in bars] == [True, None] and bars[0]['total'] == 21

# ---------------------------------------------------------------- pinned details of the bookkeeping
class FakeWriter:
    "a TensorBoard writer that remembers its scalars"
    def __init__(self): self.scalars = []
    def add_scalar(self, k, v, step): self.scalars.append((k, v, step))
    def close(self): pass

def test_logger_mirrors_numbers_to_tensorboard_at_their_step(tmp_path):
    "every number but the step itself (and no flag or text) becomes a TensorBoard scalar at `global_step`"
    lg = JSONLLogger(tmp_path/'a.jsonl', tensorboard=False); lg.writer = FakeWriter()
    lg.log({'global_step': 7, 'charts/episodic_return': -1.5, 'charts/episodes': 3, 'stopped': True, 'name': 'x'})
    assert lg.writer.scalars == [('charts/episodic_return', -1.5, 7), ('charts/episodes', 3, 7)]

def test_legend_goes_on_the_last_panel(tmp_path):
    "with several runs and panels the legend is drawn once, on the rightmost panel"
    recs = [{'global_step': 1, 'charts/episodic_return': 1., 'losses/x': 2.}]
    fig = plot_learning_curve({'a': recs, 'b': recs}, extra=('losses/x',))
    assert [ax.get_legend() is not None for ax in fig.axes] == [False, True]

def test_check_finite_raises_on_a_flag_or_a_bad_weight():
    "`_check_finite` raises when the update flagged a non-finite loss/gradient, or when a weight is NaN"
    from waypoint_rl.utils import Diverged
    e = CountVecEnv(); tr = PPOTrainer(e, MLPActorCritic.from_envs(e), count_cfg())
    tr._check_finite(torch.tensor(False))                                    # all fine: no error
    with pytest.raises(Diverged): tr._check_finite(torch.tensor(True))
    with torch.no_grad(): tr.params[0][0] = float('nan')
    with pytest.raises(Diverged): tr._check_finite(torch.tensor(False))

def test_state_dict_format_version():
    "the trainer's saved state is version 2 of its format (version 1: one process, no env state)"
    e = CountVecEnv(); sd = PPOTrainer(e, MLPActorCritic.from_envs(e), count_cfg()).state_dict()
    assert (sd['format'], sd['version']) == ('waypoint_rl.ppo_trainer', 2)

@pytest.mark.parametrize('minibatches', [1, 2])
def test_kl_early_stop_averages_the_epochs_minibatches(monkeypatch, minibatches):
    "the target-KL test reads the mean approx_kl of the epoch's minibatches (one or two per epoch), not their sum"
    import waypoint_rl.ppo as ppo
    seen, real = [], ppo.all_reduce_
    def spy(t, op='sum'):
        if t.dtype == torch.float64 and op == 'mean': seen.append(t.item())
        return real(t, op)
    monkeypatch.setattr(ppo, 'all_reduce_', spy)
    seed_everything(0); e = CountVecEnv()
    cfg = count_cfg(total_steps=21, num_minibatches=minibatches, update_epochs=2, target_kl=1e9)
    h = ppo_train(e, MLPActorCritic.from_envs(e), cfg, progress=False).history
    assert len(seen) == 2 and seen[1] > 1e-6
    assert math.isclose(sum(seen), 2*h[0]['losses/approx_kl'], rel_tol=1e-6)

def test_every_rank_steps_the_optimizer_on_every_minibatch(monkeypatch):
    "a rank whose minibatch is empty still steps (zero gradients), so the ranks' Adam states stay alike"
    import waypoint_rl.ppo as ppo
    def steps(w):
        monkeypatch.setattr(ppo, 'world', lambda: (0, w))
        seed_everything(0); e = CountVecEnv()
        cfg = count_cfg(total_steps=21*w, num_minibatches=21, update_epochs=1)
        tr = PPOTrainer(e, MLPActorCritic.from_envs(e), cfg)
        tr.train(progress_bar=False)
        return {int(s['step']) for s in tr.optimizer.state_dict()['state'].values()}
    assert steps(2) == {21}                           # 21 minibatches of one transition, 4 empty (the reset steps)
    assert steps(1) == {17}                           # one process: the empty ones are skipped

class RecordingCountEnv(CountEnv):
    def step(self, action): self.actions.append(np.asarray(action).tolist()); return super().step(action)

def test_evaluate_samples_actions_when_not_deterministic():
    "deterministic=False plays the sampled action (here about 0.7 with a tiny std), not its log-probability"
    envs = [RecordingCountEnv(2), RecordingCountEnv(3)]
    for env in envs: env.actions = []
    agent = CounterValueAgent()
    with torch.no_grad(): agent.mu.fill_(0.7); agent.log_std.fill_(-20.)
    evaluate(SyncVectorEnv([lambda env=env: env for env in envs]), agent, n_episodes=2, deterministic=False)
    acts = [a for env in envs for a in env.actions]
    assert len(acts) >= 5 and all(len(a) == 1 and abs(a[0] - 0.7) < 1e-4 for a in acts)

RANK_SCRIPT = '''
import sys, types, torch, torch.distributed as dist
from waypoint_rl.ppo import PPOTrainer
from waypoint_rl.utils import Diverged
rank = int(sys.argv[1])
dist.init_process_group('gloo', init_method='file://' + sys.argv[2], rank=rank, world_size=2)
w = torch.zeros(3)
if rank == 1: w[0] = float('nan')
me = types.SimpleNamespace(params=[w], world=2, iteration=1, divergence_hint='')
try: PPOTrainer._check_finite(me, torch.tensor(False)); print('ok')
except Diverged: print('diverged')
dist.destroy_process_group()
'''

def test_a_bad_weight_on_one_rank_stops_every_rank(tmp_path):
    "two real (gloo) processes: a NaN weight on rank 1 makes both ranks raise `Diverged`, so none waits on the other"
    import os, subprocess, waypoint_rl
    from pathlib import Path
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(Path(waypoint_rl.__file__).parent.parent),
                                                        os.environ.get('PYTHONPATH', '')]), 'OMP_NUM_THREADS': '1'}
    ps = [subprocess.Popen([sys.executable, '-c', RANK_SCRIPT, str(r), str(tmp_path/'store')], env=env,
                           stdout=subprocess.PIPE, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=120)[0].split() for p in ps]
    assert outs == [['diverged'], ['diverged']]
