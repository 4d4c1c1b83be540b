"""`wrl_episodes` and `wrl_drive` end to end in a temp dir (fresh processes), foreign files in the original schema,
loader properties."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from hypothesis import given, settings, strategies as st
from PIL import Image
from waypoint_rl.episodes import (load_episode, load_episodes, EpisodeDataset, EpisodeError, _demo_foreign_episode)

BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1")

def run(*args, cwd):
    return subprocess.run([str(BIN/args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=300)

def test_wrl_episodes_cli(tmp_path):
    r = run("wrl_episodes", "--out-dir", "out/episodes", "--episodes", "3", "--seed", "7",
            "--cameras", "front,side_left",
            "--camera-dropout", "0.3", "--noise-std", "0.5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote 3 episodes" in r.stdout
    files = sorted((tmp_path/"out/episodes").glob("*.json"))
    assert [f.name for f in files] == ["toy_000007.json", "toy_000008.json", "toy_000009.json"]
    d = json.loads(files[0].read_text())
    assert d["cameras"] == ["front", "side_left"] and d["seed"] == 7 and d["noise_std"] == 0.5
    assert d["waypoint_spec"] == {"horizon_steps": 8, "dt": 0.5, "frame": "ego", "units": "m"}
    # executed action differs from the clean label (noise injection), labels are the expert's
    f = d["frames"][5]
    assert f["action"]["waypoints"] != f["expert"]["waypoints"]
    # every image_path resolves relative to the JSON file; dropped cameras are absent from their frames
    n_cams = [len(f["observations"]["cameras"]) for f in d["frames"]]
    assert min(n_cams) < 2
    for f in d["frames"]:
        for c, e in f["observations"]["cameras"].items():
            assert (files[0].parent/e["image_path"]).is_file()
    eps = load_episodes(str(tmp_path/"out/episodes/**/*.json"))
    ds = EpisodeDataset(eps)
    assert len(ds) == sum(len(e.frames) for e in eps)
    assert not ds.image_valid.all()

def test_wrl_episodes_refuses_to_mix_runs(tmp_path):
    assert run("wrl_episodes", "--out-dir", "e", "--episodes", "1", cwd=tmp_path).returncode == 0
    r = run("wrl_episodes", "--out-dir", "e", "--episodes", "1", "--seed", "5", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "already holds 1 episode files" in r.stderr
    r = run("wrl_episodes", "--out-dir", "e", "--episodes", "2", "--seed", "5", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path/"e").glob("*.json")) == ["toy_000005.json", "toy_000006.json"]

@pytest.mark.parametrize("args, msg", [(["--cameras", "rear"], "cameras (--cameras): unknown camera 'rear'"),
                                       (["--dynamics-shift", "ice"], "(--dynamics-shift): unknown preset 'ice'"),
                                       (["--dynamics", "gain=0.9,grip=1"], "(--dynamics): unknown key 'grip'"),
                                       (["--dynamics", "lag=-1"], "(--dynamics): actuator_lag must be >= 0"),
                                       (["--episodes", "0"], "episodes (--episodes): must be >= 1"),
                                       (["--noise-std", "-1"], "noise_std (--noise-std): must be finite and >= 0"),
                                       (["--seed", "-1"], "seed (--seed): must be >= 0"),
                                       (["--image-size", "100000"], "(--num-envs, --image-size, --horizon-steps)")])
def test_wrl_episodes_bad_flags(tmp_path, args, msg):
    r = run("wrl_episodes", "--out-dir", "e", *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"error: {r.stderr.strip()[7:]}"] and msg in r.stderr
    assert not (tmp_path/"e").exists() or not any((tmp_path/"e").glob("*.json"))

def test_help_documents_every_flag(tmp_path):
    r = run("wrl_episodes", "-h", cwd=tmp_path)
    assert r.returncode == 0
    for flag in ("--out-dir", "--episodes", "--seed", "--cameras", "--dynamics", "--dynamics-shift", "--noise-std",
                 "--camera-dropout", "--image-size", "--horizon-steps", "--num-envs", "--overwrite"):
        assert flag in r.stdout

def test_wrl_episodes_in_a_randomised_world(tmp_path):
    r = run("wrl_episodes", "--out-dir", "e", "--episodes", "2", "--dynamics", "default", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path/"e"/"toy_000000.json").read_text())
    assert d["env_config"]["dynamics_randomization"] == "default"

def test_wrl_drive_cli(tmp_path):
    r = run("wrl_drive", "--out-dir", str(tmp_path), "--episodes", "2", "--cameras", "front", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path/"summary.json").read_text())
    assert s["episodes"] == 2 and s["goal_reach_rate"] == 1.0
    assert (tmp_path/"trajectories.png").stat().st_size > 1000 and (tmp_path/"cameras.png").is_file()

def test_wrl_drive_explicit_world(tmp_path):
    r = run("wrl_drive", "--out-dir", "d", "--episodes", "1", "--cameras", "", "--dynamics", "gain=0.85,lag=0.1",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path/"d"/"summary.json").read_text())
    assert s["world"] == {"steer_gain": 0.85, "steer_bias": 0.0, "actuator_lag": 0.1, "understeer": 0.0}
    assert not (tmp_path/"d"/"cameras.png").exists()

@pytest.mark.parametrize("args,msg", [(["--cameras", "front,rear"], "unknown camera 'rear'"),
                                      (["--episodes", "0"], "episodes (--episodes)"),
                                      (["--dynamics-shift", "ice"], "unknown preset 'ice'"),
                                      (["--dynamics", "ice"], "dynamics (--dynamics): unknown world 'ice'"),
                                      (["--seed", "-1"], "seed (--seed): must be >= 0, got -1")])
def test_wrl_drive_bad_input(tmp_path, args, msg):
    r = run("wrl_drive", "--out-dir", str(tmp_path), *args, cwd=tmp_path)
    assert r.returncode == 2
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path/"summary.json").exists()

def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "waypoint_rl.episodes", "--out-dir", "e", "--episodes", "1"],
                       cwd=tmp_path,
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path/"e"/"toy_000000.json").is_file()

def test_foreign_224px_episode_loads_and_resizes(tmp_path):
    fp = _demo_foreign_episode(tmp_path/"foreign")
    ds = EpisodeDataset(load_episodes([fp]), image_size=64, cache=False)
    assert ds.cameras == ["front", "front_left"] and ds.images.shape == (2, 2, 3, 64, 64)
    assert ds.image_valid.tolist() == [[True, True], [False, True]]
    assert ds.waypoints_valid[1].tolist() == [True]*7 + [False]
    # the green stripe (columns 100-123 of 224) lands at columns ~29-35 of 64
    g = ds.images[0, 0, 1].float().mean(0)
    assert g[30:34].min() > 200 and g[:25].max() == 0 and g[40:].max() == 0

def test_cache_survives_read_only_folder(tmp_path):
    fp = _demo_foreign_episode(tmp_path/"ro")
    os.chmod(tmp_path/"ro", 0o555)
    try:
        if os.access(tmp_path/"ro", os.W_OK): pytest.skip("running as a user who can write anywhere (root)")
        ds = EpisodeDataset(load_episodes([fp]))
        assert len(ds) == 2 and not list((tmp_path/"ro").glob(".*.npz"))
    finally: os.chmod(tmp_path/"ro", 0o755)

@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 12), n=st.integers(1, 5), data=st.data())
def test_loader_round_trips_any_valid_file(tmp_path_factory, k, n, data):
    "Any schema-conforming file loads; values (and null-masked points) come back exactly"
    d = tmp_path_factory.mktemp("h")
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(d/"a.png")
    xy = st.floats(-100, 100, allow_nan=False, width=32)
    frames, want = [], []
    for i in range(n):
        pts = data.draw(st.lists(st.one_of(st.none(), st.tuples(xy, xy).map(list)), min_size=k, max_size=k))
        frames.append({"t": i, "observations": {"cameras": {"front": {"image_path": "a.png"}} if i % 2 == 0 else {},
                                                 "state": {"speed_mps": float(i)}},
                       "expert": {"waypoints": pts}, "extra": i})
        want.append(pts)
    (d/"e.json").write_text(json.dumps({"episode_id": 3, "cameras": ["front"], "frames": frames,
                                         "waypoint_spec": {"horizon_steps": k, "dt": 0.25}}))
    ep = load_episode(d/"e.json")
    assert ep.episode_id == "3" and ep.horizon_steps == k and len(ep.frames) == n
    for f, pts in zip(ep.frames, want):
        assert f.waypoints_valid.tolist() == [p is not None for p in pts]
        for p, got in zip(pts, f.waypoints):
            if p is not None: assert got.tolist() == pytest.approx(p)
    assert [sorted(f.image_paths) for f in ep.frames] == [["front"] if i % 2 == 0 else [] for i in range(n)]

def test_wrong_count_names_file_and_frame(tmp_path):
    fp = _demo_foreign_episode(tmp_path)
    d = json.loads(fp.read_text()); d["frames"][1]["expert"]["waypoints"].append([1, 2])
    fp.write_text(json.dumps(d))
    with pytest.raises(EpisodeError, match=r"ep.json: frame 1: expert.waypoints has 9 points, expected 8"):
        load_episode(fp)

@pytest.mark.parametrize("cmd", ["wrl_episodes", "wrl_drive"])
def test_a_second_run_into_a_locked_folder_is_refused(tmp_path, cmd):
    from waypoint_rl.utils import run_lock
    with run_lock(tmp_path/"o"):                       # as a concurrent run would hold it
        r = run(cmd, "--out-dir", "o", "--episodes", "1", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: --out-dir o: another run is writing there")
    assert sorted(p.name for p in (tmp_path/"o").iterdir()) == [".lock"]

@pytest.mark.parametrize("cmd", ["wrl_episodes", "wrl_drive"])
def test_out_dir_that_is_a_file(tmp_path, cmd):
    (tmp_path/"o").write_text("keep")
    r = run(cmd, "--out-dir", "o", "--episodes", "1", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == "error: --out-dir o: exists and is not a folder\n", r.stderr
    assert (tmp_path/"o").read_text() == "keep"
