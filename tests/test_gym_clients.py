"Standard gymnasium 1.x clients on the toy env: the checker, vector wrappers, and a CleanRL-style PPO loop."
import warnings
import numpy as np
import pytest
import torch
import torch.nn as nn
import gymnasium as gym
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import vector as vw
import waypoint_rl  # noqa: F401 (registers waypoint_rl/ToyWaypoint-v0)
from waypoint_rl.env import ToyWaypointVecEnv

N, STEPS = 8, 300

def envs(**kw)->ToyWaypointVecEnv:
    "A state-only batched env whose episodes end often (short time limit, some cars leave the route)"
    return ToyWaypointVecEnv(N, cameras=(), max_episode_steps=30, **kw)

def actions(info:dict, t:int)->np.ndarray:
    "The expert's waypoints pushed sideways by a different amount per car: some reach the goal, some leave the route"
    return (info['expert_waypoints'] + 3.0*np.sin(0.2*t + np.arange(N))[:, None, None]).astype(np.float32)

def drive(env, steps:int=STEPS, act=actions):
    "Step `env` with `act(info, t)`; yields (t, action, step outputs)"
    _, info = env.reset(seed=0)
    for t in range(steps):
        if isinstance(info, list): info = {'expert_waypoints': np.stack([i['expert_waypoints'] for i in info])}
        a = act(info, t)
        out = env.step(a)
        yield t, a, out
        info = out[4]

@pytest.mark.parametrize('kw', [dict(), dict(cameras=(), dynamics_randomization='default'),
                                dict(cameras=('front', 'side_left'), camera_dropout=0.2)])
def test_check_env_on_gym_make(kw):
    with warnings.catch_warnings():
        warnings.simplefilter('error')          # any checker warning fails the test
        check_env(gym.make('waypoint_rl/ToyWaypoint-v0', **kw).unwrapped)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*is different from the unwrapped version')
        check_env(gym.make('waypoint_rl/ToyWaypoint-v0', **kw))   # through gym.make's wrappers too

def test_record_episode_statistics_matches_final_info():
    env = vw.RecordEpisodeStatistics(gym.make_vec('waypoint_rl/ToyWaypoint-v0', num_envs=N, cameras=(),
                                                  max_episode_steps=30, vectorization_mode='vector_entry_point'))
    ends, why = 0, set()
    for _, _, (_, r, te, tr, info) in drive(env):
        done = te | tr
        if not done.any(): assert 'episode' not in info; continue
        np.testing.assert_array_equal(info['_episode'], done)
        for i in np.flatnonzero(done):
            fi = info['final_info'][i]
            assert info['episode']['r'][i] == pytest.approx(fi['episode_return'], rel=1e-6, abs=1e-4)
            assert info['episode']['l'][i] == fi['episode_length']
            why.add(fi['termination']); ends += 1
    assert ends == len(env.return_queue) == env.episode_count and ends > 3*N
    assert why == {'goal', 'off_route', 'truncated'}

def test_clip_action_is_what_the_env_does():
    raw, env = envs(), vw.ClipAction(envs())
    low, high, clipped = raw.single_action_space.low, raw.single_action_space.high, 0
    raw.reset(seed=0)
    for t, a, (_, r, te, tr, _) in drive(env, act=lambda i, t: 3.0*actions(i, t)):
        clipped += (np.abs(a) > high).any()
        _, r0, te0, tr0, _ = raw.step(np.clip(a, low, high))
        np.testing.assert_array_equal(r, r0); np.testing.assert_array_equal(te | tr, te0 | tr0)
    assert clipped > 10                                          # out-of-space actions did happen

def test_rescale_action_maps_the_unit_box_onto_the_waypoints():
    raw, env = envs(), vw.RescaleAction(envs(), np.float32(-1), np.float32(1))
    low, high = raw.single_action_space.low, raw.single_action_space.high
    raw.reset(seed=0)
    unit = lambda i, t: np.clip(actions(i, t)/high, -1, 1)     # the same actions in [-1, 1]
    for _, a, (_, r, _, _, _) in drive(env, act=unit):
        np.testing.assert_allclose(env.actions(a), low + (a + 1)*(high - low)/2, rtol=1e-5, atol=1e-4)
        _, r0, *_ = raw.step(env.actions(a))
        np.testing.assert_array_equal(r, r0)

def test_normalize_reward_scales_by_the_running_return_std():
    raw, env = envs(), vw.NormalizeReward(envs(), gamma=0.99)
    raw.reset(seed=0)
    for _, a, (_, r, te, tr, _) in drive(env):
        _, r0, *_ = raw.step(a)
        np.testing.assert_allclose(r, r0/np.sqrt(env.return_rms.var + env.epsilon), rtol=1e-6)
        assert np.isfinite(r).all() and (env.accumulated_reward[te | tr] == 0).all()   # new episodes, new returns
    assert env.return_rms.var > 1

def test_dict_info_to_list():
    env = vw.DictInfoToList(envs())
    ends = 0
    for _, _, (_, _, te, tr, infos) in drive(env):
        assert isinstance(infos, list) and len(infos) == N
        for i, d in enumerate(infos):
            assert d['expert_waypoints'].shape == (8, 2) and 'reward_progress' in d
            assert ('final_info' in d) == bool(te[i] or tr[i]) == ('final_obs' in d)
            if 'final_info' in d: ends += 1; assert d['final_info']['termination'] in ('goal', 'off_route', 'truncated')
    assert ends > 3*N

