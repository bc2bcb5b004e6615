"""Reading what the marginflow CLI writes: run directories
(docs/run-directory.md: config.json versions 1 and 2, metrics.csv,
params.txt, summary.json, analysis.json, snapshots.csv) and sweep
directories (results.csv of sweep-report). Numbers are read exactly (the
files hold %.17g; an empty field is an absent value: NaN)."""
import json
import math
import os

import numpy as np

from . import _ffi


def _row_values(text):
    return [float(f) if f else math.nan for f in text.split(",")]


def _frame(cols, rows):
    """Rows of floats as a pandas DataFrame (step as integers), or a dict of
    numpy arrays when pandas is missing."""
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), len(cols))
    try:
        import pandas as pd
    except ImportError:
        return {c: arr[:, k] for k, c in enumerate(cols)}
    df = pd.DataFrame(arr, columns=cols)
    if "step" in df:
        df["step"] = df["step"].astype(np.int64)
    return df


def read_csv_numbers(path):
    """A CSV file of numbers with a header line: (columns, rows)."""
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:
        raise _ffi.Error(_ffi.ERR_PARSE, "%s: empty file (no header line)" % path)
    cols = lines[0].split(",")
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        try:
            v = _row_values(line)
        except ValueError:
            raise _ffi.Error(_ffi.ERR_PARSE, "%s:%d: not a row of numbers" % (path, i)) from None
        if len(v) != len(cols):
            raise _ffi.Error(_ffi.ERR_PARSE, "%s:%d: %d fields, the header has %d"
                             % (path, i, len(v), len(cols)))
        rows.append(v)
    return cols, rows


def _json(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise _ffi.Error(_ffi.ERR_PARSE, "%s: not valid JSON (%s)" % (path, e)) from None


def read_params(path, n=None):
    """A params.txt ("# marginflow params v1 n=N model=SPEC", one value a line)
    or a plain list of numbers, as a numpy array; n: the count it must have."""
    vals, head = [], None
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s:
                continue
            if s.startswith("#"):
                if head is None and s.startswith("# marginflow params"):
                    head = s
                continue
            for tok in s.replace(",", " ").split():
                vals.append(float(tok))
    if head is not None:
        fields = dict(t.split("=", 1) for t in head.split()[3:] if "=" in t)
        if "n" in fields and int(fields["n"]) != len(vals):
            raise _ffi.Error(_ffi.ERR_PARSE, "%s: the header says n=%s, the file has %d values"
                             % (path, fields["n"], len(vals)))
    if n is not None and len(vals) != n:
        raise _ffi.Error(_ffi.ERR_FOREIGN, "%s: %d values, the model has %d parameters"
                         % (path, len(vals), n))
    return np.array(vals, dtype=np.float64)


class Run:
    """A run directory read back (read_run(DIR)).

    config    config.json as a dict (format marginflow-config, version 1 or 2)
    metrics   metrics.csv: a pandas DataFrame (or a dict of numpy arrays)
    summary   summary.json (None while the run has not finished)
    analysis  analysis.json of `marginflow analyze` (None when not analyzed)
    params    params.txt as a numpy array (None while unfinished)
    snapshots snapshots.csv (reproduce runs that keep them) or None
    model_spec, data_spec   what the run trained; data() and model() rebuild them
    """

    def __init__(self, d):
        self.dir = os.fspath(d)
        cfg = _json(os.path.join(self.dir, "config.json"))
        if cfg is None:
            raise _ffi.Error(_ffi.ERR_IO, "%s is not a run directory (no config.json)" % self.dir)
        if cfg.get("format") != "marginflow-config" or cfg.get("version") not in (1, 2):
            raise _ffi.Error(_ffi.ERR_PARSE, "%s/config.json: format %r version %r; this reader "
                             "knows marginflow-config versions 1 and 2"
                             % (self.dir, cfg.get("format"), cfg.get("version")))
        self.config = cfg
        data = cfg.get("data") or {}
        self.data_spec = data.get("path") or data.get("spec")
        self.data_format = data.get("format")
        self.model_spec = (cfg.get("model") or {}).get("spec")
        if not self.data_spec or not self.model_spec:
            raise _ffi.Error(_ffi.ERR_PARSE, "%s/config.json: needs data.path or data.spec and "
                             "model.spec" % self.dir)
        self.metrics = _frame(*read_csv_numbers(os.path.join(self.dir, "metrics.csv")))
        self.summary = _json(os.path.join(self.dir, "summary.json"))
        self.analysis = _json(os.path.join(self.dir, "analysis.json"))
        n = (cfg.get("model") or {}).get("n_params")
        p = os.path.join(self.dir, "params.txt")
        self.params = read_params(p, n) if os.path.exists(p) else None
        sp = os.path.join(self.dir, "snapshots.csv")
        self.snapshots = _frame(*read_csv_numbers(sp)) if os.path.exists(sp) else None

    def data(self):
        """The run's data set (loaded again: a file must still be there)."""
        from . import Data
        return Data(self.data_spec, format=self.data_format)

    def model(self, data=None):
        from . import Model
        return Model(self.model_spec, data if data is not None else self.data())

    def __repr__(self):
        out = (self.summary or {}).get("outcome", "unfinished")
        return "Run(%s: %s on %s, %s)" % (self.dir, self.model_spec, self.data_spec, out)


def read_run(d):
    """The run directory d (marginflow train, a reproduce run, or a sweep
    point's run/) as a Run."""
    return Run(d)


def read_sweep(d):
    """results.csv of the sweep directory d (written by `marginflow
    sweep-report d`) as a pandas DataFrame: one row per point, the axes,
    status, outcome, verdict, class and the numeric columns (docs/sweeps.md)."""
    p = os.path.join(os.fspath(d), "results.csv")
    if not os.path.exists(p):
        raise _ffi.Error(_ffi.ERR_IO, "%s: no results.csv; run marginflow sweep-report %s first"
                         % (d, d))
    import pandas as pd
    return pd.read_csv(p, float_precision="round_trip")
