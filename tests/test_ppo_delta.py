"Tests of the residual-delta PPO (waypoint_rl.ppo_delta) outside the docs: the original command, resume, error exits"
import os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from hypothesis import given, settings, strategies as st
from waypoint_rl.ppo_delta import (ResidualDeltaAgent, PPOConfig, make_residual_trainer, residual_env_config,
                                   train_ppo_delta, read_jsonl, list_checkpoints, save_agent_checkpoint, wrl_ppo,
                                   _resume_from)
from waypoint_rl.policy import (WaypointNet, WaypointNetConfig, WaypointPolicyTorch, save_sft_checkpoint,
                                load_checkpoint)
from waypoint_rl.policy import CheckpointError
from waypoint_rl.env import ToyWaypointVecEnv, ToyWaypointConfig
from waypoint_rl.episodes import TOY_ENV

torch.set_num_threads(1)
ENV = dict(os.environ, OMP_NUM_THREADS="1")
BIN = Path(sys.executable).parent
TINY = dict(channels=[8, 8], z_dim=16, hidden=32)
SMALL = ['--num-envs', '4', '--num-steps', '16']

def tiny_net(seed=0):
    torch.manual_seed(seed); return WaypointNet(WaypointNetConfig(**TINY))

@pytest.fixture
def sft(tmp_path):
    p = tmp_path/'out'/'sft_waypoint_bc_torch_v0'/'model.pt'
    save_sft_checkpoint(p, tiny_net()); return p

def run(args, cwd, module=False):
    cmd = [sys.executable, '-m', 'waypoint_rl.ppo_delta', *args] if module else [str(BIN/'wrl_ppo'), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=240)

# ---------------------------------------------------------------- the original module's command
def test_the_original_modules_command_as_written(sft, tmp_path):
    "the original module's exact command, on a tiny SFT model (its CNN is cheap, so 1000 episodes take seconds)"
    r = run(['--sft-model', 'out/sft_waypoint_bc_torch_v0/model.pt', '--out-dir', 'out/rl_delta_waypoint_v0',
             '--episodes', '1000'], tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path/'out'/'rl_delta_waypoint_v0'
    names = {p.name for p in out.iterdir()}
    assert {'final.pt', 'train_log.jsonl', 'learning_curve.png'} <= names and list_checkpoints(out)
    recs = read_jsonl(out/'train_log.jsonl')
    assert recs[-1]['charts/total_episodes'] >= 1000 and recs[-2]['charts/total_episodes'] < 1000
    for k in ('charts/episodic_return', 'charts/SPS', 'losses/approx_kl', 'losses/clipfrac', 'charts/goal_rate'):
        assert k in recs[-1]
    ck = torch.load(out/'final.pt', weights_only=True)                      # plain data only
    assert ck['kind'] == 'delta' and ck['step'] == recs[-1]['global_step']
    assert 'wrote' in r.stdout

def test_python_m_and_tiny_budget(sft, tmp_path):
    r = run(['--sft-model', str(sft), '--out-dir', 'rl', '--total-steps', '128', *SMALL, '--checkpoint-every', '64'],
            tmp_path, module=True)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in list_checkpoints(tmp_path/'rl')] == ['checkpoint_64.pt', 'checkpoint_128.pt']

def test_help_documents_every_flag(tmp_path):
    r = run(['-h'], tmp_path)
    assert r.returncode == 0
    for f in ('--sft-model', '--out-dir', '--episodes', '--total-steps', '--num-envs', '--seed', '--device',
              '--dynamics-shift',
              '--checkpoint-every', '--resume', '--overwrite', '--max-delta', '--threads', '--lr', '--max-seconds'):
        assert f in r.stdout, f

@pytest.fixture
def bad_inputs(tmp_path, monkeypatch):
    save_sft_checkpoint(tmp_path/'sft.pt', tiny_net())
    (tmp_path/'notes.txt').write_text('hello')
    save_agent_checkpoint(tmp_path/'delta.pt', ResidualDeltaAgent(tiny_net()))
    monkeypatch.chdir(tmp_path)
    return tmp_path

