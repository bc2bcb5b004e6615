"""marginflow from Python: train small homogeneous networks to extreme losses
and certify what the limit is, with numpy arrays in and out.

    import marginflow as mf
    data = mf.Data(x, y)                         # numpy: x [n, d], y in {-1, +1}
    run = mf.train(data, model="relu2:width=20,alpha=0.5", optimizer="flow",
                   init_scale=1e-6, steps=0, until_log10_loss=-1000)
    run.metrics                                  # a pandas DataFrame: metrics.csv's columns
    run.theta                                    # the final parameters
    a = mf.analyze(run)                          # KKT certificate and verdict
    mf.svm(data).gamma, mf.global_relu2(data, alpha=0.5).gamma_lower
    mf.read_run("runs/B")                        # a run directory of the CLI

The numbers are the C library's (libmarginflow.so, loaded by ctypes; see
marginflow._ffi for which file), so a run trained here has exactly the rows
of `marginflow train` with the same options (the keyword arguments of
train() are the CLI's options with - as _). Errors are marginflow.Error,
carrying the library's sentence. Conventions (docs/theory.md): the loss is
the SUM over samples, kept as log Loss; t is the gradient-flow time of that
sum.
"""
import ctypes
import math
import os
import shutil
import subprocess

import numpy as np

from . import _ffi
from ._ffi import Error
from ._runs import Run, _frame, _row_values, read_run, read_sweep

__all__ = ["Error", "Data", "Model", "TrainResult", "Result", "Run", "train", "analyze", "svm",
           "maxmargin", "global_relu2", "read_run", "read_sweep", "version", "metrics_columns"]

C = ctypes
_dp = C.POINTER(C.c_double)
Error.__module__ = __name__  # shown as marginflow.Error


def version():
    """The library's version (MF_VERSION of the loaded libmarginflow)."""
    return _ffi.lib().mf_version().decode()


def _err():
    return _ffi.mf_err()


def _as_doubles(a, shape=None, what="array"):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if shape is not None and a.shape != shape:
        raise ValueError("%s: expected shape %s, got %s" % (what, shape, a.shape))
    return a


def _ptr(a):
    return a.ctypes.data_as(_dp)


def _copy(ptr, n):
    """n doubles from a C pointer as a new numpy array (None for NULL)."""
    if not ptr:
        return None
    return np.ctypeslib.as_array(ptr, shape=(n,)).copy() if n else np.zeros(0)


def _num(v):
    """A C double for a user: None when not finite (absent, as in JSON)."""
    return v if math.isfinite(v) else None


