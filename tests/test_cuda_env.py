"""The env on a GPU: the numpy env's episodes, and a step that never waits for the device (skipped without CUDA)."""
import io
import numpy as np, pytest, torch
from waypoint_rl.env import ToyWaypointConfig, ToyWaypointVecEnv

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CFG = ToyWaypointConfig(camera_dropout=0.2, dynamics_randomization='default')

def first_episodes(env, seed:int, n:int, steps:int=120)->tuple:
    "Per car, the positions and front frames of its first two episodes, driving the perturbed expert"
    host = lambda x: x.cpu().numpy().copy() if isinstance(x, torch.Tensor) else np.asarray(x)
    pos, img, ep = [[[] for _ in range(n)] for _ in range(2)], [[[] for _ in range(n)] for _ in range(2)], [0]*n
    def rec(i, p, f):
        if ep[i] < 2: pos[ep[i]][i].append(p); img[ep[i]][i].append(f)
    o, info = env.reset(seed=seed)
    for i in range(n): rec(i, host(info['position'])[i], host(o['front'])[i])
    restart, k = np.zeros(n, bool), np.zeros(n)
    for _ in range(steps):
        a = host(info['expert_waypoints']) + 0.8*np.sin(0.5*k + np.arange(n))[:, None, None]
        o, _, te, tr, info = env.step(a if env.device is None else torch.as_tensor(a, device=env.device))
        p, f, done = host(info['position']), host(o['front']), host(te | tr)
        for i in range(n):
            if env.device is None and done[i]:
                rec(i, info['final_info'][i]['position'], info['final_obs'][i]['front']); ep[i] += 1
            if restart[i]: ep[i] += 1
            rec(i, p[i], f[i])
        k = np.where(done if env.device is None else restart, 0, k + 1)
        restart = done if env.device is not None else restart
    assert min(ep) >= 2, ep
    return pos, img

@cuda
def test_cuda_episodes_match_the_numpy_env():
    "64 seeded cars over two whole episodes each: positions within 1e-4 m, frames within one intensity level."
    pn, fn = first_episodes(ToyWaypointVecEnv(64, CFG), 300, 64)
    pd, fd = first_episodes(ToyWaypointVecEnv(64, CFG, device='cuda'), 300, 64)
    for e in range(2):
        for i in range(64):
            assert len(pd[e][i]) == len(pn[e][i]), (e, i)
            np.testing.assert_allclose(np.array(pd[e][i]), np.array(pn[e][i]), atol=1e-4)
            assert np.abs(np.array(fd[e][i], int) - np.array(fn[e][i], int)).max() <= 1, (e, i)

@cuda
def test_cuda_step_never_waits_for_the_device():
    "Stepping a CUDA env with tensor actions, through episode ends and restarts, makes no synchronising call."
    env = ToyWaypointVecEnv(256, CFG, device='cuda')
    _, info = env.reset(seed=0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for t in range(60):
            obs, rew, te, tr, info = env.step(info['expert_waypoints'] + 0.5*np.sin(0.3*t))
    finally: torch.cuda.set_sync_debug_mode(0)
    assert obs['front'].device.type == 'cuda' and rew.device.type == 'cuda'
    assert int((te | tr).sum()) >= 0 and info['episode_length'].max().item() >= 1

@cuda
def test_cuda_state_loads_on_the_cpu():
    "A state saved from a CUDA env continues on a CPU device env with the same steps."
    g, c = ToyWaypointVecEnv(8, CFG, device='cuda'), ToyWaypointVecEnv(8, CFG, device='cpu')
    _, info = g.reset(seed=3)
    for _ in range(5): info = g.step(info['expert_waypoints'])[4]
    f = io.BytesIO(); torch.save(g.state_dict(), f); f.seek(0)
    _, ic = c.load_state_dict(torch.load(f, weights_only=True))
    for _ in range(30):
        info = g.step(info['expert_waypoints'])[4]; ic = c.step(ic['expert_waypoints'])[4]
        np.testing.assert_allclose(info['position'].cpu().numpy(), ic['position'].numpy(), atol=1e-3)