@pytest.mark.parametrize('args,msg', [
    ([], '--sft-model is required'),
    (['--sft-model', 'nope.pt'], '--sft-model nope.pt: file not found'),
    (['--sft-model', 'notes.txt'], '--sft-model: notes.txt: '),
    (['--sft-model', 'delta.pt'], "is a 'delta' checkpoint"),
    (['--sft-model', 'sft.pt', '--num-envs', '0'], 'num_envs (--num-envs) must be >= 1'),
    (['--sft-model', 'sft.pt', '--episodes', '0'], 'episodes (--episodes): must be >= 1'),
    (['--sft-model', 'sft.pt', '--total-steps', '10'], 'is less than one rollout'),
    (['--sft-model', 'sft.pt', '--dynamics-shift', 'ice'], "unknown preset 'ice'"),
    (['--sft-model', 'sft.pt', '--device', 'tpu'], "--device"),
    (['--sft-model', 'sft.pt', '--max-delta', '-1'], "max_delta (--max-delta): must be a finite number > 0"),
    (['--sft-model', 'sft.pt', '--init-std', '0'], "init_std (--init-std): must be a finite number > 0"),
    (['--sft-model', 'sft.pt', '--init-std', 'inf'], "init_std (--init-std): must be a finite number > 0"),
    (['--sft-model', 'sft.pt', '--lr', '0'], "lr (--lr) must be a finite number > 0"),
    (['--sft-model', 'sft.pt', '--lr', 'inf'], "lr (--lr) must be a finite number > 0"),
    (['--sft-model', 'sft.pt', '--reward-scale', 'inf'], "reward_scale (--reward-scale) must be a finite number > 0"),
    (['--sft-model', 'sft.pt', '--seed', '-1'], "seed (--seed) must be an integer >= 0"),
    (['--sft-model', 'sft.pt', '--seed', '-5'], "seed (--seed) must be an integer >= 0"),
    (['--sft-model', 'sft.pt', '--threads', '-1'], "threads (--threads): must be >= 0"),
    (['--sft-model', 'sft.pt', '--resume'], '--resume: no checkpoint_<step>.pt'),
])
def test_bad_input_is_one_line_exit_2(bad_inputs, capsys, args, msg):
    with pytest.raises(SystemExit) as e: wrl_ppo(args + ['--out-dir', 'rl'])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith('error: ') and '\n' not in err and msg in err, err
    assert not (bad_inputs/'rl'/'final.pt').exists()

def test_bad_input_exit_code_of_the_console_script(bad_inputs):
    r = run(['--sft-model', 'delta.pt'], bad_inputs)
    assert r.returncode == 2 and r.stderr.count('\n') == 1, r.stderr
    assert r.stderr.strip().startswith('error: --sft-model delta.pt'), r.stderr

# ---------------------------------------------------------------- the agent
def test_zero_init_mean_is_exactly_sft(sft):
    env = ToyWaypointVecEnv(5, ToyWaypointConfig(), copy=False)
    obs, _ = env.reset(seed=3)
    for _ in range(3): obs, *_ = env.step(np.tile(np.linspace(2, 16, 8)[:, None]*[1, 0.05], (5, 1, 1)))
    agent = ResidualDeltaAgent(WaypointPolicyTorch(checkpoint=str(sft), device='cpu').net)
    f = agent.encode(obs)
    pol = WaypointPolicyTorch(checkpoint=str(sft), device='cpu')
    ref = pol({'front': obs['front']}, image_valid={'front': obs['image_valid'][:, 0]})
    assert torch.equal(torch.as_tensor(agent.env_action(agent.deterministic_action(f), f)), ref)

@settings(max_examples=25, deadline=None)
@given(st.floats(0.1, 20), st.floats(-100, 100))
def test_env_action_is_bounded(max_delta, value):
    agent = ResidualDeltaAgent(tiny_net(), max_delta=max_delta, action_low=np.full((8, 2), -30.),
                               action_high=np.full((8, 2), 30.))
    sft = torch.linspace(-40, 40, 16).view(1, 8, 2)
    w = agent.env_action(torch.full((1, 16), value), {'z': torch.zeros(1, 16), 'sft': sft})
    d = w - sft
    assert isinstance(w, torch.Tensor) and (w.abs() <= 30).all()
    assert ((d.abs() <= max_delta + 1e-5) | (w.abs() == 30)).all()

