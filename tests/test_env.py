"Env checks that do not belong in the docs: standard clients, worlds, fresh processes, the command lines."
import configparser, json, subprocess, sys, warnings
from pathlib import Path
import pytest
import gymnasium as gym
import waypoint_rl  # noqa: F401 (registers waypoint_rl/ToyWaypoint-v0)
from waypoint_rl.env import ToyWaypointEnv, ToyWaypointVecEnv, counter_uniforms

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
    assert [x['N'] for x in rows] == [1, 2, 2, 2] * 2 and 'steps/s' in r.stdout      # single, numpy, device, loop

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


# ---- the config refuses every bad field, naming it (property-based) ----
import dataclasses, inspect, math
import numpy as np
import torch
from hypothesis import given, settings, strategies as st, HealthCheck
from waypoint_rl.env import ToyWaypointConfig, CAMERAS

NAN, INF = float('nan'), float('inf')
NOT_A_NUMBER = st.sampled_from([NAN, INF, -INF, True, False, None, '0.5', [0.5], 10**400])
NEGATIVE = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False) | st.integers(max_value=-1)
NON_POSITIVE = NEGATIVE | st.just(0) | st.just(0.0)
ABOVE_ONE = st.floats(min_value=1.000001, allow_nan=False, allow_infinity=False)
NOT_WHOLE = (st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x))
             | st.sampled_from([True, False, '8', None, NAN, INF, 8.0]))
POSITIVE = NOT_A_NUMBER | NON_POSITIVE
NON_NEGATIVE = NOT_A_NUMBER | NEGATIVE
PROBABILITY = NOT_A_NUMBER | NEGATIVE | ABOVE_ONE
COUNT = NOT_WHOLE | NON_POSITIVE.filter(lambda x: isinstance(x, int))
BAD = dict(
    dt=POSITIVE, wheelbase=POSITIVE, max_steer=POSITIVE | st.floats(min_value=math.pi/2, max_value=1e9),
    max_accel=POSITIVE, max_brake=POSITIVE, max_speed=POSITIVE,
    horizon_steps=COUNT, waypoint_dt=POSITIVE, policy_period=COUNT, ref_speed=POSITIVE | st.floats(14.001, 1e9),
    lookahead_min=POSITIVE, lookahead_time=NON_NEGATIVE, speed_gain=POSITIVE,
    route_length=POSITIVE, route_ds=POSITIVE, max_curvature=NON_NEGATIVE | st.floats(0.6, 1e9),
    knot_spacing=POSITIVE, straight_prob=PROBABILITY, route_waypoint_spacing=POSITIVE | st.floats(1e-6, 7.0),
    waypoint_hit_radius=NON_NEGATIVE, goal_radius=POSITIVE, off_route_distance=POSITIVE,
    init_lateral=NON_NEGATIVE | st.floats(4.0, 1e9), init_heading=NON_NEGATIVE | st.floats(3.1416, 1e9),
    init_speed_min=NON_NEGATIVE | st.floats(8.001, 1e9), init_speed_max=NON_NEGATIVE | st.floats(14.001, 1e9),
    max_episode_steps=COUNT,
    progress_weight=NON_NEGATIVE, goal_bonus=NON_NEGATIVE, time_penalty=NON_NEGATIVE, off_route_penalty=NON_NEGATIVE,
    cameras=st.sampled_from([5, None, 1.5, ('rear',), ('front', 'front'), ('front', 3), [None], {'front': 1}]),
    image_size=COUNT | st.integers(1, 7), meters_per_pixel=POSITIVE, camera_dropout=PROBABILITY,
    dynamics_shift=st.sampled_from(['wet', '', 5, ['shift'], True]),
    steer_gain=POSITIVE, steer_bias=NOT_A_NUMBER | st.floats(0.6001, 1e9) | st.floats(-1e9, -0.6001),
    actuator_lag=NON_NEGATIVE, understeer=NON_NEGATIVE,
    dynamics_randomization=st.sampled_from(['wild', '', 5, ['default'], True]),
)

