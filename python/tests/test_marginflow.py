"""Tests of the Python package against the C library and the CLI.

Run by tests/cli/python.sh (make test), which points MARGINFLOW_LIB at the
build's libmarginflow.so.0 and MARGINFLOW_CLI at its marginflow. Round
trips: a run trained here has exactly the rows of `marginflow train` with
the same options; analyze() of a CLI run equals its analysis.json; svm()
equals `marginflow svm --json`. Known answers are those of docs/theory.md
section 4 (case B, sym4).
"""
import json
import math
import os
import re
import subprocess

import numpy as np
import pytest

import marginflow as mf
from marginflow import _ffi

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("MARGINFLOW_CLI", os.path.join(ROOT, "build", "marginflow"))
B_OPTS = dict(init_params=[1, 1, 1, -1], optimizer="scaled", lr=0.1, steps=0,
              until_log10_loss=-10000)


def cli(*args, check=True):
    p = subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("marginflow %s: exit %d: %s" % (" ".join(map(str, args)),
                                                              p.returncode, p.stderr))
    return p


def same(a, b):
    """Equal numbers, NaN equal to NaN (absent in both)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


@pytest.fixture(scope="module")
def cli_run_b(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "B"
    cli("train", "--data", "builtin:B", "--model", "diag:depth=2", "--init-params", "1,1,1,-1",
        "--optimizer", "scaled", "--lr", "0.1", "--steps", "0", "--until-log10-loss", "-10000",
        "--out", d, "-q")
    cli("analyze", d, "-q")
    return d


# ------------------------------------------------------------------ library

def test_version_is_the_headers():
    head = open(os.path.join(ROOT, "include", "marginflow.h")).read()
    assert mf.version() == re.search(r'#define MF_VERSION "([^"]+)"', head).group(1)
    assert _ffi.lib().mf_abi_version() == int(re.search(r"#define MF_ABI_VERSION (\d+)",
                                                         head).group(1))


def test_every_mirror_has_the_librarys_size():
    for name in dir(_ffi):
        obj = getattr(_ffi, name)
        if isinstance(obj, type) and issubclass(obj, _ffi.Structure) and name.startswith("mf_"):
            assert _ffi.check(obj) is obj


def test_a_mirror_of_another_size_is_refused():
    class mf_train_settings(_ffi.Structure):  # one field short
        _fields_ = [("loss", _ffi.c_int)]
    with pytest.raises(mf.Error, match=r"mf_train_settings of \d+ bytes, this binding's mirror "
                                       r"has 4"):
        _ffi.check(mf_train_settings)


# ------------------------------------------------------------------ data

def test_data_from_arrays_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 3))
    y = np.where(x[:, 0] > 0, 1, -1)
    d = mf.Data(x, y)
    assert (d.n, d.d, d.num_classes) == (7, 3, 0)
    assert np.array_equal(d.x, x) and np.array_equal(d.y, y)
    d.save(tmp_path / "d.csv")
    e = mf.Data(str(tmp_path / "d.csv"))
    assert np.array_equal(e.x, x) and np.array_equal(e.y, y) and e.hash() == d.hash()
    c = mf.Data(x, np.array([0, 1, 2, 0, 1, 2, 0]))
    assert c.num_classes == 3 and list(c.y) == [0, 1, 2, 0, 1, 2, 0]


def test_data_hash_is_the_cli_runs(cli_run_b):
    cfg = json.load(open(cli_run_b / "config.json"))
    assert mf.Data("builtin:B").hash() == cfg["data"]["data_hash"]


def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="labels must be all -1/\\+1"):
        mf.Data(np.zeros((2, 2)), np.array([0.5, 1]))
    with pytest.raises(ValueError, match="y must have shape"):
        mf.Data(np.zeros((2, 2)), np.array([1, -1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        mf.Data(np.array([[np.nan, 1.0]]), np.array([1]))
    with pytest.raises(mf.Error) as e:
        mf.Data("no-such-file.svm")
    assert "no-such-file.svm" in str(e.value) and e.value.code == _ffi.ERR_IO


# ------------------------------------------------------------------ models

def test_model_forward_backward_case_b():
    m = mf.Model("diag:depth=2", 2)
    assert (m.spec, m.n_params, m.degree, m.homogeneous) == ("diag:depth=2", 4, 2, True)
    th = np.array([1.0, 1.0, 1.0, -1.0])  # u = (1, 1), v = (1, -1)
    x = np.array([[1.0, 2.0]])
    assert m.forward(th, x)[0, 0] == -1.0  # <u o v, x> = 1 - 2
    g = m.backward(th, x, [1.0])
    assert np.array_equal(g, [1.0, -2.0, 1.0, 2.0])  # d/du_j = v_j x_j, d/dv_j = u_j x_j
    h = 1e-6
    fd = [(m.forward(th + h * np.eye(4)[i], x) - m.forward(th - h * np.eye(4)[i], x))[0, 0] / (2 * h)
          for i in range(4)]
    assert np.allclose(fd, g, atol=1e-8)
    assert "0 w1[0][0]" in m.layout() and m.norm(th) == 2.0


def test_model_errors():
    with pytest.raises(mf.Error) as e:
        mf.Model("relu2:width=0", 2)
    assert e.value.code == _ffi.ERR_PARSE and "width=0" in str(e.value)
    m = mf.Model("linear", 2)
    with pytest.raises(ValueError, match=r"theta .*has 2 parameters"):
        m.forward([1.0, 2.0, 3.0], [[1.0, 1.0]])
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 2\)"):
        m.forward([1.0, 2.0], [[1.0, 1.0, 1.0]])


# ------------------------------------------------------------------ training

def test_train_case_b_matches_the_cli_bit_for_bit(cli_run_b):
    r = mf.train("builtin:B", "diag:depth=2", **B_OPTS)
    run = mf.read_run(cli_run_b)
    assert list(r.metrics.columns) == list(run.metrics.columns) == mf.metrics_columns()
    for c in r.metrics.columns:
        assert same(r.metrics[c], run.metrics[c]), c
    assert np.array_equal(r.theta, run.params)
    assert r.outcome == run.summary["outcome"] == "loss-target"
    assert r.steps == run.summary["steps"]
    # the known answer: the flow's limit on B has normalized margin 0.5
    assert abs(r.final["normalized_margin"] - 0.5) < 1e-12
    assert r.final["log10_loss"] <= -10000


def test_train_out_runs_the_cli(tmp_path, cli_run_b):
    run = mf.train("builtin:B", "diag:depth=2", out=tmp_path / "B", **B_OPTS)
    ref = mf.read_run(cli_run_b)
    assert isinstance(run, mf.Run) and run.config["version"] == 2
    for c in ref.metrics.columns:
        assert same(run.metrics[c], ref.metrics[c]), c


def test_train_sym4_reaches_the_margin_of_lyu_et_al():
    r = mf.train("builtin:sym4", "relu2:width=20,alpha=0.5", optimizer="flow", init_scale=1e-6,
                 steps=0, until_log10_loss=-1000, snapshots=True)
    gstar = (1 + 0.5) * math.sqrt(5) / 2 / 4  # (1 + alpha) gamma_svm / 4 = 0.41926
    g = r.metrics["normalized_margin"].iloc[-1]
    assert abs(g / gstar - 1) < 1e-4, g
    assert r.snapshots.shape == (len(r.metrics), r.model.n_params)
    assert np.array_equal(r.snapshots[-1], r.theta)


def test_train_errors():
    with pytest.raises(mf.Error) as e:
        mf.train("builtin:B", "diag:depth=2", lr=-1)
    assert e.value.code == _ffi.ERR_INVALID and "lr" in str(e.value)
    with pytest.raises(mf.Error, match="optimizer: expected one of gd, scaled"):
        mf.train("builtin:B", "diag:depth=2", optimizer="adam")
    with pytest.raises(TypeError):
        mf.train("builtin:B", "diag:depth=2", learning_rate=0.1)
    with pytest.raises(mf.Error) as e:
        mf.train("builtin:B", "diag:depth=2", init_file="/nonexistent/params.txt")
    assert "/nonexistent/params.txt" in str(e.value)


def test_a_python_error_in_a_callback_stops_the_run():
    def progress(row, sps):
        raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        mf.train("builtin:sym4", "relu2:width=20,alpha=0.5", optimizer="gd", lr=1e-6,
                 steps=0, wall_seconds=5, progress=progress)


# ------------------------------------------------------------------ analysis

def test_analyze_equals_the_clis_analysis_json(cli_run_b):
    ref = json.load(open(cli_run_b / "analysis.json"))
    a = mf.analyze(mf.read_run(cli_run_b))
    assert a.verdict == ref["verdict"] == "not-local"
    assert a.verdict_reason == ref["verdict_reason"]
    for k in ("gamma", "q_min", "norm", "layer_margin"):
        assert a[k] == ref[k], k
    for k in ("eps", "delta", "euler_lhs", "euler_rhs", "n_active", "n_kinks"):
        assert a.kkt[k] == ref["kkt"][k], k
    assert same(a.kkt["lambda"], ref["kkt"]["lambda"]) and a.kkt["active"] == ref["kkt"]["active"]
    assert same(a.theta_tilde, ref["theta_tilde"])
    assert a["global"].gamma_star == ref["global"]["gamma_star"] == 1.0
    assert a.second_order["min_eig"] == ref["second_order"]["min_eig"]
    # and the same from the in-memory result
    b = mf.analyze(mf.train("builtin:B", "diag:depth=2", **B_OPTS))
    assert b.gamma == a.gamma and b.kkt["eps"] == a.kkt["eps"]


def test_analyze_errors():
    m = mf.Model("diag:depth=2", 2)
    with pytest.raises(ValueError, match="theta"):
        mf.analyze(m, "builtin:B", [1.0, 2.0])
    with pytest.raises(mf.Error) as e:
        mf.analyze(m, "builtin:B", [1.0, 1.0, 1.0, -1.0], kkt_tol=-1)
    assert e.value.code == _ffi.ERR_INVALID and "kkt_tol" in str(e.value)


def test_svm_equals_the_cli():
    ref = json.loads(cli("svm", "--data", "builtin:sym4", "--json").stdout)
    s = mf.svm("builtin:sym4")
    assert s.status == ref["status"] == "solved"
    assert s.gamma == ref["gamma"] and abs(s.gamma - math.sqrt(5) / 2) < 1e-15
    assert same(s.w, ref["w"]) and s.gamma_lower <= s.gamma <= s.gamma_upper * (1 + 1e-15)
    l1 = mf.svm("builtin:B", "l1")
    assert (l1.gamma, l1.gamma_diag2) == (2.0, 1.0) and same(l1.w, [0, 0.5])
    ns = mf.svm(mf.Data(np.array([[0.3, -1.7], [-0.3, 1.7]]), np.array([1, 1])))
    assert ns.status == "nonseparable" and ns.w is None and ns.certificate_norm < 1e-10
    with pytest.raises(mf.Error, match="norm: expected l2 or l1"):
        mf.svm("builtin:sym4", "linf")


def test_global_relu2_certifies_sym4():
    g = mf.global_relu2("builtin:sym4", alpha=0.5)
    gstar = (1 + 0.5) * math.sqrt(5) / 2 / 4
    assert g.upper_certified and g.gamma_lower <= g.gamma_upper
    assert abs(g.gamma_lower / gstar - 1) < 1e-10 and g.gap < 1e-9
    net = mf.Model(g.spec, 2)
    q = net.forward(g.theta, mf.Data("builtin:sym4").x)[:, 0] * mf.Data("builtin:sym4").y
    assert abs(q.min() - g.q_min) < 1e-15
    with pytest.raises(mf.Error) as e:
        mf.global_relu2("builtin:sym4", alpha=1.0)
    assert "alpha" in str(e.value)


def test_maxmargin_is_a_search():
    r = mf.maxmargin("builtin:B", "diag:depth=2", starts=4)
    assert r.kind.startswith("search") and r.starts == 4
    assert abs(r.best_gamma - 1.0) < 1e-6  # case B's global optimum


# ------------------------------------------------------------------ files

def test_read_run(cli_run_b):
    run = mf.read_run(cli_run_b)
    assert run.model_spec == "diag:depth=2" and run.data_spec == "builtin:B"
    assert run.summary["format"] == "marginflow-summary" and run.analysis["verdict"]
    assert run.metrics["step"].dtype == np.int64 and len(run.params) == 4
    assert math.isnan(run.metrics["log10_time"].iloc[0])  # t = 0: absent
    assert run.model().n_params == 4 and run.data().n == 1
    with pytest.raises(mf.Error, match="not a run directory"):
        mf.read_run(cli_run_b.parent)


def test_read_sweep(tmp_path):
    g = tmp_path / "g.json"
    g.write_text(json.dumps({"name": "py", "base": {"data": "builtin:B", "model": "diag:depth=2",
                             "init": {"kind": "gauss", "scale": "{s}"}, "optimizer": "scaled",
                             "steps": 2000, "until_log10_loss": -50},
                             "axes": [{"name": "s", "values": [0.5, 1]}]}))
    with pytest.raises(mf.Error, match="no results.csv"):
        mf.read_sweep(tmp_path / "sw")
    cli("sweep", g, "--out", tmp_path / "sw", "-q")
    cli("sweep-report", tmp_path / "sw", "-q")
    r = mf.read_sweep(tmp_path / "sw")
    assert list(r["s"]) == [0.5, 1.0] and list(r["status"]) == ["finished"] * 2


def test_the_example_runs():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    p = subprocess.run(["python3" if not os.environ.get("PYTHON") else os.environ["PYTHON"],
                        os.path.join(ROOT, "python", "examples", "margins.py")],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert re.search(r"case B: gamma = 0\.500000 .* verdict not-local, gamma\* = 1", p.stdout)
    assert re.search(r"sym4: gamma = 0\.4192\d+, certified gamma\* in \[0\.419263", p.stdout)
