"Env checks that do not belong in the docs: standard clients, fresh processes, the command line."
import json, subprocess, sys, warnings
from pathlib import Path
import numpy as np, pytest
import gymnasium as gym
import waypoint_rl  # registers waypoint_rl/ToyWaypoint-v0
from waypoint_rl.env import ToyWaypointConfig, ToyWaypointEnv, ToyWaypointVecEnv

BIN = Path(sys.executable).parent

def test_make_after_import_in_fresh_process():
    code = "import gymnasium as gym, waypoint_rl; e = gym.make('waypoint_rl/ToyWaypoint-v0'); o, i = e.reset(seed=0); print(o['front'].shape)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '(64, 64, 3)'

def test_make_vec_uses_batched_env():
    v = gym.make_vec('waypoint_rl/ToyWaypoint-v0', num_envs=3, vectorization_mode='vector_entry_point')
    assert isinstance(v, ToyWaypointVecEnv) and v.num_envs == 3
    o, i = v.reset(seed=0)
    assert i['expert_waypoints'].shape == (3, 8, 2)

def test_sb3_multiinputpolicy_takes_env_unchanged():
    sb3 = pytest.importorskip('stable_baselines3')
    from stable_baselines3.common.env_checker import check_env as sb3_check
    env = ToyWaypointEnv(cameras=('front', 'side_left'), camera_dropout=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sb3_check(env)
    model = sb3.PPO('MultiInputPolicy', env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device='cpu')
    model.learn(64)
    act, _ = model.predict(env.reset(seed=1)[0], deterministic=True)
    assert act.shape == (8, 2)

def test_state_only_env():
    env = ToyWaypointEnv(cameras=())
    o, _ = env.reset(seed=0)
    assert set(o) == {'state'}

def test_wrl_drive_cli(tmp_path):
    r = subprocess.run([str(BIN/'wrl_drive'), '--out-dir', str(tmp_path), '--episodes', '2', '--cameras', 'front'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path/'summary.json').read_text())
    assert s['episodes'] == 2 and s['goal_reach_rate'] == 1.0
    assert (tmp_path/'trajectories.png').stat().st_size > 1000

@pytest.mark.parametrize('args,msg', [(['--cameras', 'front,rear'], "unknown camera 'rear'"),
                                      (['--episodes', '0'], '--episodes'),
                                      (['--dynamics-shift', 'ice'], "unknown preset 'ice'")])
def test_wrl_drive_bad_input(tmp_path, args, msg):
    r = subprocess.run([str(BIN/'wrl_drive'), '--out-dir', str(tmp_path)] + args, capture_output=True, text=True)
    assert r.returncode == 2
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path/'summary.json').exists()

def test_help_for_every_command():
    for cmd in ('wrl_drive', 'wrl_env_bench'):
        r = subprocess.run([str(BIN/cmd), '-h'], capture_output=True, text=True)
        assert r.returncode == 0 and '--' in r.stdout