def test_every_field_has_bad_values():
    assert set(BAD) == {f.name for f in dataclasses.fields(ToyWaypointConfig)}

@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(BAD)).flatmap(lambda f: st.tuples(st.just(f), BAD[f])))
def test_a_bad_field_is_named(field_value):
    field, value = field_value
    with pytest.raises(ValueError, match=f'^ToyWaypointConfig.{field}: '):
        ToyWaypointConfig(**{field: value})

VALID = dict(dt=st.floats(0.02, 0.2), max_speed=st.floats(9.0, 30.0), horizon_steps=st.integers(1, 12),
             policy_period=st.integers(1, 6), max_episode_steps=st.integers(1, 60),
             straight_prob=st.floats(0.0, 1.0), camera_dropout=st.floats(0.0, 1.0),
             cameras=st.lists(st.sampled_from(CAMERAS), max_size=3, unique=True).map(tuple),
             image_size=st.integers(8, 48), meters_per_pixel=st.floats(0.1, 1.0), route_ds=st.floats(0.2, 2.0),
             time_penalty=st.floats(0.0, 5.0), steer_gain=st.floats(0.3, 2.0), steer_bias=st.floats(-0.1, 0.1),
             actuator_lag=st.floats(0.0, 1.0), understeer=st.floats(0.0, 0.1),
             dynamics_randomization=st.sampled_from([None, 'default']))

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional=VALID))
def test_valid_configs_construct_and_drive(kw):
    d = ToyWaypointConfig()
    reach = kw.get('max_speed', d.max_speed)*kw.get('policy_period', d.policy_period)*kw.get('dt', d.dt)
    c = ToyWaypointConfig(**kw, route_waypoint_spacing=max(d.route_waypoint_spacing, 1.1*reach))
    env = ToyWaypointVecEnv(3, c)
    _, info = env.reset(seed=0)
    for _ in range(5):
        obs, r, te, tr, info = env.step(info['expert_waypoints'])
        assert np.isfinite(r).all() and np.isfinite(obs['state']).all() and env.observation_space.contains(obs)

def test_default_config_constructs():
    assert ToyWaypointConfig() == ToyWaypointConfig().replace()


# ---- exact resume through a file, in a fresh process ----
def drive(env, info, t0, steps):
    "Perturbed expert for `steps` steps; a digest of every output, and the last info"
    import hashlib
    h = hashlib.sha256()
    def add(x):
        if isinstance(x, dict): [add(k) or add(x[k]) for k in sorted(x)]
        elif isinstance(x, np.ndarray) and x.dtype == object: [add(v) for v in x]
        elif isinstance(x, (str, type(None))): h.update(repr(x).encode())
        else: a = np.ascontiguousarray(x); h.update(str(a.dtype).encode() + a.tobytes())
    for t in range(t0, t0 + steps):
        a = info['expert_waypoints'] + 0.6*np.sin(0.7*t + np.arange(env.num_envs))[:, None, None]
        out = env.step(a); info = out[4]; [add(x) for x in out]
    return h.hexdigest(), info

CONFIGS = {'state': "dict(cameras=(), dynamics_randomization='default')",
           'cameras': "dict(cameras=('front', 'side_left'), camera_dropout=0.2)"}

