"""`wrl_sft` end to end in temp dirs (fresh processes): the original module's command as written, `python -m`,
every bad-input path."""
import importlib.util, json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from waypoint_rl.episodes import write_expert_episodes
from waypoint_rl.env import ToyWaypointConfig
from waypoint_rl.policy import WaypointPolicyTorch, WaypointPolicyConfig, load_checkpoint

BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1")
ORIGINAL_CMD = ["--episodes-glob", "out/episodes/**/*.json", "--batch-size", "32", "--num-steps", "200"]

def run(args, cwd, module=False):
    cmd = [sys.executable, "-m", "waypoint_rl.sft", *args] if module else [str(BIN/"wrl_sft"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)

@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_expert_episodes(d/"out"/"episodes", 5, seed=0, config=ToyWaypointConfig(route_length=40.0),
                          show_progress=False)
    return d

def _one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles: assert n in lines[0], lines[0]

def test_original_command_as_written(episodes, tmp_path):
    shutil.copytree(episodes/"out", tmp_path/"out")
    r = run(ORIGINAL_CMD, tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path/"out"/"sft_waypoint_bc_torch_v0"
    tb = ["tb"] if importlib.util.find_spec("tensorboard") else []      # TensorBoard events when installed
    assert sorted(p.name for p in out.iterdir()) == sorted([".lock", "loss_curve.png", "model.pt", "split.json",
                                                            "train_log.jsonl", *tb])
    ck = torch.load(out/"model.pt", weights_only=True)
    assert (ck["format"], ck["kind"], ck["step"]) == ("waypoint_rl.checkpoint", "sft", 200)
    log = [json.loads(l) for l in (out/"train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 200 and "val_ade" in log[-1] and "val_fde" in log[-1]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0] / 3                                  # it learned
    assert ck["metrics"]["val_ade"] < ck["metrics"]["val_cv_ade"]       # better than constant velocity
    policy = WaypointPolicyTorch(WaypointPolicyConfig(checkpoint=str(out/"model.pt"), device="cpu"))
    wp = policy({"front": np.zeros((3, 224, 224, 3), np.uint8)}, image_valid={"front": np.array([True, False, True])})
    assert wp.shape == (3, 8, 2)
    assert "val ADE" in r.stdout

def test_python_dash_m_and_flags(episodes, tmp_path):
    r = run(["--episodes-glob", str(episodes/"out/episodes/*.json"), "--batch-size", "4", "--num-steps", "3",
             "--out-dir", "m", "--lr", "1e-3", "--seed", "3", "--val-frac", "0.4", "--device", "cpu"],
            tmp_path, module=True)
    assert r.returncode == 0, r.stderr
    split = json.loads((tmp_path/"m"/"split.json").read_text())
    assert (len(split["train"]), len(split["val"]), split["seed"]) == (3, 2, 3)
    assert load_checkpoint(tmp_path/"m"/"model.pt")["metrics"]["val_episodes"] == 2

def test_help_lists_every_flag(tmp_path):
    r = run(["-h"], tmp_path)
    assert r.returncode == 0
    for f in ("--episodes-glob", "--batch-size", "--num-steps", "--out-dir", "--lr", "--seed", "--val-frac", "--device",
              "--threads", "--no-cache", "--quiet", "--z-dim", "--weight-decay", "--eval-every"):
        assert f in r.stdout
    threads = r.stdout.split("\n  --threads THREADS")[1].split("\n  --")[0]
    assert "CPU threads for torch" in threads and "(default: 1)" in threads

def test_flags_are_train_sft_parameters():
    import inspect
    from waypoint_rl.sft import wrl_sft, train_sft
    flags = set(inspect.signature(wrl_sft.func).parameters) - {"kwargs"}
    assert flags - set(inspect.signature(wrl_sft.func.__delwrap__).parameters) == set(wrl_sft.cli_only)
    assert wrl_sft.func.__delwrap__ is train_sft

def test_empty_glob(tmp_path):
    _one_line_error(run(["--episodes-glob", "nothing/**/*.json", "--num-steps", "2"], tmp_path),
                    "nothing/**/*.json", "no files match")
    assert not (tmp_path/"out").exists()

def _bad_copy(episodes, tmp_path, edit):
    shutil.copytree(episodes/"out", tmp_path/"out")
    f = tmp_path/"out/episodes/toy_000002.json"
    edit(f)
    return f

@pytest.mark.parametrize("case", ["unreadable", "binary", "wrong_count", "corrupt_png", "not_json", "missing_field"])
def test_bad_input_names_file_and_leaves_no_model(episodes, tmp_path, case):
    def edit(f):
        d = json.loads(f.read_text())
        if case == "unreadable": f.chmod(0o000)
        elif case == "binary": f.write_bytes(b"\xff\xfe\x00garbage")
        elif case == "wrong_count": d["frames"][4]["expert"]["waypoints"].pop(); f.write_text(json.dumps(d))
        elif case == "corrupt_png":
            png = f.parent/d["frames"][2]["observations"]["cameras"]["front"]["image_path"]
            png.write_bytes(b"\x89PNG garbage")
        elif case == "not_json": f.write_text(f.read_text()[:-20])
        elif case == "missing_field": del d["frames"][1]["observations"]["state"]; f.write_text(json.dumps(d))
    f = _bad_copy(episodes, tmp_path, edit)
    if case == "unreadable" and os.access(f, os.R_OK): f.chmod(0o644); pytest.skip("root can read a 000 file")
    old = tmp_path/"out/sft_waypoint_bc_torch_v0/model.pt"
    old.parent.mkdir(parents=True); old.write_bytes(b"previous model")
    r = run(ORIGINAL_CMD[:-1] + ["5", "--overwrite"], tmp_path)
    need = {"unreadable": "cannot read", "binary": "cannot read",
            "wrong_count": "frame 4: expert.waypoints has 7 points, expected 8",
            "corrupt_png": "frame 2: camera front: cannot decode image", "not_json": "not valid JSON",
            "missing_field": "frame 1: observations.state.speed_mps missing"}[case]
    _one_line_error(r, "toy_000002.json", need)
    assert old.read_bytes() == b"previous model"                       # untouched, not half-written
    assert not [p for p in old.parent.iterdir() if p.name != "model.pt"]

@pytest.mark.parametrize("args, msg", [(["--batch-size", "0"], "--batch-size"), (["--num-steps", "-1"], "--num-steps"),
                                       (["--lr", "0"], "--lr"), (["--val-frac", "1"], "--val-frac"),
                                       (["--device", "warp9"], "--device"), (["--z-dim", "0"], "z_dim (--z-dim)")])
def test_bad_flags(episodes, tmp_path, args, msg):
    _one_line_error(run(["--episodes-glob", str(episodes/"out/episodes/*.json"), *args], tmp_path), msg)
    assert not (tmp_path/"out").exists()

def test_second_run_into_a_locked_folder_is_refused(episodes, tmp_path):
    from waypoint_rl.utils import run_lock
    out = tmp_path/"run"
    with run_lock(out):                                   # another process holds the folder
        r = run(["--episodes-glob", str(episodes/"out/episodes/*.json"), "--num-steps", "2", "--out-dir", str(out)],
                tmp_path)
    _one_line_error(r, f"--out-dir {out}", "another run is writing there")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]

def test_existing_run_needs_overwrite_and_survives_a_failed_rerun(episodes, tmp_path):
    args = ["--episodes-glob", str(episodes/"out/episodes/*.json"), "--batch-size", "4", "--num-steps", "3",
            "--out-dir", "r", "--device", "cpu"]
    assert run(args, tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path/"r").rglob("*") if p.is_file()}
    _one_line_error(run(args, tmp_path), "already holds a training run", "--overwrite")
    (tmp_path/"r"/".model.pt.x1y2.tmp").write_bytes(b"left by a killed run")
    _one_line_error(run(args + ["--overwrite", "--lr", "1e30"], tmp_path), "non-finite", "lower --lr")
    after = {p.name: p.read_bytes() for p in (tmp_path/"r").rglob("*") if p.is_file()}
    assert after == {k: v for k, v in before.items()}                  # old run intact, stale temp removed
    ck = torch.load(tmp_path/"r"/"model.pt", weights_only=True)
    assert np.isfinite(ck["metrics"]["final_loss"])
    assert run(args + ["--overwrite", "--seed", "1"], tmp_path).returncode == 0
    assert (tmp_path/"r"/"model.pt").read_bytes() != before["model.pt"]

@pytest.mark.parametrize("args, msg", [(["--lr", "inf"], "lr (--lr): must be finite"), (["--lr", "nan"], "(--lr)"),
                                       (["--seed", "-1"], "seed (--seed): must be >= 0"),
                                       (["--weight-decay", "nan"], "(--weight-decay)"),
                                       (["--threads", "-1"], "(--threads)"),
                                       (["--image-size", "1000000"], "(--image-size) 1000000")])
def test_bad_values_rejected_before_training(episodes, tmp_path, args, msg):
    _one_line_error(run(["--episodes-glob", str(episodes/"out/episodes/*.json"), *args], tmp_path), msg)
    assert not (tmp_path/"out").exists()

def test_out_dir_that_is_a_file(episodes, tmp_path):
    (tmp_path/"f").write_text("")
    _one_line_error(run(["--episodes-glob", str(episodes/"out/episodes/*.json"), "--out-dir", "f"], tmp_path),
                    "f: exists and is not a folder")
