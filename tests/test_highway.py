"""highway-env's racetrack behind the waypoint interface: the env on its own, through gymnasium's registry and vector
envs, and the commands with `--env` (expert episodes, residual PPO, closed-loop predictions). Skipped without
highway-env (`pip install waypoint_rl[highway]`)."""
import json
import numpy as np, pytest, torch
import gymnasium as gym

pytest.importorskip('highway_env')

import waypoint_rl  # noqa: F401 (registers the env ids)
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from waypoint_rl.utils import UserError
from waypoint_rl.rollout import rollout
from waypoint_rl.highway import HighwayWaypointConfig, HighwayWaypointEnv
from waypoint_rl.episodes import load_episodes, vec_env, wrl_episodes
from waypoint_rl.sft import train_sft
from waypoint_rl.ppo_delta import train_ppo_delta, wrl_ppo
from waypoint_rl.metrics import read_predictions, wrl_predict

ID = 'waypoint_rl/HighwayWaypoint-v0'

def expert_episode(env, seed):
    "Drive one episode with the expert's waypoints: (observations, infos)"
    obs, info = env.reset(seed=seed); obss, infos = [obs], [info]
    while True:
        obs, r, term, trunc, info = env.step(info['expert_waypoints'])
        obss.append(obs); infos.append(info)
        if term or trunc: return obss, infos

def test_check_env():
    check_env(gym.make(ID).unwrapped, skip_render_check=True)
    check_env(gym.make(ID, cameras=('front', 'side_left'), image_size=32, horizon_steps=5).unwrapped)

def test_seeded_reproducibility():
    a, b = HighwayWaypointEnv(), HighwayWaypointEnv()
    oa, ia = expert_episode(a, 11)
    expert_episode(b, 3)                                  # another episode first: nothing carries over
    ob, ib = expert_episode(b, 11)
    assert len(oa) == len(ob)
    for x, y in zip(oa, ob):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert [i['progress'] for i in ia] == [i['progress'] for i in ib]
    oc, _ = expert_episode(a, 12)
    assert not np.array_equal(oa[0]['front'], oc[0]['front'])

def test_the_expert_follows_the_lane():
    env = HighwayWaypointEnv()
    for seed in range(8):
        obs, infos = expert_episode(env, seed)
        last = infos[-1]
        assert last['termination'] == 'goal' and last['is_success'] and not last['off_route'], (seed, last)
        assert last['progress'] >= env.config.route_length
        assert max(abs(i['lateral_offset']) for i in infos[3:]) < 1.0
        assert last['episode_length'] == len(infos) - 1

def test_standing_still_is_truncated_and_bad_actions_refused():
    env = HighwayWaypointEnv(max_episode_steps=4)
    env.reset(seed=0)
    for _ in range(4): obs, r, term, trunc, info = env.step(np.zeros((8, 2)))
    assert trunc and not term and info['termination'] == 'truncated'
    with pytest.raises(gym.error.ResetNeeded): env.step(np.zeros((8, 2)))
    env.reset(seed=1)
    with pytest.raises(ValueError, match='shape'): env.step(np.zeros((3, 2)))
    with pytest.raises(ValueError, match='cameras'): HighwayWaypointConfig(cameras=('roof',))

def test_steering_off_the_lane_ends_off_route():
    env = HighwayWaypointEnv()
    obs, info = env.reset(seed=2)
    left = np.stack([np.arange(1, 9)*4.0, np.full(8, 12.0)], -1)          # waypoints far to the left
    for _ in range(20):
        obs, r, term, trunc, info = env.step(left)
        if term or trunc: break
    assert term and info['off_route'] and info['termination'] == 'off_route' and r < 0

def test_the_driver_on_gymnasiums_async_vector_env():
    "`rollout` drives gymnasium's AsyncVectorEnv (as `vec_env` makes it): episode j on seed + j, as on its own"
    envs = vec_env(2, HighwayWaypointConfig())
    assert isinstance(envs.env, gym.vector.AsyncVectorEnv)
    assert envs.metadata['autoreset_mode'] == AutoresetMode.SAME_STEP
    try: recs = rollout(envs, lambda obs, info: info['expert_waypoints'], 3, seed=20, show_progress=False)
    finally: envs.close()
    env = HighwayWaypointEnv()
    for j, r in enumerate(recs):
        _, infos = expert_episode(env, 20 + j)
        assert (r['seed'], r['length'], r['termination']) == (20 + j, len(infos) - 1, 'goal')
        assert r['info']['episode_return'] == pytest.approx(infos[-1]['episode_return'])

