"Env checks that do not belong in the docs: standard clients, worlds, fresh processes, the command lines."
import configparser, json, subprocess, sys, warnings
from pathlib import Path
import pytest
import gymnasium as gym
import waypoint_rl  # noqa: F401 (registers waypoint_rl/ToyWaypoint-v0)
from waypoint_rl.env import ToyWaypointEnv, ToyWaypointVecEnv

BIN = Path(sys.executable).parent

def test_make_after_import_in_fresh_process():
    code = ("import gymnasium as gym, waypoint_rl; e = gym.make('waypoint_rl/ToyWaypoint-v0'); o, i = e.reset(seed=0);"
            "print(o['front'].shape)")
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

def test_make_with_world_fields():
    env = gym.make('waypoint_rl/ToyWaypoint-v0', steer_gain=0.85, actuator_lag=0.15)
    _, info = env.reset(seed=0)
    assert info['steer_gain'] == 0.85 and info['actuator_lag'] == 0.15
    env = gym.make('waypoint_rl/ToyWaypoint-v0', dynamics_randomization='default')
    worlds = [env.reset(seed=s)[1]['steer_gain'] for s in range(5)]
    assert len(set(worlds)) >= 3 and all(0.8 <= w < 1.1 for w in worlds)   # a fifth are the nominal car (1.0)
    with pytest.raises(ValueError, match='ToyWaypointConfig.steer_gain'):
        gym.make('waypoint_rl/ToyWaypoint-v0', steer_gain=0)

def test_worlds_are_the_same_in_a_fresh_process():
    code = ("import waypoint_rl.env as e; v = e.ToyWaypointVecEnv(3, cameras=(), dynamics_randomization='default');"
            "print(v.reset(seed=11)[1]['understeer'].tolist())")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    v = ToyWaypointVecEnv(3, cameras=(), dynamics_randomization='default')
    assert json.loads(out) == v.reset(seed=11)[1]['understeer'].tolist()

def test_wrl_env_bench_cli(tmp_path):
    r = subprocess.run([str(BIN/'wrl_env_bench'), '--sizes', '2', '--repeats', '1', '--seconds', '0.01',
                        '--output', str(tmp_path/'b.json')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path/'b.json').read_text())
    assert [x['N'] for x in rows] == [1, 2, 2] * 2 and 'steps/s' in r.stdout

@pytest.mark.parametrize('args,msg', [(['--sizes', '1,x'], 'sizes (--sizes): must be integers >= 1'),
                                      (['--repeats', '0'], 'repeats (--repeats): must be >= 1')])
def test_wrl_env_bench_bad_input(args, msg):
    r = subprocess.run([str(BIN/'wrl_env_bench')] + args, capture_output=True, text=True)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1

def _console_scripts()->dict:
    "name -> 'module:function' of every console script in settings.ini"
    cfg = configparser.ConfigParser(interpolation=None); cfg.read(Path(__file__).parents[1]/'settings.ini')
    lines = cfg['DEFAULT']['console_scripts'].split()
    return dict(x.split('=', 1) for x in lines)

def test_help_for_every_command():
    "Every console script of the env and episodes modules explains its flags"
    mine = ('waypoint_rl.env', 'waypoint_rl.episodes')
    scripts = {k: v for k, v in _console_scripts().items() if v.split(':')[0] in mine}
    assert scripts['wrl_drive'] == 'waypoint_rl.episodes:wrl_drive' and 'wrl_env_bench' in scripts
    for cmd in scripts:
        r = subprocess.run([str(BIN/cmd), '-h'], capture_output=True, text=True)
        assert r.returncode == 0 and '--' in r.stdout, (cmd, r.stderr)