class Result(dict):
    """A result: a dict (keys as in the CLI's JSON files) whose keys are also
    attributes (r.gamma is r["gamma"])."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


# ------------------------------------------------------------------ data

class Data:
    """A labelled data set in the library (mf_data).

    Data(x, y): x [n, d] numbers, y [n] labels, all -1/+1 (binary) or all
    class indices 0..C-1 (multi-class, every class present).
    Data("builtin:B"), Data("gauss:n=200,d=20,margin=0.1,seed=3"),
    Data("file.svm") or Data("file.csv", format="csv"): a data spec, as the
    CLI's --data.
    """

    def __init__(self, x, y=None, *, format=None, desc=None):
        lib = _ffi.lib()
        _ffi.check(_ffi.mf_data)
        self._p = C.POINTER(_ffi.mf_data)()
        e = _err()
        if isinstance(x, (str, os.PathLike)):
            if y is not None:
                raise TypeError("Data(spec) takes no labels; give Data(x, y) for arrays")
            self.spec = os.fspath(x)
            rc = lib.mf_data_from_spec(self.spec.encode(), format.encode() if format else None,
                                       C.byref(self._p), C.byref(e))
            _ffi.raise_for(rc, e)
            return
        xa = np.asarray(x, dtype=np.float64)
        if xa.ndim != 2:
            raise ValueError("Data: x must be a 2-d array [n, d], got shape %s" % (xa.shape,))
        n, d = xa.shape
        if y is None:
            raise TypeError("Data(x, y): the labels y are required")
        ya = np.asarray(y)
        if ya.shape != (n,):
            raise ValueError("Data: y must have shape (%d,) for x of shape %s, got %s"
                             % (n, xa.shape, ya.shape))
        if not np.all(np.isfinite(xa)):
            raise ValueError("Data: x holds NaN or infinite values")
        yf = ya.astype(np.float64)
        binary = np.all((yf == 1) | (yf == -1))
        if not binary and not np.all((yf >= 0) & (yf == np.round(yf))):
            raise ValueError("Data: labels must be all -1/+1 (binary) or all class indices "
                             "0..C-1 (multi-class)")
        C_ = 0 if binary else int(yf.max()) + 1
        if C_ == 1:
            raise ValueError("Data: multi-class labels need at least 2 classes")
        if C_ > 1 and len(np.unique(yf)) != C_:
            raise ValueError("Data: classes 0..%d must all be present (got %s)"
                             % (C_ - 1, sorted(set(int(v) for v in yf))))
        rc = lib.mf_data_new(n, d, C_, C.byref(self._p), C.byref(e))
        _ffi.raise_for(rc, e)
        s = self._p.contents
        if n * d:
            C.memmove(s.x, _ptr(np.ascontiguousarray(xa)), 8 * n * d)
        if binary:
            C.memmove(s.y, _ptr(np.ascontiguousarray(yf)), 8 * n)
        else:
            ci = np.ascontiguousarray(yf.astype(np.intc))
            C.memmove(s.cls, ci.ctypes.data, ci.nbytes)
        s.desc = (desc or "numpy (%d x %d)" % (n, d)).encode()[:_ffi.SPEC_LEN - 1]
        self.spec = None

    def __del__(self):
        p = getattr(self, "_p", None)
        if p and _ffi._lib is not None:
            _ffi._lib.mf_data_free(p)
            self._p = None

    @property
    def n(self):
        return self._p.contents.n

    @property
    def d(self):
        return self._p.contents.d

    @property
    def num_classes(self):
        return self._p.contents.num_classes

    @property
    def desc(self):
        return _ffi.text(self._p.contents.desc)

    @property
    def x(self):
        """The features [n, d] (a copy)."""
        s = self._p.contents
        return _copy(s.x, s.n * s.d).reshape(s.n, s.d)

    @property
    def y(self):
        """The labels [n]: -1/+1 (binary) or class indices."""
        s = self._p.contents
        if s.num_classes == 0:
            return _copy(s.y, s.n)
        return np.ctypeslib.as_array(s.cls, shape=(s.n,)).copy()

    def hash(self):
        """mf_data_hash: the CRC-32 fingerprint a run's config.json records."""
        return "%08x" % _ffi.lib().mf_data_hash(self._p)

    def save(self, path):
        """Write the set as CSV (label first, %.17g): Data(path) reads it back exactly."""
        x, y = self.x, self.y
        with open(path, "w") as f:
            for i in range(self.n):
                lab = "%d" % int(y[i]) if self.num_classes else ("+1" if y[i] > 0 else "-1")
                f.write(",".join([lab] + ["%.17g" % v for v in x[i]]) + "\n")

    def __repr__(self):
        return "Data(%s: n=%d, d=%d%s)" % (self.desc, self.n, self.d,
                                            ", %d classes" % self.num_classes if self.num_classes
                                            else "")


def _data(d, format=None):
    return d if isinstance(d, Data) else Data(d, format=format)


# ------------------------------------------------------------------ models