# ---------------------------------------------------------------- training
def test_frozen_sft_and_one_encoder_call_per_observation():
    net = tiny_net(); sd0 = {k: v.clone() for k, v in net.state_dict().items()}
    sizes, in_update = [], [False]
    def hook(mod, args, out): sizes.append((in_update[0], args[0].shape[0]))
    cfg = PPOConfig(num_envs=5, num_steps=10, total_steps=150, num_minibatches=3, update_epochs=4, seed=2, device='cpu')
    tr = make_residual_trainer(net, cfg, residual_env_config(net).replace(max_episode_steps=4))
    trunc = []
    step = tr.envs.step
    def counting(a):
        o, r, te, tru, i = step(a)
        if (tru & ~te).any(): trunc.append(int((tru & ~te).sum()))
        return o, r, te, tru, i
    tr.envs.step = counting
    upd = tr.update
    def flagged(*a):
        in_update[0] = True
        try: return upd(*a)
        finally: in_update[0] = False
    tr.update = flagged
    h = tr.agent.sft.encoder.conv.register_forward_hook(hook)
    try: tr.train(progress_bar=False)
    finally: h.remove()
    assert not any(u for u, _ in sizes)
    assert trunc and sorted(b for _, b in sizes) == sorted([5]*(3*10 + 1) + trunc)
    assert all(torch.equal(v, sd0[k]) for k, v in net.state_dict().items())
    assert not torch.equal(tr.agent.delta.net[-1].weight, torch.zeros_like(tr.agent.delta.net[-1].weight))

def test_resume_restores_step_and_optimizer(sft, tmp_path):
    kw = dict(total_steps=256, num_envs=4, num_steps=16, num_minibatches=4, checkpoint_every=0, seed=4,
              show_progress=False)
    a = train_ppo_delta(sft, tmp_path/'r', callback=lambda t, rec: t.iteration == 2, **kw)
    assert a['global_step'] == 128
    live = a['agent']
    ck = load_checkpoint(tmp_path/'r'/'checkpoint_128.pt', 'delta')
    net = WaypointPolicyTorch(checkpoint=str(sft), device='cpu').net
    tr = make_residual_trainer(net, PPOConfig(num_envs=4, num_steps=16, total_steps=256, num_minibatches=4, seed=4,
                                              device='cpu'),
                               residual_env_config(net), delta_l2=0.02, state=True)   # the defaults
    _resume_from(tmp_path/'r'/'checkpoint_128.pt', tr.agent, tr, ck['state_dicts']['run'],
                 tmp_path/'r'/'train_log.jsonl')
    assert (tr.iteration, tr.global_step) == (2, 128)
    for p, q in zip(live.parameters(), tr.agent.parameters()): assert torch.equal(p, q)
    s1 = ck['state_dicts']['trainer']['optimizer']['state']; s2 = tr.optimizer.state_dict()['state']
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k][n], s2[k][n]) for k in s1 for n in ('step', 'exp_avg', 'exp_avg_sq'))
    b = train_ppo_delta(sft, tmp_path/'r', resume=True, **kw)
    assert [r['iteration'] for r in b['history']] == [1, 2, 3, 4]
    assert [r['global_step'] for r in b['history']] == [64, 128, 192, 256]
    assert b['global_step'] == 256 and load_checkpoint(b['final'])['state_dicts']['trainer']['iteration'] == 4
    # the resumed optimizer continued from the saved moments: 2 more iterations of 4 epochs x 4 minibatches,
    # 32 -> 64 Adam steps
    assert {int(v['step']) for v in s1.values()} == {32}
    final_opt = load_checkpoint(b['final'])['state_dicts']['trainer']['optimizer']
    assert {int(v['step']) for v in final_opt['state'].values()} == {64}

