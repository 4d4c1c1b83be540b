"Exact values of the toy env: progress and steering, truncation, camera rasters, the world view, the benchmark."
import inspect, re
import numpy as np, torch
import pytest
from gymnasium.error import ResetNeeded
import waypoint_rl.env as wenv
from waypoint_rl.env import ToyWaypointConfig, ToyWaypointEnv, ToyWaypointVecEnv, env_benchmark

# a straight route, the car on it and pointing along it: every position and pixel below is known in advance
STRAIGHT = dict(straight_prob=1.0, init_lateral=0.0, init_heading=0.0)
WP_COLOUR, EDGE_COLOUR, CENTRE_COLOUR, CAR_COLOUR = (40, 110, 220), (170, 170, 230), (90, 90, 90), (20, 20, 20)

def _straight_env(**kw)->tuple:
    "A single env on a straight route, reset with seed 0; (env, obs, info)"
    env = ToyWaypointEnv(**{**STRAIGHT, **kw})
    obs, info = env.reset(seed=0)
    return env, obs, info

def test_progress_is_the_distance_driven_along_the_route():
    "One step along a straight route advances `progress` by exactly the distance the car drove."
    env, _, info = _straight_env(cameras=())
    p0 = info['position']
    _, _, _, _, info = env.step(info['expert_waypoints'])
    driven = np.linalg.norm(info['position'] - p0)
    assert driven > 2                                        # one policy period at 4-8 m/s
    assert info['progress'] == pytest.approx(driven, abs=1e-4)
    assert abs(info['lateral_offset']) < 1e-4

def _nearest_on_route(route:np.ndarray, p:np.ndarray, ds:float)->tuple:
    "Arc length and signed lateral offset [m, left +] of `p` from the nearest point of the whole `route`"
    i = int(np.argmin(((route - p)**2).sum(-1)))
    t = route[min(i + 1, len(route) - 1)] - route[max(i - 1, 0)]; t /= np.linalg.norm(t)
    d = p - route[i]
    return i*ds + d @ t, t[0]*d[1] - t[1]*d[0]

def test_progress_and_offset_on_curved_routes():
    "On curved routes `progress` and `lateral_offset` after each step are the projection on the nearest route point."
    venv = ToyWaypointVecEnv(4, cameras=(), max_curvature=0.1)
    _, info = venv.reset(seed=3)
    routes = [venv.route(i) for i in range(4)]
    for _ in range(6):
        _, _, term, trunc, info = venv.step(info['expert_waypoints'])
        assert not (term | trunc).any()
        for i in range(4):
            s, lat = _nearest_on_route(routes[i], info['position'][i], venv.config.route_ds)
            assert info['progress'][i] == pytest.approx(s, abs=0.01)
            assert info['lateral_offset'][i] == pytest.approx(lat, abs=0.01)

def test_lookahead_grows_with_speed():
    "Pure pursuit aims at the first waypoint beyond lookahead_time*speed, with the hand-computed yaw change."
    v, L, dt = 8.0, 2.7, 0.1                                 # lookahead = max(1, 0.6*8) = 4.8 m
    env, _, info = _straight_env(cameras=(), policy_period=1, lookahead_min=1.0, lookahead_time=0.6,
                                 init_speed_min=v, init_speed_max=v)
    a = np.zeros((8, 2), np.float32); a[0] = (2, 0); a[1:] = (10, 2)   # 2 m ahead (inside), then (10, 2) beyond
    yaw0 = info['yaw_rad']
    _, _, _, _, info = env.step(a)
    # steer = atan(2 L ty/d²), yaw rate = v tan(steer)/L, so the yaw change is 2 v ty dt/d² with ty = 2, d² = 104
    assert L == env.config.wheelbase and info['yaw_rad'] - yaw0 == pytest.approx(2*v*2*dt/104, rel=1e-6)

def test_truncation_at_max_episode_steps():
    "The episode is truncated on exactly its max_episode_steps-th step, not one later."
    env, _, info = _straight_env(cameras=(), max_episode_steps=3)
    for k in range(1, 4):
        _, _, term, trunc, info = env.step(info['expert_waypoints'])
        assert not term and trunc == (k == 3), k
    assert info['termination'] == 'truncated'