class Model:
    """A model (mf_model) for data of dimension d: Model("relu2:width=20,alpha=0.5", data)
    or Model(spec, d, num_classes=0). Specs are the CLI's --model."""

    def __init__(self, spec, data, num_classes=0):
        lib = _ffi.lib()
        _ffi.check(_ffi.mf_model)
        if isinstance(data, Data):
            d, num_classes = data.d, data.num_classes
        else:
            d = int(data)
        self._p = C.POINTER(_ffi.mf_model)()
        e = _err()
        rc = lib.mf_model_parse(spec.encode(), d, num_classes, C.byref(self._p), C.byref(e))
        _ffi.raise_for(rc, e)
        self._w = C.c_void_p()
        self._wn = 0

    def __del__(self):
        if _ffi._lib is None:
            return
        if getattr(self, "_w", None):
            _ffi._lib.mf_work_free(self._w)
        if getattr(self, "_p", None):
            _ffi._lib.mf_model_free(self._p)

    m = property(lambda self: self._p.contents)
    spec = property(lambda self: _ffi.text(self.m.spec), doc="the canonical spec")
    n_params = property(lambda self: self.m.n_params)
    degree = property(lambda self: self.m.degree, doc="L, the homogeneity order")
    homogeneous = property(lambda self: bool(self.m.homogeneous))
    d = property(lambda self: self.m.d)
    n_out = property(lambda self: self.m.n_out)

    @property
    def layers(self):
        """[(name, offset, rows, cols)]: the named views into theta."""
        m = self.m
        return [(_ffi.text(m.layers[i].name), m.layers[i].offset, m.layers[i].rows,
                 m.layers[i].cols) for i in range(m.n_layers)]

    def layout(self):
        """The parameter order ("index name[row][col]" lines), as `marginflow layout`."""
        lib = _ffi.lib()
        n = lib.mf_model_layout(self._p, None, 0)
        buf = C.create_string_buffer(n + 1)
        lib.mf_model_layout(self._p, buf, n + 1)
        return buf.value.decode()

    def init(self, kind="gauss", scale=0.1, seed=1):
        """Initial parameters as `marginflow train --init KIND --init-scale S --seed N`."""
        lib = _ffi.lib()
        rng = _ffi.mf_rng()
        lib.mf_rng_seed(C.byref(rng), seed)
        th = np.zeros(self.n_params)
        e = _err()
        rc = lib.mf_model_init(self._p, kind.encode(), scale, C.byref(rng), _ptr(th), C.byref(e))
        _ffi.raise_for(rc, e)
        return th

    def _theta(self, theta):
        return _as_doubles(theta, (self.n_params,), "theta (%s has %d parameters)"
                           % (self.spec, self.n_params))

    def _work(self, n):
        lib = _ffi.lib()
        if n > self._wn:
            if self._w:
                lib.mf_work_free(self._w)
                self._w = C.c_void_p()
            e = _err()
            rc = lib.mf_work_new(self._p, max(n, 1), C.byref(self._w), C.byref(e))
            _ffi.raise_for(rc, e)
            self._wn = max(n, 1)
        return self._w

    def _x(self, x):
        xa = _as_doubles(x)
        if xa.ndim == 1:
            xa = xa.reshape(1, -1)
        if xa.ndim != 2 or xa.shape[1] != self.d:
            raise ValueError("x: expected shape (n, %d) for %s, got %s" % (self.d, self.spec,
                                                                          np.shape(x)))
        return np.ascontiguousarray(xa)

    def forward(self, theta, x):
        """Phi(theta; x) for the rows of x [n, d]: [n, n_out]."""
        th, xa = self._theta(theta), self._x(x)
        n = xa.shape[0]
        out = np.zeros((n, self.n_out))
        rc = _ffi.lib().mf_model_forward(self._p, self._work(n), _ptr(th), _ptr(xa), n, _ptr(out))
        if rc:
            raise Error(rc, "mf_model_forward refused its arguments (%s)" % _ffi.strerror(rc))
        return out

    def backward(self, theta, x, dout):
        """sum_i J_i^T dout_i with J_i = d Phi(theta; x_i) / d theta: [n_params]."""
        th, xa = self._theta(theta), self._x(x)
        n = xa.shape[0]
        do = _as_doubles(dout).reshape(n, self.n_out) if np.size(dout) == n * self.n_out else None
        if do is None:
            raise ValueError("dout: expected %d values ([n, n_out])" % (n * self.n_out))
        do = np.ascontiguousarray(do)
        out = np.zeros((n, self.n_out))
        grad = np.zeros(self.n_params)
        lib = _ffi.lib()
        w = self._work(n)
        rc = lib.mf_model_forward(self._p, w, _ptr(th), _ptr(xa), n, _ptr(out))
        if not rc:
            rc = lib.mf_model_backward(self._p, w, _ptr(th), _ptr(xa), n, _ptr(do), _ptr(grad))
        if rc:
            raise Error(rc, "mf_model_forward/backward refused their arguments (%s)"
                        % _ffi.strerror(rc))
        return grad

    def norm(self, theta, layer=None):
        """||theta||, or the norm of one layer (an index into self.layers)."""
        th = self._theta(theta)
        if layer is None:
            return _ffi.lib().mf_param_norm(self._p, _ptr(th))
        return _ffi.lib().mf_layer_norm(self._p, _ptr(th), layer)

    def __repr__(self):
        return "Model(%s: %d parameters, L = %d)" % (self.spec, self.n_params, self.degree)


def _model(m, data):
    return m if isinstance(m, Model) else Model(m, data)


# ------------------------------------------------------------------ training

def metrics_columns():
    """The columns of a metrics row (mf_metrics_csv_header: metrics.csv's header)."""
    return _ffi.lib().mf_metrics_csv_header().decode().split(",")