@pytest.fixture(scope='module')
def sft_model(tmp_path_factory):
    "Two expert episodes of the racetrack and a tiny SFT model trained on them"
    d = tmp_path_factory.mktemp('hw')
    assert wrl_episodes(['--env', ID, '--out-dir', str(d/'episodes'), '--episodes', '2', '--num-envs', '2']) is None
    train_sft(str(d/'episodes'/'*.json'), out_dir=d/'sft', batch_size=8, num_steps=3, threads=1, val_frac=0.5,
              show_progress=False)
    return d

def test_wrl_episodes_env(sft_model):
    files = sorted((sft_model/'episodes').glob('*.json'))
    assert [f.name for f in files] == ['highway_000000.json', 'highway_000001.json']
    d = json.loads(files[0].read_text())
    assert (d['domain'], d['env'], d['cameras']) == ('highway_racetrack', ID, ['front'])
    assert d['waypoint_spec'] == {'horizon_steps': 8, 'dt': 0.5, 'frame': 'ego', 'units': 'm'}
    assert d['outcome']['goal_reached'] and d['env_config']['route_length'] == 150.0
    eps = load_episodes(str(sft_model/'episodes'/'*.json'))
    assert len(eps[0].frames) == d['outcome']['length']
    with pytest.raises(UserError, match=r'camera_dropout \(--camera-dropout\): only the toy env'):
        wrl_episodes.func(env=ID, out_dir=str(sft_model/'x'), camera_dropout=0.2)
    with pytest.raises(UserError, match='image_size'):
        wrl_episodes.func(env=ID, out_dir=str(sft_model/'x'), image_size=4)

def test_wrl_ppo_env(sft_model):
    out = sft_model/'ppo'
    assert wrl_ppo(['--sft-model', str(sft_model/'sft'/'model.pt'), '--out-dir', str(out), '--env', ID,
                    '--num-envs', '2', '--num-steps', '8', '--total-steps', '32', '--num-minibatches', '2',
                    '--device', 'cpu']) is None
    log = [json.loads(l) for l in (out/'train_log.jsonl').read_text().splitlines()]
    assert [r['global_step'] for r in log] == [16, 32]
    ck = torch.load(out/'final.pt', weights_only=True)
    assert ck['state_dicts']['run']['env'] == ID
    # resumed: the training state continues, the episodes start afresh (the env cannot save its state)
    r = train_ppo_delta(sft_model/'sft'/'model.pt', out, total_steps=48, num_envs=2, num_steps=8,
                        num_minibatches=2, env=ID, device='cpu', resume=True, show_progress=False)
    assert r['global_step'] == 48
    with pytest.raises(UserError, match=r'dynamics \(--dynamics\): only the toy env'):
        train_ppo_delta(sft_model/'sft'/'model.pt', sft_model/'ppo2', env=ID, dynamics='shift', device='cpu')
    with pytest.raises(UserError, match='--env waypoint_rl/ToyWaypoint-v0 differs'):
        train_ppo_delta(sft_model/'sft'/'model.pt', out, total_steps=64, num_envs=2, num_steps=8,
                        num_minibatches=2, device='cpu', resume=True, dynamics='default', show_progress=False)

def test_wrl_predict_env(sft_model):
    out = sft_model/'pred.json'
    p = wrl_predict(['--checkpoint', str(sft_model/'sft'/'model.pt'), '--eval-data', str(sft_model/'episodes'/'*.json'),
                     '--closed-loop-episodes', '1', '--num-envs', '1', '--env', ID, '--output', str(out),
                     '--device', 'cpu', '--quiet'])
    assert len(p.episodes) == 1 and p.episodes[0]['waypoints_total'] == 15
    r = read_predictions(out)
    assert r.meta['closed_loop']['env'] == ID and r.meta['closed_loop']['env_config']['route_length'] == 150.0
    with pytest.raises(UserError, match='only the toy env'):
        wrl_predict.func(checkpoint=str(sft_model/'sft'/'model.pt'), eval_data='', closed_loop_episodes=1, env=ID,
                         dynamics='shift', output=None, device='cpu')