@pytest.mark.parametrize('name,copy', [('state', True), ('cameras', False), ('cameras', True)])
def test_state_dict_file_resumes_exactly_in_a_fresh_process(tmp_path, name, copy):
    cfg = eval(CONFIGS[name])
    env = ToyWaypointVecEnv(16, copy=copy, **cfg); _, info = env.reset(seed=5)
    _, info = drive(env, info, 0, 100)
    torch.save(env.state_dict(), tmp_path/'env.pt')
    digest, _ = drive(env, info, 100, 50)
    code = 'import numpy as np\n' + inspect.getsource(drive) + f'''
import torch
from waypoint_rl.env import ToyWaypointVecEnv
env = ToyWaypointVecEnv(16, copy={copy}, **{CONFIGS[name]})
obs, info = env.load_state_dict(torch.load({str(tmp_path/'env.pt')!r}, weights_only=True))
print(drive(env, info, 100, 50)[0])
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == digest

def test_state_dict_is_plain_data():
    sd = ToyWaypointVecEnv(2, dynamics_randomization='default').state_dict()
    def plain(x):
        if isinstance(x, dict): return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, (list, tuple)): return all(plain(v) for v in x)
        return x is None or type(x) in (bool, int, float, str) or isinstance(x, torch.Tensor)   # no numpy scalars
    assert plain(sd)
    env = ToyWaypointVecEnv(2, dynamics_randomization='default'); env.reset(seed=1)
    env.step(np.zeros((2, 8, 2)))
    sd = env.state_dict()
    assert plain(sd) and sd['arrays']['key'].tolist() == [1, 2] and sd['arrays']['episode'].tolist() == [0, 0]
    assert sd['format'] == 'waypoint_rl.env.state/2' and sd['arrays']['pos'].shape == (2, 2)


# ---- faults refused with one line ----
def test_step_before_reset_and_after_the_end():
    from gymnasium.error import ResetNeeded
    env = ToyWaypointEnv(cameras=())
    with pytest.raises(ResetNeeded, match='no episode has started; call reset'): env.step(np.zeros((8, 2)))
    _, info = env.reset(seed=0)
    for _ in range(env.config.max_episode_steps):
        _, _, te, tr, info = env.step(info['expert_waypoints'])
        if te or tr: break
    assert te or tr
    with pytest.raises(ResetNeeded, match='the episode has ended; call reset'): env.step(info['expert_waypoints'])
    env.reset(); env.step(info['expert_waypoints'])
    with pytest.raises(ResetNeeded, match='call reset'): ToyWaypointVecEnv(2).step(np.zeros((2, 8, 2)))

def test_oversized_batch_is_refused_before_allocating():
    with pytest.raises(ValueError, match=r'num_envs=100000000 and image_size=64: the env would hold about \d+'):
        ToyWaypointVecEnv(10**8)
    with pytest.raises(ValueError, match='image_size=200000'):
        ToyWaypointVecEnv(1, image_size=200_000)
    with pytest.raises(ValueError, match='num_envs=1 and image_size=64'):
        ToyWaypointEnv(route_length=1e300)          # a route of absurdly many points: the same check

def test_bad_device_is_refused_naming_it():
    "A device torch cannot name, or CUDA on a machine without it, is one ValueError naming `device`."
    with pytest.raises(ValueError, match="device: not a torch device, got 'tpu9'"): ToyWaypointVecEnv(2, device='tpu9')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: 'cuda': CUDA is not available"):
            ToyWaypointVecEnv(2, device='cuda')

def test_compiled_env_drives_like_the_eager_one():
    "compile=True (torch.compile of the step and of what it reports): the same outcomes, positions within 1 cm"
    cfg = dict(cameras=('front',), camera_dropout=0.2, dynamics_randomization='default')
    eager, comp = ToyWaypointVecEnv(8, **cfg), ToyWaypointVecEnv(8, compile=True, **cfg)
    (oe, ie), (oc, ic) = eager.reset(seed=4), comp.reset(seed=4)
    ended = 0
    for _ in range(40):
        a = ie['expert_waypoints'] + np.float32(0.4)             # off the expert's line: some cars leave the route
        oe, re, te, tre, ie = eager.step(a); oc, rc, tc, trc, ic = comp.step(a)
        assert (te == tc).all() and (tre == trc).all() and (oe['image_valid'] == oc['image_valid']).all()
        np.testing.assert_allclose(ic['position'], ie['position'], atol=0.01)
        np.testing.assert_allclose(rc, re, atol=0.01)
        assert (oe['front'] != oc['front']).mean() < 0.01
        ended += int((te | tre).sum())
    assert ended > 0                                               # restarts were compared too
    b = comp._b                                                    # its episodes' random numbers: the same bits
    for m in (1, 3, 57):
        key, ep = torch.arange(m)*7919 + 11, torch.arange(m) + 2
        assert torch.equal(b._numbers(key, ep), counter_uniforms(key, ep, b._draws))