class TrainResult:
    """What train() returns.

    metrics   the logged rows (a pandas DataFrame with metrics.csv's columns;
              a dict of numpy arrays when pandas is missing)
    theta     the final parameters [n_params]
    model, data, loss   what was trained (for analyze(result))
    outcome   "loss-target", "step-budget", "time-target", "wall-budget",
              "non-finite", "stalled", "interrupted"; reason (stalled: why)
    steps, rejected, wall_seconds, steps_per_second, final (the last row as a dict)
    snapshots theta at every logged row [rows, n_params] (train(snapshots=True))
    log       the library's messages [(level, text)]
    """

    def __repr__(self):
        return "TrainResult(%s, %s after %d steps, final normalized margin %s)" % (
            self.model.spec, self.outcome, self.steps, self.final.get("normalized_margin"))


_LOSSES = ("exp", "logistic", "ce")
_OPTIMIZERS = ("gd", "scaled", "lyu-li", "flow", "sgd")


def _settings(loss, optimizer, lr, tol, max_rel_step, batch, seed, steps, until_log10_loss,
              until_time, wall_seconds, log_points, log_horizon):
    lib = _ffi.lib()
    s = _ffi.check(_ffi.mf_train_settings)()
    lib.mf_train_settings_default(C.byref(s))
    k = C.c_int()
    if lib.mf_loss_from_name(str(loss).encode(), C.byref(k)):
        raise Error(_ffi.ERR_INVALID, "loss: expected one of %s, got %r" % (", ".join(_LOSSES), loss))
    s.loss = k.value
    if lib.mf_optimizer_from_name(str(optimizer).encode(), C.byref(k)):
        raise Error(_ffi.ERR_INVALID, "optimizer: expected one of %s, got %r"
                    % (", ".join(_OPTIMIZERS), optimizer))
    s.optimizer = k.value
    s.lr, s.tol, s.max_rel_step, s.batch, s.seed = lr, tol, max_rel_step, batch, seed
    s.max_steps = steps
    off = lambda v: math.nan if v is None else float(v)
    s.until_log10_loss, s.until_time, s.wall_seconds = off(until_log10_loss), off(until_time), \
        off(wall_seconds)
    s.log_points = log_points
    # the CLI's rule: the schedule spreads over the step budget, or 10^6 steps
    s.log_horizon = log_horizon if log_horizon else (steps if steps > 1 else 1000000)
    _ffi.raise_invalid(lib.mf_train_settings_validate(C.byref(s)))
    return s


def _cli():
    """The marginflow CLI next to the library, $MARGINFLOW_CLI, or on PATH."""
    env = os.environ.get("MARGINFLOW_CLI")
    if env:
        return env
    near = os.path.join(os.path.dirname(_ffi.library_path()), "marginflow")
    if os.path.isfile(near) and os.access(near, os.X_OK):
        return near
    found = shutil.which("marginflow")
    if found:
        return found
    raise Error(_ffi.ERR_UNSUPPORTED, "train(out=...): the marginflow command was not found next "
                "to %s nor on PATH; set MARGINFLOW_CLI" % _ffi.library_path())