def test_threads_restored_and_checkpoint_policy(sft, tmp_path):
    torch.set_num_threads(1); before = torch.get_num_threads()
    r = train_ppo_delta(sft, tmp_path/'t', total_steps=64, num_envs=4, num_steps=16, num_minibatches=2, threads=2,
                        show_progress=False)
    assert torch.get_num_threads() == before
    pol = WaypointPolicyTorch(checkpoint=str(r['final']), device='cpu')
    obs, _ = ToyWaypointVecEnv(3, ToyWaypointConfig(dynamics_shift='shift'), copy=False).reset(seed=7)
    p = pol.parts({'front': obs['front']}, state=obs['state'])
    f = r['agent'].encode(obs)
    a = r['agent']
    torch.testing.assert_close(p['waypoints'], torch.as_tensor(a.env_action(a.deterministic_action(f), f)))
    torch.testing.assert_close(p['delta'], r['agent'].delta(f['z'], f['state']).detach())

# ---------------------------------------------------------------- run folder, budget, resume, command output
def test_list_checkpoints_takes_only_step_names(tmp_path):
    "a copy such as checkpoint_128_old.pt or checkpoint_best.pt is not a step of the run (resume takes the last step)"
    for n in ('checkpoint_128.pt', 'checkpoint_64.pt', 'checkpoint_best.pt', 'checkpoint_128_old.pt',
              'checkpoint_.pt', 'final.pt'):
        (tmp_path/n).write_bytes(b'')
    assert [p.name for p in list_checkpoints(tmp_path)] == ['checkpoint_64.pt', 'checkpoint_128.pt']

TINY_RUN = dict(num_envs=4, num_steps=16, num_minibatches=2, device='cpu', show_progress=False)

def test_one_episode_is_a_valid_budget(sft, tmp_path):
    r = train_ppo_delta(sft, tmp_path/'e', episodes=1, **TINY_RUN)
    assert r['episodes'] >= 1 and all(h['charts/total_episodes'] < 1 for h in r['history'][:-1])
    assert load_checkpoint(r['final'])['state_dicts']['run']['episodes'] == 1

def test_resume_needs_training_state(tmp_path):
    "a checkpoint without the trainer's state (or without the run's settings) cannot be resumed"
    agent = ResidualDeltaAgent(tiny_net())
    run = dict(env=TOY_ENV, num_envs=4, num_steps=16, max_delta=10.0, hidden=64, dynamics='default', delta_state=False)
    save_agent_checkpoint(tmp_path/'checkpoint_64.pt', agent, run=run)
    with pytest.raises(CheckpointError, match='has no training state to resume'):
        _resume_from(tmp_path/'checkpoint_64.pt', agent, None, run, tmp_path/'train_log.jsonl')

@pytest.mark.parametrize('log', ['empty', 'missing'])
def test_resume_restores_the_log_line_of_its_checkpoint(sft, tmp_path, log):
    "a run killed after writing its checkpoint but before writing that iteration's log line resumes with a whole log"
    kw = dict(total_steps=128, checkpoint_every=0, seed=3, **TINY_RUN)
    r1 = train_ppo_delta(sft, tmp_path/'k', callback=lambda t, rec: t.iteration == 1, **kw)
    assert [p.name for p in r1['checkpoints']] == ['checkpoint_64.pt']
    if log == 'empty': (tmp_path/'k'/'train_log.jsonl').write_text('')
    else: (tmp_path/'k'/'train_log.jsonl').unlink()
    r2 = train_ppo_delta(sft, tmp_path/'k', resume=True, **kw)
    assert [h['iteration'] for h in r2['history']] == [1, 2]
    assert r2['history'][0] == r1['history'][0]

def test_checkpoint_every_not_a_multiple_of_the_rollout(sft, tmp_path):
    "a checkpoint after the first iteration that passes each multiple of checkpoint_every; the last one at the end"
    r = train_ppo_delta(sft, tmp_path/'c', total_steps=256, checkpoint_every=96, **TINY_RUN)
    assert [p.name for p in r['checkpoints']] == ['checkpoint_128.pt', 'checkpoint_192.pt', 'checkpoint_256.pt']

def test_threads_default_is_one_on_cpu(sft, tmp_path):
    torch.set_num_threads(2)
    try:
        seen = []
        train_ppo_delta(sft, tmp_path/'t', total_steps=64, callback=lambda t, rec: seen.append(torch.get_num_threads()),
                        **TINY_RUN)
        assert seen == [1] and torch.get_num_threads() == 2                 # one thread in the run, then restored
    finally: torch.set_num_threads(1)

