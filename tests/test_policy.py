"""Checkpoint safety (crafted malicious pickles, in fresh processes), the original module's policy call, the ego-state
contract, input handling properties."""
import os, pickle, subprocess, sys, textwrap
import numpy as np, pytest, torch
from hypothesis import given, settings, strategies as st
from waypoint_rl.policy import (WaypointNet, WaypointNetConfig, DeltaHead, WaypointPolicyTorch, save_sft_checkpoint,
                                save_delta_checkpoint, load_checkpoint, CheckpointError, to_image_batch,
                                encode_obs)

ENV = dict(os.environ, OMP_NUM_THREADS="1")

class _Evil:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))

class _EvilExec:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))

def _fresh(code, cwd):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=120)

@pytest.mark.parametrize("how", ["torch_zip", "raw_pickle", "exec_payload", "inside_state_dict"])
def test_malicious_checkpoint_is_refused_in_a_fresh_process(tmp_path, how):
    marker = tmp_path/"PWNED"
    evil = tmp_path/"model.pt"
    if how == "torch_zip":
        torch.save({"format": "waypoint_rl.checkpoint", "version": 1, "kind": "sft", "x": _Evil(marker)}, evil)
    elif how == "raw_pickle": evil.write_bytes(pickle.dumps({"format": "waypoint_rl.checkpoint", "x": _Evil(marker)}))
    elif how == "exec_payload": torch.save([_EvilExec(marker)], evil)
    else:
        good = tmp_path/"good.pt"; save_sft_checkpoint(good, WaypointNet())
        ck = torch.load(good, weights_only=True); ck["state_dicts"]["sft"]["bad"] = _Evil(marker); torch.save(ck, evil)
    r = _fresh(f"""
        from waypoint_rl.policy import WaypointPolicyTorch, WaypointPolicyConfig, CheckpointError
        try: WaypointPolicyTorch(WaypointPolicyConfig(checkpoint={str(evil)!r}, device="cpu"))
        except CheckpointError as e: print("REFUSED", e)
        """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "REFUSED" in r.stdout and "model.pt: refused to load" in r.stdout
    assert not marker.exists()

def test_not_a_checkpoint(tmp_path):
    (tmp_path/"a.pt").write_text("just text")
    with pytest.raises(CheckpointError, match="a.pt: not a waypoint_rl checkpoint"): load_checkpoint(tmp_path/"a.pt")
    torch.save({"state_dict": WaypointNet().state_dict()}, tmp_path/"b.pt")
    with pytest.raises(CheckpointError, match="b.pt: not a waypoint_rl checkpoint"): load_checkpoint(tmp_path/"b.pt")
    (tmp_path/"c.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="c.pt"): load_checkpoint(tmp_path/"c.pt")

def test_original_readme_call_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    net = WaypointNet(WaypointNetConfig(horizon_steps=8))
    save_sft_checkpoint(tmp_path/"model.pt", net)
    r = _fresh(f"""
        import numpy as np, torch
        from waypoint_rl.policy import WaypointPolicyTorch, WaypointPolicyConfig
        cfg = WaypointPolicyConfig(checkpoint={str(tmp_path/'model.pt')!r})
        policy = WaypointPolicyTorch(cfg)
        images = torch.rand(5, 3, 224, 224); valid_mask = torch.tensor([1, 1, 0, 1, 1], dtype=torch.bool)
        waypoints = policy({{"front": images}}, image_valid={{"front": valid_mask}})
        print(tuple(waypoints.shape), waypoints.dtype, bool(torch.isfinite(waypoints).all()))
        """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(5, 8, 2) torch.float32 True"

def test_delta_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net, dh = WaypointNet(), DeltaHead(128, 8, hidden=32, max_delta=1.0)
    with torch.no_grad(): dh.net[-1].bias.uniform_(-3, 3)
    save_delta_checkpoint(tmp_path/"final.pt", net, dh, step=12, metrics={"ade": 0.3}, value=torch.nn.Linear(128, 1),
                          value_config={"z_dim": 128})
    p = WaypointPolicyTorch(checkpoint=str(tmp_path/"final.pt"), device="cpu")
    assert (p.kind, p.step, p.metrics) == ("delta", 12, {"ade": 0.3})
    x = {"front": np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)}
    parts = p.parts(x)
    with torch.no_grad():
        z = net.encode({"front": to_image_batch(x["front"], 64)})
        assert torch.allclose(parts["z"], z) and torch.allclose(parts["delta"], dh(z))
    assert torch.allclose(p(x), parts["sft_waypoints"] + parts["delta"])
    assert parts["delta"].abs().max() <= 1.0 and parts["delta"].abs().sum() > 0

@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(4, 90), w=st.integers(4, 90), nhwc=st.booleans(), as_float=st.booleans(),
       as_numpy=st.booleans())
def test_any_image_batch_becomes_model_input(b, h, w, nhwc, as_float, as_numpy):
    a = np.random.default_rng(h*w).integers(0, 256, (b, h, w, 3) if nhwc else (b, 3, h, w), dtype=np.uint8)
    if as_float: a = a.astype(np.float32)/255
    if not as_numpy:
        a = torch.from_numpy(a)
        if nhwc and h == 3: return                        # a (B, 3, W, 3) tensor is read as NCHW, by contract
    elif not nhwc and w == 3: return                      # a (B, 3, H, 3) numpy array is read as NHWC, by contract
    t = to_image_batch(a, 64)
    assert t.shape == (b, 3, 64, 64) and t.dtype == torch.float32
    assert float(t.min()) >= -1e-6 and float(t.max()) <= 1 + 1e-6

def test_state_checkpoint_call_in_a_fresh_process(tmp_path):
    torch.manual_seed(0)
    net, dh = WaypointNet(), DeltaHead(128, 8, hidden=16, max_delta=1.0, state_dim=3)
    with torch.no_grad(): dh.net[-1].weight.normal_()
    save_delta_checkpoint(tmp_path/"final.pt", net, dh)
    r = _fresh(f"""
        import numpy as np, torch
        from waypoint_rl.policy import WaypointPolicyTorch
        from waypoint_rl.utils import UserError
        policy = WaypointPolicyTorch(checkpoint={str(tmp_path/'final.pt')!r}, device="cpu")
        images = np.zeros((2, 64, 64, 3), np.uint8); valid = np.array([True, False])
        state = np.array([[5., .1, .2, 0.], [9., 0., 0., 1.]])
        a = policy({{"front": images}}, image_valid={{"front": valid}}, state=state)
        print(tuple(a.shape), policy.uses_state)
        try: policy({{"front": images}}, image_valid={{"front": valid}})
        except UserError as e: print("REFUSED", e)
        """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["(2, 8, 2) True",
                                     "REFUSED this checkpoint's delta head uses the ego state: pass state=obs['state']"]

@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 5), valid=st.lists(st.booleans(), min_size=10, max_size=10), two=st.booleans())
def test_encode_obs_is_bit_identical_to_the_wrapper(tmp_path_factory, b, valid, two):
    torch.manual_seed(0)
    cams = ["front", "side_left"] if two else ["front"]
    path = tmp_path_factory.mktemp("p")/"m.pt"
    save_sft_checkpoint(path, WaypointNet(WaypointNetConfig(cameras=cams, channels=[8, 8], z_dim=16, hidden=16)))
    p = WaypointPolicyTorch(checkpoint=str(path), device="cpu")
    rng = np.random.default_rng(b)
    obs = {c: rng.integers(0, 256, (b, 64, 64, 3), dtype=np.uint8) for c in cams}
    obs["image_valid"] = np.array(valid[:b*len(cams)]).reshape(b, len(cams))
    want = p.z({c: obs[c] for c in cams}, {c: obs["image_valid"][:, i] for i, c in enumerate(cams)})
    assert torch.equal(encode_obs(p.net, obs, cams, {}), want)
    assert torch.equal(torch.from_numpy(p.act(obs)), p({c: obs[c] for c in cams},
                                                       {c: obs["image_valid"][:, i] for i, c in enumerate(cams)}))