def train(data, model="linear", *, loss="exp", optimizer="lyu-li", lr=0.1, tol=1e-6,
          max_rel_step=0.1, batch=32, seed=1, steps=10000, until_log10_loss=None,
          until_time=None, wall_seconds=None, log_points=200, log_horizon=None, init="gauss",
          init_scale=0.1, init_params=None, init_file=None, format=None, snapshots=False,
          progress=None, out=None):
    """Train model on data: the options of `marginflow train` as keyword
    arguments, with the same defaults (None = off for the stopping
    criteria; steps=0 = unlimited; log_horizon None = steps, or 10^6 when
    steps is 0). init_params: the values in the order of Model.layout()
    (overrides init/init_scale), init_file: a params file.

    progress: a callable(metrics_row_dict, steps_per_second) called about
    twice a second. Ctrl-C stops the run at its next logged row and raises
    KeyboardInterrupt.

    out=DIR runs the CLI instead (`marginflow train ... --out DIR`: a run
    directory with metrics.csv, params.txt, checkpoint.bin, ...) and returns
    read_run(DIR); data must then be a spec or a file path.
    """
    if out is not None:
        return _train_cli(data, model, out, locals())
    data = _data(data, format)
    model = _model(model, data)
    lib = _ffi.lib()
    _ffi.check(_ffi.mf_train_state)
    _ffi.check(_ffi.mf_callbacks)
    _ffi.check(_ffi.mf_train_result)
    _ffi.check(_ffi.mf_metrics)
    s = _settings(loss, optimizer, lr, tol, max_rel_step, batch, seed, steps, until_log10_loss,
                  until_time, wall_seconds, log_points, log_horizon)
    if init_params is not None:
        theta0 = model._theta(init_params)
    elif init_file is not None:
        theta0 = np.zeros(model.n_params)
        e = _err()
        rc = lib.mf_params_read_for(os.fspath(init_file).encode(), model._p, _ptr(theta0),
                                    C.byref(e))
        _ffi.raise_for(rc, e)
    else:
        theta0 = model.init(init, init_scale, seed)
    st = C.POINTER(_ffi.mf_train_state)()
    e = _err()
    _ffi.raise_for(lib.mf_train_state_new(model.n_params, C.byref(st), C.byref(e)), e)
    cols = metrics_columns()
    rows, snaps, log = [], [], []
    state = {"interrupt": False, "error": None}
    buf = C.create_string_buffer(1024)

    def on_metrics(user, m):
        try:
            lib.mf_metrics_csv_row(m, buf, len(buf))
            rows.append(_row_values(buf.value.decode()))
            return 1 if state["interrupt"] else 0
        except KeyboardInterrupt:
            state["interrupt"] = True
            return 1
        except BaseException as ex:  # an error in Python stops the run, raised after
            state["error"] = ex
            return 1

    def on_snapshot(user, m, th):
        try:
            snaps.append(np.ctypeslib.as_array(th, shape=(model.n_params,)).copy())
            return 0
        except KeyboardInterrupt:
            state["interrupt"] = True
            return 1

    def on_progress(user, m, sps):
        try:
            if progress is not None:
                lib.mf_metrics_csv_row(m, buf, len(buf))
                progress(dict(zip(cols, _row_values(buf.value.decode()))), sps)
        except KeyboardInterrupt:
            state["interrupt"] = True
        except BaseException as ex:
            state["error"] = ex
            state["interrupt"] = True

    def on_log(user, level, msg):
        log.append((level, _ffi.text(msg)))

    cb = _ffi.mf_callbacks()
    keep = (_ffi.METRICS_FN(on_metrics), _ffi.SNAPSHOT_FN(on_snapshot),
            _ffi.PROGRESS_FN(on_progress), _ffi.LOG_FN(on_log))
    cb.on_metrics, cb.on_progress, cb.log = keep[0], keep[2], keep[3]
    if snapshots:
        cb.on_snapshot = keep[1]
    cb.progress_seconds = 0.5
    res = _ffi.mf_train_result()
    try:
        C.memmove(st.contents.theta, _ptr(theta0), 8 * model.n_params)
        rc = lib.mf_train(model._p, data._p, C.byref(s), st, C.byref(cb), C.byref(res), C.byref(e))
        theta = _copy(st.contents.theta, model.n_params)
    finally:
        lib.mf_train_state_free(st)
    if state["error"] is not None:
        raise state["error"]
    if state["interrupt"]:
        raise KeyboardInterrupt("marginflow.train interrupted at step %d" % len(rows))
    _ffi.raise_for(rc, e)
    r = TrainResult()
    r.metrics = _frame(cols, rows)
    r.theta, r.model, r.data = theta, model, data
    r.loss = _ffi.text(lib.mf_loss_name(s.loss))
    r.outcome = _ffi.text(lib.mf_outcome_name(res.outcome))
    r.reason = _ffi.text(res.reason)
    r.steps, r.rejected = res.steps, res.rejected
    r.wall_seconds, r.steps_per_second = res.wall_seconds, res.steps_per_second
    lib.mf_metrics_csv_row(C.byref(res.final), buf, len(buf))
    r.final = dict(zip(cols, _row_values(buf.value.decode())))
    r.snapshots = np.array(snaps) if snapshots else None
    r.log = log
    return r