@pytest.mark.parametrize('show', [False, None])
def test_progress_bar_follows_show_progress(sft, tmp_path, monkeypatch, capsys, show):
    monkeypatch.setenv('WRL_PROGRESS', '1')                               # a progress bar, as on a terminal
    train_ppo_delta(sft, tmp_path/'p', total_steps=64, **{**TINY_RUN, 'show_progress': show})
    assert ('ppo' in capsys.readouterr().err) == (show is not False)

def test_summary_of_a_one_iteration_run(sft, tmp_path, capsys):
    "the command's summary reports the speed of the last iteration, also when there was only one"
    wrl_ppo(['--sft-model', str(sft), '--out-dir', str(tmp_path/'one'), '--total-steps', '64', *SMALL,
             '--device', 'cpu'])
    out = capsys.readouterr().out
    recs = read_jsonl(tmp_path/'one'/'train_log.jsonl')
    assert len(recs) == 1 and f"64 env steps, {recs[0]['charts/total_episodes']} training episodes" in out
    assert f"({recs[0]['charts/SPS']:.0f} steps/s)" in out

def test_agent_and_trainer_defaults():
    "The residual agent's documented defaults: a ±10 m bound, 64-unit heads, no L2 pull; the command's rollout shape"
    import inspect
    from waypoint_rl.ppo_delta import train_ppo_delta
    agent = ResidualDeltaAgent(tiny_net())
    assert agent.delta.max_delta == 10.0 and agent.delta_l2 == 0.0
    assert [m.out_features for m in agent.delta.modules() if isinstance(m, torch.nn.Linear)][:2] == [64, 64]
    tr = make_residual_trainer(tiny_net(), PPOConfig(num_envs=2, num_steps=4, num_minibatches=1),
                               residual_env_config(tiny_net()))
    assert tr.agent.delta.max_delta == 10.0 and tr.agent.delta_l2 == 0.0
    assert [m.out_features for m in tr.agent.delta.modules() if isinstance(m, torch.nn.Linear)][:2] == [64, 64]
    d = {k: p.default for k, p in inspect.signature(train_ppo_delta).parameters.items()}
    assert (d['num_envs'], d['num_steps'], d['ent_coef']) == (64, 64, 0.0)

def test_checkpoint_metrics_drop_the_chart_prefix():
    "A checkpoint's metrics are the record's numbers under their short names; missing or None ones are left out"
    from waypoint_rl.ppo_delta import _metrics
    rec = {'global_step': 128, 'iteration': 2, 'charts/total_episodes': 5, 'charts/episodic_return': 3.5,
           'charts/goal_rate': None, 'losses/value_loss': 1.0}
    assert _metrics(rec) == dict(global_step=128, iteration=2, total_episodes=5, episodic_return=3.5)

def test_out_dir_that_is_a_file_is_refused(tmp_path):
    "--out-dir naming a file is a one-line error naming it, before anything is written"
    from waypoint_rl.ppo_delta import _prepare_out
    from waypoint_rl.utils import UserError
    f = tmp_path/'run'; f.write_text('x')
    with pytest.raises(UserError, match='exists and is not a folder'): _prepare_out(f, False, False)
    assert _prepare_out(tmp_path/'new', False, False) is None

def test_episode_outcomes_of_a_same_step_vector_env():
    "With gymnasium's same-step autoreset the ended episodes' outcomes come from `final_info`, not the new episode's"
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode
    from waypoint_rl.env import ToyWaypointEnv
    from waypoint_rl.ppo_delta import EpisodeOutcomes
    venv = gym.vector.SyncVectorEnv([lambda: ToyWaypointEnv(cameras=()) for _ in range(3)],
                                    autoreset_mode=AutoresetMode.SAME_STEP)
    envs = EpisodeOutcomes(venv)
    _, info = envs.reset(seed=0)
    goals = ends = 0
    while ends < 3:
        _, _, term, trunc, info = envs.step(info['expert_waypoints'])
        for i in np.flatnonzero(term | trunc):
            ends += 1; goals += bool(info['final_info']['is_success'][i])
    assert goals > 0
    rates = envs.pop()
    assert rates['goal_rate'] == pytest.approx(goals/ends) and envs.pop() == {}
