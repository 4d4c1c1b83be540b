"Worlds end to end: training across a randomisation, a state-aware checkpoint through the public env and wrapper"
import json, os, subprocess, sys
from pathlib import Path
import gymnasium as gym, pytest, torch
import waypoint_rl  # noqa: F401  (registers the gymnasium env)
from waypoint_rl.policy import WaypointNet, WaypointNetConfig, WaypointPolicyTorch, save_sft_checkpoint
from waypoint_rl.ppo_delta import train_ppo_delta
from waypoint_rl import metrics as M

torch.set_num_threads(1)
ENV = dict(os.environ, OMP_NUM_THREADS="1")
BIN = Path(sys.executable).parent

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A tiny SFT model and a tiny residual trained across the default randomisation (state-aware by default)"
    d = tmp_path_factory.mktemp('worlds')
    torch.manual_seed(0); save_sft_checkpoint(d/'sft.pt', WaypointNet(WaypointNetConfig(channels=[8, 8], z_dim=16,
                                                                                       hidden=32)))
    r = train_ppo_delta(d/'sft.pt', d/'rl', total_steps=256, num_envs=4, num_steps=16, num_minibatches=2,
                        show_progress=False)
    return d, r

def test_training_world_is_recorded(run):
    d, r = run
    ck = torch.load(r['final'], weights_only=True)
    assert ck['state_dicts']['run']['dynamics'] == 'default' and ck['state_dicts']['run']['delta_state'] is True
    assert ck['model_config']['delta']['state_dim'] == 3

def test_public_env_and_wrapper(run):
    "gym.make in an explicit world, one car at a time, the wrapper fed obs['state'] as the contract says"
    d, r = run
    pol = WaypointPolicyTorch(checkpoint=str(r['final']), device='cpu')
    env = gym.make('waypoint_rl/ToyWaypoint-v0', steer_gain=0.85, steer_bias=-0.02, actuator_lag=0.15,
                   understeer=0.02)
    obs, info = env.reset(seed=100_000); pol.reset()
    assert info['steer_gain'] == pytest.approx(0.85) and 'steer_gain' not in obs
    done, steps = False, 0
    while not done:
        wp = pol({'front': obs['front'][None]}, image_valid={'front': obs['image_valid'][:1].astype(bool)},
                 state=obs['state'][None])[0].numpy()
        obs, _, term, trunc, info = env.step(wp); done = term or trunc; steps += 1
    assert steps >= 1 and info['termination'] in ('goal', 'off_route', 'truncated')
    with pytest.raises(Exception, match=r"pass state=obs\['state'\]"):
        pol({'front': obs['front'][None]})

def test_matrix_checks_and_cli_world(run, tmp_path):
    d, r = run
    mx = M.world_matrix({'SFT': d/'sft.pt', 'SFT + RL delta': r['final'], 'expert': M.EXPERT},
                        {'nominal': 'nominal', 'shift': 'shift', 'x': 'gain=0.9,understeer=0.02'}, n_episodes=3,
                        show_progress=False)
    assert set(M.world_checks(mx)) == {'nominal', 'shift', 'x'}
    assert mx['expert']['nominal']['n_goal_episodes'] == 3
    out = tmp_path/'p.json'
    p = subprocess.run([str(BIN/'wrl_predict'), '--checkpoint', str(r['final']), '--eval-data', '',
                        '--closed-loop-episodes', '2', '--dynamics', 'gain=0.85,lag=0.15', '--output', str(out),
                        '--device', 'cpu'], capture_output=True, text=True, env=ENV, timeout=240)
    assert p.returncode == 0, p.stderr
    meta = json.loads(out.read_text())['meta']['closed_loop']
    assert (meta['env_config']['steer_gain'], meta['env_config']['actuator_lag']) == (0.85, 0.15)

@pytest.mark.parametrize('args, msg', [(['--dynamics', 'grip=2'], 'dynamics (--dynamics)'),
                                       (['--dynamics-shift', 'ice'], "unknown preset 'ice'")])
def test_bad_world_is_one_line(run, tmp_path, args, msg):
    d, _ = run
    p = subprocess.run([str(BIN/'wrl_ppo'), '--sft-model', str(d/'sft.pt'), '--out-dir', str(tmp_path/'x'), *args],
                       capture_output=True, text=True, env=ENV, timeout=240)
    assert p.returncode == 2 and p.stderr.count('\n') == 1 and msg in p.stderr, p.stderr
    assert not (tmp_path/'x').exists()