def _train_cli(data, model, out, kw):
    """train(out=DIR): the same options as `marginflow train` arguments."""
    if isinstance(data, Data):
        if data.spec is None:
            raise Error(_ffi.ERR_UNSUPPORTED, "train(out=...) runs the CLI, which reads data from "
                        "a spec or a file: save the arrays with Data.save(path) and pass the path")
        data = data.spec
    if isinstance(model, Model):
        model = model.spec
    argv = [_cli(), "train", "--data", os.fspath(data), "--model", model, "--out", os.fspath(out),
            "-q"]
    flags = {"loss": "--loss", "optimizer": "--optimizer", "lr": "--lr", "tol": "--tol",
             "max_rel_step": "--max-rel-step", "batch": "--batch", "seed": "--seed",
             "steps": "--steps", "until_log10_loss": "--until-log10-loss",
             "until_time": "--until-time", "wall_seconds": "--wall-seconds",
             "log_points": "--log-points", "log_horizon": "--log-horizon", "init": "--init",
             "init_scale": "--init-scale", "init_file": "--init-file", "format": "--format"}
    for k, opt in flags.items():
        v = kw[k]
        if v is None or (k == "init_scale" and kw["init_params"] is not None):
            continue
        if k == "init" and (kw["init_params"] is not None or kw["init_file"] is not None):
            continue
        argv += [opt, repr(v) if isinstance(v, float) else str(v)]
    if kw["init_params"] is not None:
        argv += ["--init-params", ",".join(repr(float(v)) for v in kw["init_params"])]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode not in (0, 4):
        raise Error(_ffi.ERR_INVALID if p.returncode == 2 else _ffi.ERR_IO,
                    p.stderr.strip().replace("marginflow: ", "", 1) or "marginflow train failed")
    return read_run(out)


# ------------------------------------------------------------------ analysis

def _analysis_dict(a, lib):
    """mf_analysis as a Result with the keys of analysis.json."""
    n, P = a.n, a.n_params
    r = Result(verdict=_ffi.text(lib.mf_verdict_name(a.verdict)),
               verdict_reason=_ffi.text(a.verdict_reason), n=n, n_params=P, degree=a.degree,
               homogeneous=bool(a.homogeneous), q_min=_num(a.q_min), norm=_num(a.norm),
               gamma=_num(a.gamma), layer_margin=_num(a.layer_margin),
               theta_tilde=_copy(a.theta_tilde, P))
    active = np.ctypeslib.as_array(a.active, shape=(n,)) if a.active and n else np.zeros(0)
    r["kkt"] = Result(eps=_num(a.eps), delta=_num(a.delta), euler_lhs=_num(a.euler_lhs),
                      euler_rhs=_num(a.euler_rhs), n_active=a.n_active, n_kinks=a.n_kinks,
                      **{"lambda": _copy(a.lambda_, n)},
                      active=[int(i) for i in np.nonzero(active)[0]])
    r["lyu_li"] = Result(beta=_num(a.ll_beta), eps=_num(a.ll_eps), delta=_num(a.ll_delta))
    r["global"] = Result(known=bool(a.has_global), gamma_star=_num(a.gamma_star),
                         source=_ffi.text(a.global_source) if a.has_global else None,
                         ratio=_num(a.ratio))
    r["second_order"] = Result(done=bool(a.second_order_done),
                               hessian_method=_ffi.text(a.hessian_method)
                               if a.second_order_done else None,
                               min_eig=_num(a.min_eig), dir=_copy(a.dir, P),
                               gain=[_num(v) for v in a.gain])
    if a.directional:
        dr = a.directional.contents
        r["directional"] = Result(searched=bool(dr.searched), n_zero=dr.n_zero,
                                  n_patterns=dr.n_patterns, found=bool(dr.found),
                                  best_inner=_num(dr.best_inner), d=_copy(dr.d, P),
                                  gain=[_num(v) for v in dr.gain])
    else:
        r["directional"] = None
    if a.local:
        lr = a.local.contents
        k = lr.n_radii
        r["local_search"] = Result(radii=list(lr.radii[:k]), trials=lr.trials, seed=lr.seed,
                                   gamma0=_num(lr.gamma0),
                                   best_gamma=[_num(v) for v in lr.best_gamma[:k]],
                                   best_gain=_num(lr.best_gain), evaluations=lr.evaluations,
                                   failures=lr.failures, gamma_polished=_num(a.gamma_polished),
                                   best_theta=_copy(lr.best_theta, P))
    else:
        r["local_search"] = None
    r["layer"] = Result(layer=a.layer, opt=_num(a.layer_opt), value=_num(a.layer_value))
    s = a.settings
    r["settings"] = Result(kkt_tol=s.kkt_tol, act_tol=s.act_tol, zero_tol=s.zero_tol,
                           global_tol=s.global_tol, hess_h=s.hess_h, local_trials=s.local_trials,
                           seed=s.seed, max_patterns=s.max_patterns, layer=s.layer)
    return r