def test_observation_wrappers_need_the_single_env_vectorised():
    "Gymnasium's observation wrappers refuse same-step autoreset; vectorising the single env serves them"
    with pytest.raises(ValueError, match='autoreset_mode'): vw.FlattenObservation(envs())
    env = gym.make_vec('waypoint_rl/ToyWaypoint-v0', num_envs=4, vectorization_mode='sync', cameras=(),
                       max_episode_steps=30, wrappers=[gym.wrappers.FlattenObservation])
    env = vw.RecordEpisodeStatistics(vw.NormalizeObservation(env))
    obs, info = env.reset(seed=0)
    for t in range(120):
        obs, r, te, tr, info = env.step(info['expert_waypoints'] + np.sin(0.2*t + np.arange(4))[:, None, None])
        assert obs.shape == (4, 4) and np.isfinite(obs).all() and np.isfinite(r).all()
    assert len(env.return_queue) >= 8 and abs(float(np.mean(obs))) < 3


# A CleanRL-style PPO for the toy env (written for this project, in the order of CleanRL's ppo_continuous_action.py):
# arguments, env, agent, storage, then one loop of rollout, GAE and clipped-loss minibatch epochs.
def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std); nn.init.constant_(layer.bias, bias_const)
    return layer

class Agent(nn.Module):
    "Gaussian policy and value MLPs on the ego state"
    def __init__(self, obs_dim:int, act_dim:int):
        super().__init__()
        def mlp(out, std): return nn.Sequential(layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
                                                layer_init(nn.Linear(64, 64)), nn.Tanh(),
                                                layer_init(nn.Linear(64, out), std))
        self.critic, self.actor_mean = mlp(1, 1.0), mlp(act_dim, 0.01)
        self.actor_logstd = nn.Parameter(torch.zeros(1, act_dim))

    def get_value(self, x): return self.critic(x)

    def get_action_and_value(self, x, action=None):
        mean = self.actor_mean(x)
        dist = torch.distributions.Normal(mean, self.actor_logstd.expand_as(mean).exp())
        if action is None: action = dist.sample()
        return action, dist.log_prob(action).sum(1), dist.entropy().sum(1), self.critic(x)

def cleanrl_ppo(num_envs=8, num_steps=32, iterations=3, update_epochs=2, num_minibatches=4, learning_rate=3e-4,
                gamma=0.99, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, seed=1):
    torch.manual_seed(seed); np.random.seed(seed)
    envs = vw.RecordEpisodeStatistics(ToyWaypointVecEnv(num_envs, cameras=(), max_episode_steps=12))
    act_shape = envs.single_action_space.shape
    act_dim, obs_dim = int(np.prod(act_shape)), envs.single_observation_space['state'].shape[0]
    agent = Agent(obs_dim, act_dim)
    optimizer = torch.optim.Adam(agent.parameters(), lr=learning_rate, eps=1e-5)
    obs = torch.zeros((num_steps, num_envs, obs_dim)); actions = torch.zeros((num_steps, num_envs, act_dim))
    logprobs, rewards, dones, values = (torch.zeros((num_steps, num_envs)) for _ in range(4))
    batch_size = num_envs*num_steps; minibatch_size = batch_size//num_minibatches
    next_obs, _ = envs.reset(seed=seed)
    next_obs, next_done = torch.tensor(next_obs['state']), torch.zeros(num_envs)
    global_step, episodic_returns, losses = 0, [], []
    for iteration in range(1, iterations + 1):
        optimizer.param_groups[0]['lr'] = (1.0 - (iteration - 1.0)/iterations)*learning_rate   # annealing
        for step in range(num_steps):
            global_step += num_envs
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob
            o, reward, term, trunc, info = envs.step(action.reshape((num_envs,) + act_shape).numpy())
            rewards[step] = torch.tensor(reward).view(-1)
            next_obs, next_done = torch.tensor(o['state']), torch.tensor(term | trunc, dtype=torch.float32)
            if 'episode' in info: episodic_returns += info['episode']['r'][info['_episode']].tolist()
        with torch.no_grad():                                                      # GAE
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages, lastgaelam = torch.zeros_like(rewards), 0
            for t in reversed(range(num_steps)):
                nextnonterminal = 1.0 - (next_done if t == num_steps - 1 else dones[t + 1])
                nextvalues = next_value if t == num_steps - 1 else values[t + 1]
                delta = rewards[t] + gamma*nextvalues*nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + gamma*gae_lambda*nextnonterminal*lastgaelam
            returns = advantages + values
        b_obs, b_actions = obs.reshape(-1, obs_dim), actions.reshape(-1, act_dim)
        b_logprobs, b_adv, b_ret, b_val = (x.reshape(-1) for x in (logprobs, advantages, returns, values))
        b_inds = np.arange(batch_size)
        for epoch in range(update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb = b_inds[start:start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = (b_adv[mb] - b_adv[mb].mean())/(b_adv[mb].std() + 1e-8)
                pg_loss = torch.max(-mb_adv*ratio, -mb_adv*torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)).mean()
                v_loss = 0.5*((newvalue.view(-1) - b_ret[mb])**2).mean()
                loss = pg_loss - ent_coef*entropy.mean() + v_loss*vf_coef
                optimizer.zero_grad(); loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm); optimizer.step()
                losses.append(loss.item())
    return dict(global_step=global_step, losses=losses, episodic_returns=episodic_returns)

def test_cleanrl_style_ppo_runs():
    torch.set_num_threads(1)
    out = cleanrl_ppo()
    assert out['global_step'] == 3*32*8 and len(out['losses']) == 3*2*4
    assert np.isfinite(out['losses']).all()
    assert len(out['episodic_returns']) >= 8 and np.isfinite(out['episodic_returns']).all()