def test_state_space_speed_is_non_negative():
    "The speed's lower bound in the observation space is 0 (the car never reverses)."
    box = ToyWaypointEnv(cameras=()).observation_space['state']
    assert box.low[0] == 0 and box.high[0] == pytest.approx(ToyWaypointConfig().max_speed*1.001)
    assert (box.low[1:] == -box.high[1:]).all()                          # yaw rate, steering, yaw: symmetric

def test_render_fps_metadata():
    "Both envs announce 2 frames per second to video recorders."
    assert ToyWaypointEnv.metadata['render_fps'] == 2 == ToyWaypointVecEnv.metadata['render_fps']

def test_front_camera_gauge_car_and_route():
    "Front raster at full speed: a 60-pixel red gauge in column 0, the 3x2 white car, the route from the car up."
    env, obs, _ = _straight_env(init_speed_min=14.0, init_speed_max=14.0)
    img, H = obs['front'], 64
    assert obs['state'][0] == 14.0
    gauge = img[:, 0, 0]
    assert (gauge[:4] == 0).all() and (gauge[4:] == 255).all()             # rint(14/14*(64-4)) = 60 rows lit
    assert (img[H-3:, H//2-1:H//2+1] == 255).all()                         # the car: last three rows, two columns
    assert (img[H-4, H//2-1:H//2+1, 0] == 0).all()                         # and not the row above
    assert (img[H-20:H-4, H//2-2:H//2+2, 1].max(1) == 255).all()           # the centre line right ahead of the car

def test_dropped_frames_are_black():
    "With camera_dropout=1 every frame is all zeros and marked invalid."
    _, obs, _ = _straight_env(camera_dropout=1.0)
    assert obs['front'].max() == 0 and obs['image_valid'].tolist() == [0]

def test_copy_false_keeps_two_buffers():
    "copy=False: a camera array stays valid through the next step and is reused the step after."
    venv = ToyWaypointVecEnv(2, copy=False, **STRAIGHT)
    o0, info = venv.reset(seed=0)
    a0 = o0['front'].copy()
    o1, _, _, _, info = venv.step(info['expert_waypoints'])
    assert not np.shares_memory(o1['front'], o0['front']) and np.array_equal(o0['front'], a0)
    o2, *_ = venv.step(info['expert_waypoints'])
    assert np.shares_memory(o2['front'], o0['front'])
    b = venv._b                                              # the batch's own rasters reuse the same two buffers
    r = [b.render_cameras(np.arange(2))['front'].data_ptr() for _ in range(3)]
    assert r[0] != r[1] and r[2] == r[0]

def test_reset_needed_names_at_most_eight_cars():
    "Stepping before reset names the first eight cars that have not started."
    with pytest.raises(ResetNeeded, match=re.escape('cars [0, 1, 2, 3, 4, 5, 6, 7] have not started')):
        ToyWaypointVecEnv(12, cameras=()).step(np.zeros((12, 8, 2)))

def _world_view()->tuple:
    "World view of a straight route at reset, and a map from world metres to its (row, col)"
    env = ToyWaypointVecEnv(1, cameras=(), render_mode='rgb_array', **STRAIGHT)
    _, info = env.reset(seed=0)
    img, pts, info = env.render()[0], env.route(0), {k: v[0] for k, v in info.items()}
    d = (pts[-1] - pts[0])/np.linalg.norm(pts[-1] - pts[0])
    nrm = env.config.off_route_distance*np.array([-d[1], d[0]])
    corners = np.concatenate([pts[[0, -1]] + nrm, pts[[0, -1]] - nrm])   # the corridor from start to goal
    lo, hi = corners.min(0), corners.max(0)
    centre, scale = (lo + hi)/2, 255/((hi - lo).max()*1.08 + 1)          # 8 % margin, 256 px
    def px(p):
        q = (np.asarray(p) - centre)*scale + 128
        return 255 - int(np.floor(q[1])), int(np.floor(q[0]))
    return env, info, img, pts, d, nrm, px

def _count(img, colour)->int: return int((img == colour).all(-1).sum())

def test_world_view_route_edges_and_waypoints():
    "World view: centre line and both corridor edges in their colours, twelve 4x4 px waypoint dots up to the goal."
    env, info, img, pts, d, nrm, px = _world_view()
    assert img.shape == (256, 256, 3)
    mid = pts[110]                                           # 55 m along, between two waypoints
    assert tuple(img[px(mid)]) == CENTRE_COLOUR
    assert tuple(img[px(mid + nrm)]) == EDGE_COLOUR and tuple(img[px(mid - nrm)]) == EDGE_COLOUR
    assert tuple(img[px(pts[-1])]) == WP_COLOUR                           # the last route waypoint is the goal
    assert _count(img, WP_COLOUR) == 12*16                               # 3x3 points 1 px apart, 2x2 brush

def test_world_view_car_shape():
    "World view: the car is a 4 m long triangle in its colour, nose 2 m ahead of the car's position."
    env, info, img, pts, d, nrm, px = _world_view()
    p = info['position']
    assert tuple(img[px(p)]) == CAR_COLOUR
    assert tuple(img[px(p + 2*d)]) == CAR_COLOUR and tuple(img[px(p - 2*d)]) == CAR_COLOUR
    assert tuple(img[px(p + 3*d)]) != CAR_COLOUR
    side = nrm/np.linalg.norm(nrm)
    assert tuple(img[px(p - 2*d + side)]) == CAR_COLOUR and tuple(img[px(p - 2*d - side)]) == CAR_COLOUR

def test_benchmark_speedup_and_repeats(monkeypatch):
    "env_benchmark takes the median of 5 runs per figure and reports speed-up = batched rate / looped rate."
    calls = []
    def fake_rate(step, n_cars, seconds):
        calls.append(step.__name__)
        return {'one': 10.0, 'vstep': 1000.0, 'loop': 50.0}[step.__name__]
    monkeypatch.setattr(wenv, '_rate', fake_rate)
    rows = env_benchmark(sizes=(2,), show=False)
    assert len(calls) == 2*4*5              # 2 observation settings x 4 figures (single, numpy, device, loop) x 5
    loops = [r for r in rows if 'loop' in r['env']]
    assert [r['batched_speedup'] for r in loops] == [20.0, 20.0]
    assert inspect.signature(env_benchmark).parameters['repeats'].default == 5

def test_benchmark_loop_steps_every_env(monkeypatch):
    "The looped-single-envs figure steps each of its N envs once per call (N env-steps, as the rate assumes)."
    stepped, per_call = [], {}
    orig = ToyWaypointEnv.step
    def counting_step(self, action):
        stepped.append(id(self)); return orig(self, action)
    def fake_rate(step, n_cars, seconds):
        k = len(stepped); step(); per_call.setdefault(step.__name__, []).append((len(stepped) - k, n_cars))
        return 1.0
    monkeypatch.setattr(ToyWaypointEnv, 'step', counting_step)
    monkeypatch.setattr(wenv, '_rate', fake_rate)
    env_benchmark(sizes=(3,), repeats=1, show=False)
    assert per_call['loop'] == [(3, 3), (3, 3)]                # 3 distinct envs stepped, both observation settings
    assert per_call['one'] == [(1, 1), (1, 1)]

def test_memory_refusal_names_machine_memory(monkeypatch):
    "A batch larger than the machine's memory is refused, naming that memory in GB (1 GB = 1e9 bytes)."
    import os
    mem = {'SC_PHYS_PAGES': 1_049_999_999, 'SC_PAGE_SIZE': 1}  # 1.049999999 GB: prints 1.0, not 1.1
    monkeypatch.setattr(os, 'sysconf', lambda name: mem[name])
    with pytest.raises(ValueError, match=re.escape("more than this machine's 1.0 GB of memory")):
        ToyWaypointVecEnv(100_000)

def test_plot_cameras_world_in_last_panel():
    "plot_cameras with two cameras and the world view: one panel each, cameras in order, the world view last."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from waypoint_rl.env import plot_cameras
    obs = {'front': np.full((8, 8, 3), 10, np.uint8), 'front_left': np.full((8, 8, 3), 20, np.uint8)}
    world = np.full((16, 16, 3), 30, np.uint8)
    fig = plot_cameras(obs, world, cameras=('front', 'front_left'))
    try:
        axs = fig.axes
        assert [a.get_title() for a in axs] == ['front', 'front_left', 'world']
        assert [len(a.images) for a in axs] == [1, 1, 1]
        assert [int(a.images[0].get_array()[0, 0, 0]) for a in axs] == [10, 20, 30]
    finally: plt.close(fig)

def test_front_camera_edge_dots_follow_the_car():
    "On a curved route the corridor-edge dots (blue) stay the car's window: exact lit counts, farthest dot at top."
    venv = ToyWaypointVecEnv(1, max_curvature=0.1, straight_prob=0.0)
    _, info = venv.reset(seed=2)
    counts = []
    for k in range(7):
        obs, _, term, trunc, info = venv.step(info['expert_waypoints'])
        assert not (term | trunc).any()
        if k == 0: assert obs['front'][0, 1, 44, 2] == 255  # the farthest edge dot of the window, near the top
        counts.append(int((obs['front'][0, ..., 2] > 0).sum()))
    assert counts == [70, 71, 71, 73, 72, 73, 78]              # no dot left behind from the start of the route

def test_projection_searches_only_the_cars_own_route():
    "Projection near a route's start never picks a point of another car's route, even one lying on the car."
    venv = ToyWaypointVecEnv(2, cameras=(), **STRAIGHT)
    venv.reset(seed=0)
    b = venv._b
    b.pos[:] += 0.3                                             # both cars a little off their route's first point
    s, lat = (x.numpy() for x in b.project(np.arange(2), np.zeros(2)))
    b.rx[1, -1], b.ry[1, -1] = b.pos[0]                         # the other car's route end right on each car
    b.rx[0, -1], b.ry[0, -1] = b.pos[1]
    s2, lat2 = (x.numpy() for x in b.project(np.arange(2), np.zeros(2)))
    np.testing.assert_allclose(s2, s, atol=1e-9); np.testing.assert_allclose(lat2, lat, atol=1e-9)
    assert (np.abs(s) < 0.5).all() and (np.abs(lat) < 0.5).all()  # near the start of their own routes

def test_camera_past_the_route_end_shows_only_its_last_point():
    "A car 7.25 m past the end of its route polyline: the side camera shows the last route point only, once."
    venv = ToyWaypointVecEnv(1, cameras=('side_left',), **STRAIGHT)
    venv.reset(seed=0)
    b, ds, H, mpp = venv._b, venv.config.route_ds, venv.config.image_size, venv.config.meters_per_pixel
    end = torch.stack([b.rx[0, -1], b.ry[0, -1]])              # the polyline runs on past the goal
    d = torch.stack([torch.cos(b.head[0, -1]), torch.sin(b.head[0, -1])])
    past = b._wlo + 5                                          # points beyond the last one: the window is clipped
    gap = past*ds + 0.25                                       # [m] from the last point, off pixel borders
    b.s[0], b.pos[0], b.yaw[0] = (b.P - 1)*ds + gap, end + gap*d, b.head[0, -1]
    img = b.render_cameras(np.arange(1), fresh=True)['side_left'][0].numpy()
    img[H - 3:, H//2 - 1:H//2 + 1] = 0                          # leave out the car
    # side_left looks left: behind the car is to the left in the image, 7.25 m = 14.5 px
    col = int(np.floor(H//2 - gap/mpp))
    for ch in (1, 2):                                          # centre line; corridor edges (the right one unseen)
        assert [c for _, c in np.argwhere(img[..., ch] > 0).tolist()] == [col], ch

def test_a_line_in_the_first_column_is_drawn():
    "A car standing 15.75 m right of a straight route: its front camera shows the centre line in column 0, no further."
    venv = ToyWaypointVecEnv(1, cameras=('front',), **STRAIGHT)
    venv.reset(seed=0)
    b, H, mpp = venv._b, venv.config.image_size, venv.config.meters_per_pixel
    left = (H//2 - 0.5)*mpp                                    # the route this far left: column 0, mid-pixel
    h = b.head[0, 0]
    b.pos[0] = torch.stack([torch.sin(h), -torch.cos(h)])*left  # right of the route's start
    b.yaw[0], b.v[0], b.t[0] = h, 0.0, 0                        # standing still: no speed gauge
    b.s[0], b.lat[0] = 0.0, -left
    img = b.render_cameras(np.arange(1), fresh=True)['front'][0].numpy()
    centre = np.argwhere(img[..., 1] > 0)                      # green: the centre line (and the goal marker's dots)
    assert centre[:, 1].min() == 0 and (img[:, 0, 1] > 0).sum() > 10
    assert (img[:, 1, 1] == 0).all()                           # one column wide: the next one is empty