def analyze(run, data=None, theta=None, *, loss=None, layer=-1, kkt_tol=None, act_tol=None,
            zero_tol=None, global_tol=None, trials=None, seed=None, max_patterns=None):
    """Is theta a KKT point of the max-margin problem (P), and a global or
    local optimum? As `marginflow analyze`: analyze(train_result),
    analyze(read_run(DIR)) or analyze("DIR"), or analyze(model, data,
    theta, loss="exp"). The settings default to the library's (the CLI's).
    Returns a Result with the keys of analysis.json (verdict,
    verdict_reason, gamma, kkt.eps, global.gamma_star, ...)."""
    if isinstance(run, (str, os.PathLike)):
        run = read_run(run)
    if isinstance(run, TrainResult):
        model, data, theta = run.model, run.data, run.theta
        loss = loss or run.loss
    elif isinstance(run, Run):
        data = run.data()
        model, theta = run.model(data), run.params
        loss = loss or run.config.get("settings", {}).get("loss")
    else:
        if data is None or theta is None:
            raise TypeError("analyze(model, data, theta): data and theta are required")
        data = _data(data)
        model = _model(run, data)
    lib = _ffi.lib()
    _ffi.check(_ffi.mf_analysis)
    _ffi.check(_ffi.mf_directional_result)
    _ffi.check(_ffi.mf_local_result)
    s = _ffi.check(_ffi.mf_analyze_settings)()
    lib.mf_analyze_settings_default(C.byref(s))
    for k, v in (("kkt_tol", kkt_tol), ("act_tol", act_tol), ("zero_tol", zero_tol),
                 ("global_tol", global_tol), ("local_trials", trials), ("seed", seed),
                 ("max_patterns", max_patterns)):
        if v is not None:
            setattr(s, k, v)
    s.layer = layer
    _ffi.raise_invalid(lib.mf_analyze_settings_validate(C.byref(s)))
    k = C.c_int()
    if lib.mf_loss_from_name((loss or "exp").encode(), C.byref(k)):
        raise Error(_ffi.ERR_INVALID, "loss: expected exp, logistic or ce, got %r" % loss)
    th = model._theta(theta)
    out = C.POINTER(_ffi.mf_analysis)()
    e = _err()
    rc = lib.mf_analyze(model._p, data._p, _ptr(th), k.value, C.byref(s), C.byref(out), C.byref(e))
    _ffi.raise_for(rc, e)
    try:
        return _analysis_dict(out.contents, lib)
    finally:
        lib.mf_analysis_free(out)


def svm(data, norm="l2", *, sep_tol=None, support_tol=None, active_tol=None, max_iter=None,
        polish=None, format=None):
    """The exact max-margin reference of `marginflow svm`: the hard-margin SVM
    through the origin (norm "l2": gamma = gamma_svm = 1 / ||w||) or the
    l1-margin LP (norm "l1": gamma = gamma_l1, gamma_diag2 = the depth-2
    diagonal net's optimum). A non-separable set is an answer (status
    "nonseparable" with its certificate), not an error."""
    data = _data(data, format)
    lib = _ffi.lib()
    s = _ffi.check(_ffi.mf_svm_settings)()
    _ffi.check(_ffi.mf_svm_result)
    lib.mf_svm_settings_default(C.byref(s))
    for k, v in (("sep_tol", sep_tol), ("support_tol", support_tol), ("active_tol", active_tol),
                 ("max_iter", max_iter), ("polish", None if polish is None else int(polish))):
        if v is not None:
            setattr(s, k, v)
    _ffi.raise_invalid(lib.mf_svm_settings_validate(C.byref(s)))
    if norm not in ("l2", "l1"):
        raise Error(_ffi.ERR_INVALID, "norm: expected l2 or l1, got %r" % (norm,))
    out = C.POINTER(_ffi.mf_svm_result)()
    e = _err()
    rc = lib.mf_svm_solve(data._p, 0 if norm == "l2" else 1, C.byref(s), C.byref(out), C.byref(e))
    _ffi.raise_for(rc, e)
    try:
        r = out.contents
        sup = np.ctypeslib.as_array(r.support, shape=(r.n_support,)).tolist() if r.support and \
            r.n_support else []
        return Result(status=_ffi.text(lib.mf_svm_status_name(r.status)), norm=norm, n=r.n, d=r.d,
                      gamma=_num(r.gamma), gamma_diag2=_num(r.gamma_diag2) if norm == "l1" else None,
                      gamma_lower=_num(r.gamma_lower), gamma_upper=_num(r.gamma_upper),
                      w=_copy(r.w, r.d), alpha=_copy(r.alpha, r.n), support=sup,
                      n_active=r.n_active, q_min=_num(r.q_min),
                      residuals=Result(primal=r.primal_residual, dual=r.dual_residual,
                                       complementarity=r.complementarity, gap=r.gap,
                                       kkt=r.kkt_residual),
                      iterations=r.iterations, polished=bool(r.polished),
                      certificate=_copy(r.certificate, r.n),
                      certificate_norm=_num(r.certificate_norm) if r.certificate else None)
    finally:
        lib.mf_svm_result_free(out)


def maxmargin(data, model, *, starts=20, seed=1, rel_tol=1e-6, format=None):
    """`marginflow maxmargin`: SLSQP on (P) from `starts` random inits. A SEARCH,
    not a certificate: best_gamma, best_theta, the distinct local values
    with their counts, failures (starts that reached no feasible point)."""
    data = _data(data, format)
    model = _model(model, data)
    lib = _ffi.lib()
    _ffi.check(_ffi.mf_maxmargin_result)
    out = C.POINTER(_ffi.mf_maxmargin_result)()
    e = _err()
    rc = lib.mf_maxmargin(model._p, data._p, starts, seed, rel_tol, C.byref(out), C.byref(e))
    _ffi.raise_for(rc, e)
    try:
        r = out.contents
        k = r.n_values
        return Result(kind="search (not a certificate)", starts=r.starts, seed=r.seed,
                      best_gamma=_num(r.best_gamma) if k else None,
                      best_theta=_copy(r.best_theta, model.n_params) if k else None,
                      values=_copy(r.values, k) if k else np.zeros(0),
                      counts=np.ctypeslib.as_array(r.counts, shape=(k,)).tolist() if k else [],
                      failures=r.failures)
    finally:
        lib.mf_maxmargin_result_free(out)


def global_relu2(data, alpha=0.0, *, sample=None, max_patterns=None, seed=None, tol=None,
                 max_iter=None, max_seconds=None, format=None):
    """`marginflow global`: the certified global optimum gamma* of a bias-free
    two-layer (leaky) ReLU net over every width (docs/theory.md, section on
    two-layer ReLU nets), as the bracket gamma_lower <= gamma* <=
    gamma_upper (upper_certified says whether the upper bound is proved),
    with the optimal network (spec, theta) and the dual certificate."""
    data = _data(data, format)
    model = Model("relu2:width=1,alpha=%r" % float(alpha), data)
    lib = _ffi.lib()
    s = _ffi.check(_ffi.mf_global_settings)()
    _ffi.check(_ffi.mf_global_result)
    lib.mf_global_settings_default(C.byref(s))
    for k, v in (("sample", sample), ("max_patterns", max_patterns), ("seed", seed), ("tol", tol),
                 ("max_iter", max_iter), ("max_seconds", max_seconds)):
        if v is not None:
            setattr(s, k, v)
    _ffi.raise_invalid(lib.mf_global_settings_validate(C.byref(s)))
    out = C.POINTER(_ffi.mf_global_result)()
    e = _err()
    rc = lib.mf_global_relu2(model._p, data._p, C.byref(s), C.byref(out), C.byref(e))
    _ffi.raise_for(rc, e)
    try:
        r = out.contents
        return Result(n=r.n, d=r.d, alpha=r.alpha, gamma=_num(r.gamma),
                      gamma_lower=_num(r.gamma_lower), gamma_upper=_num(r.gamma_upper),
                      upper_certified=bool(r.upper_certified), gap=_num(r.gap),
                      spec=_ffi.text(r.spec), width=r.width, theta=_copy(r.theta, r.n_params),
                      q_min=_num(r.q_min), path_norm=_num(r.path_norm),
                      **{"lambda": _copy(r.lambda_, r.n)}, rho=_num(r.rho),
                      n_support=r.n_support, enumerated=bool(r.enumerated),
                      n_patterns=r.n_patterns, solver=_ffi.text(r.solver),
                      solver_status=r.solver_status, iterations=r.iterations)
    finally:
        lib.mf_global_result_free(out)
