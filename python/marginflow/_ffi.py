"""The C library through ctypes: loading it, the mirrors of the public
structs of include/marginflow.h, the function prototypes, and errors.

Every struct mirrored here is checked against the library it runs with
(mf_sizeof) the first time it is used, and the ABI revision against
MF_ABI_VERSION at load: a library built from another header is refused
with a sentence instead of being read at the wrong offsets. A change to a
public struct in marginflow.h needs the mirror below changed with it (the
pytest suite and this check say which one).

Which library: $MARGINFLOW_LIB (a path), else the build folder of the
source tree this package sits in ($MARGINFLOW_BUILD or build/, i.e.
python/../build/libmarginflow.so.0), else the system's
(ctypes.util.find_library, e.g. after `make install`).
"""
import ctypes
import ctypes.util
import os

from ctypes import (POINTER, Structure, CFUNCTYPE, c_char, c_char_p, c_double, c_int,
                    c_longlong, c_size_t, c_uint32, c_uint64, c_void_p)

ABI_VERSION = 3          # MF_ABI_VERSION this binding was written for
ERR_LEN = 512
SPEC_LEN = 256
MAX_LAYERS = 16
MAX_CNN_LAYERS = 48
MAX_ARCHIVE_EPOCHS = 32
N_GAINS = 4
LOCAL_MAX_RADII = 8
MARGIN_HIST = 40         # MF_MARGIN_HIST

# mf_error codes
OK, ERR_NOMEM, ERR_IO, ERR_PARSE, ERR_INVALID, ERR_DIM, ERR_CORRUPT, ERR_FOREIGN, \
    ERR_UNSUPPORTED, ERR_NONSEPARABLE, ERR_NUMERIC, ERR_CALLBACK = range(12)


class Error(Exception):
    """A marginflow error: .code is the mf_error code, .name its short
    description (mf_strerror), str(e) the library's sentence."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.name = strerror(code) if _lib is not None else str(code)


# ------------------------------------------------------------------ structs

class mf_err(Structure):
    _fields_ = [("code", c_int), ("msg", c_char * ERR_LEN)]


class mf_rng(Structure):
    _fields_ = [("s", c_uint64 * 4)]


class mf_data(Structure):
    _fields_ = [("n", c_int), ("d", c_int), ("num_classes", c_int), ("x", POINTER(c_double)),
                ("y", POINTER(c_double)), ("cls", POINTER(c_int)), ("desc", c_char * SPEC_LEN)]


class mf_layer(Structure):
    _fields_ = [("name", c_char * 16), ("offset", c_size_t), ("rows", c_int), ("cols", c_int)]


class mf_cnn_layer(Structure):
    _fields_ = [("kind", c_char), ("size", c_int), ("k", c_int)]


class mf_model(Structure):
    _fields_ = [("kind", c_int), ("spec", c_char * SPEC_LEN), ("d", c_int), ("n_out", c_int),
                ("degree", c_int), ("homogeneous", c_int), ("depth", c_int), ("width", c_int),
                ("widths", c_int * MAX_LAYERS), ("alpha", c_double), ("bias", c_int),
                ("fix_outer", c_int), ("in_shape", c_int * 3), ("n_cnn", c_int),
                ("cnn", mf_cnn_layer * MAX_CNN_LAYERS), ("cnn_preset", c_int),
                ("cnn_bias", c_int), ("n_params", c_size_t), ("n_layers", c_int),
                ("layers", mf_layer * MAX_LAYERS)]


class mf_metrics(Structure):
    _fields_ = [("step", c_longlong), ("time_log", c_double), ("log10_loss", c_double),
                ("norm", c_double), ("q_min", c_double), ("normalized_margin", c_double),
                ("smoothed_margin", c_double), ("layer_margin", c_double), ("lr", c_double),
                ("train_error", c_double), ("balancedness", c_double), ("beta", c_double),
                ("smoothed_decrease", c_double), ("loss_increase", c_double),
                ("margin_change", c_double), ("epoch", c_longlong),
                ("rejected", c_longlong), ("log10_mean_loss", c_double), ("test_error", c_double),
                ("epoch_seconds", c_double), ("wall_seconds", c_double)]


class mf_train_settings(Structure):
    _fields_ = [("loss", c_int), ("optimizer", c_int), ("lr", c_double), ("tol", c_double),
                ("lr_up", c_double), ("lr_down", c_double), ("max_rel_step", c_double),
                ("batch", c_int), ("max_steps", c_longlong), ("until_log10_loss", c_double),
                ("until_margin_gap", c_double), ("until_time", c_double),
                ("wall_seconds", c_double), ("log_points", c_int),
                ("log_horizon", c_longlong), ("checkpoint_every", c_longlong), ("seed", c_uint64),
                ("max_epochs", c_longlong), ("alpha_min", c_double), ("loss_cap", c_double),
                ("archive_decades", c_double), ("n_archive_epochs", c_int),
                ("archive_epochs", c_longlong * MAX_ARCHIVE_EPOCHS), ("test", POINTER(mf_data))]


class mf_train_state(Structure):
    _fields_ = [("step", c_longlong), ("rejected", c_longlong), ("time_log", c_double),
                ("lr", c_double), ("log_loss", c_double), ("rng", mf_rng), ("n_params", c_size_t),
                ("theta", POINTER(c_double)), ("flow_mode", c_int), ("flow_lambda", c_double),
                ("flow_stiff_steps", c_longlong), ("smoothed_decrease", c_double),
                ("loss_increase", c_double), ("smoothed_decrease_step", c_longlong),
                ("loss_increase_step", c_longlong), ("hist_n", c_int), ("hist_start", c_int),
                ("hist_next_k", c_longlong), ("hist_logt", c_double * MARGIN_HIST),
                ("hist_gamma", c_double * MARGIN_HIST)]


LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
METRICS_FN = CFUNCTYPE(c_int, c_void_p, POINTER(mf_metrics))
SNAPSHOT_FN = CFUNCTYPE(c_int, c_void_p, POINTER(mf_metrics), POINTER(c_double))
PROGRESS_FN = CFUNCTYPE(None, c_void_p, POINTER(mf_metrics), c_double)
CHECKPOINT_FN = CFUNCTYPE(c_int, c_void_p, POINTER(mf_train_state))
STOP_FN = CFUNCTYPE(c_int, c_void_p)
ARCHIVE_FN = CFUNCTYPE(c_int, c_void_p, POINTER(mf_train_state), POINTER(mf_metrics))


class mf_callbacks(Structure):
    _fields_ = [("user", c_void_p), ("log", LOG_FN), ("on_metrics", METRICS_FN),
                ("on_snapshot", SNAPSHOT_FN), ("on_progress", PROGRESS_FN),
                ("progress_seconds", c_double), ("on_checkpoint", CHECKPOINT_FN),
                ("should_stop", STOP_FN), ("on_archive", ARCHIVE_FN)]


class mf_train_result(Structure):
    _fields_ = [("outcome", c_int), ("final", mf_metrics), ("steps", c_longlong),
                ("rejected", c_longlong), ("smoothed_decrease_step", c_longlong),
                ("loss_increase_step", c_longlong), ("stiff_steps", c_longlong),
                ("gradient_evals", c_longlong), ("forward_evals", c_longlong),
                ("term_gradients", c_longlong), ("wall_seconds", c_double),
                ("steps_per_second", c_double), ("reason", c_char_p)]


class mf_svm_settings(Structure):
    _fields_ = [("sep_tol", c_double), ("support_tol", c_double), ("active_tol", c_double),
                ("max_iter", c_int), ("polish", c_int)]


class mf_svm_result(Structure):
    _fields_ = [("status", c_int), ("norm", c_int), ("d", c_int), ("n", c_int),
                ("classes", c_int), ("gamma", c_double), ("gamma_diag2", c_double), ("gamma_lower", c_double),
                ("gamma_upper", c_double), ("w", POINTER(c_double)), ("alpha", POINTER(c_double)),
                ("n_support", c_int), ("support", POINTER(c_int)), ("n_active", c_int),
                ("q_min", c_double), ("primal_residual", c_double), ("dual_residual", c_double),
                ("complementarity", c_double), ("gap", c_double), ("kkt_residual", c_double),
                ("lp_kkt_primal", c_double), ("lp_kkt_dual", c_double), ("iterations", c_int),
                ("polished", c_int), ("certificate", POINTER(c_double)),
                ("certificate_norm", c_double)]


class mf_directional_result(Structure):
    _fields_ = [("searched", c_int), ("n_zero", c_int), ("n_patterns", c_int), ("found", c_int),
                ("best_inner", c_double), ("d", POINTER(c_double)), ("gain", c_double * N_GAINS)]


class mf_local_result(Structure):
    _fields_ = [("n_radii", c_int), ("radii", c_double * LOCAL_MAX_RADII), ("trials", c_int),
                ("seed", c_uint64), ("gamma0", c_double),
                ("best_gamma", c_double * LOCAL_MAX_RADII), ("best_gain", c_double),
                ("best_theta", POINTER(c_double)), ("best_dist", c_double), ("best_radius", c_int),
                ("evaluations", c_int), ("failures", c_int), ("method", c_char * 32)]


class mf_maxmargin_result(Structure):
    _fields_ = [("starts", c_int), ("seed", c_uint64), ("best_gamma", c_double),
                ("best_theta", POINTER(c_double)), ("n_values", c_int),
                ("values", POINTER(c_double)), ("counts", POINTER(c_int)), ("failures", c_int),
                ("starts_done", c_int), ("interrupted", c_int), ("feasibility_runs", c_int),
                ("method", c_char * 32), ("bytes", c_double)]


class mf_analyze_settings(Structure):
    _fields_ = [("kkt_tol", c_double), ("act_tol", c_double), ("zero_tol", c_double),
                ("global_tol", c_double), ("hess_h", c_double), ("local_trials", c_int),
                ("seed", c_uint64), ("max_patterns", c_int), ("layer", c_int),
                ("always_local", c_int)]


class mf_witness(Structure):
    _fields_ = [("found", c_int), ("kind", c_char * 32), ("theta", POINTER(c_double)),
                ("radius", c_double), ("distance", c_double), ("q_min", c_double),
                ("norm", c_double), ("gamma", c_double), ("gamma0", c_double),
                ("reference", c_double), ("gain", c_double), ("gain_ref", c_double),
                ("noise", c_double), ("rounding", c_double), ("norm_ratio", c_double)]


class mf_analysis(Structure):
    _fields_ = [("n", c_int), ("n_params", c_int), ("degree", c_int), ("homogeneous", c_int),
                ("q_min", c_double), ("norm", c_double), ("gamma", c_double),
                ("layer_margin", c_double), ("theta_tilde", POINTER(c_double)),
                ("lambda_", POINTER(c_double)), ("n_active", c_int), ("active", POINTER(c_int)),
                ("eps", c_double), ("delta", c_double), ("euler_lhs", c_double),
                ("euler_rhs", c_double), ("n_kinks", c_int), ("kink_distance", c_double),
                ("ll_beta", c_double), ("ll_eps", c_double), ("ll_delta", c_double),
                ("has_global", c_int), ("gamma_star", c_double), ("global_source", c_char * 128),
                ("ratio", c_double), ("kkt_exact", c_int), ("second_order_done", c_int),
                ("hessian_method", c_char * 64), ("min_eig", c_double), ("min_eig_err", c_double),
                ("so_dim", c_int), ("min_eig_absent", c_char * 160), ("dir", POINTER(c_double)),
                ("gain", c_double * N_GAINS), ("gain_absent", c_char * 160),
                ("directional", POINTER(mf_directional_result)),
                ("local", POINTER(mf_local_result)), ("gamma_polished", c_double),
                ("layer", c_int), ("layer_opt", c_double), ("layer_value", c_double),
                ("witness", mf_witness), ("gamma_lower", c_double), ("gamma_upper", c_double),
                ("global_theta", POINTER(c_double)), ("global_n_params", c_size_t),
                ("global_spec", c_char * SPEC_LEN), ("verdict", c_int),
                ("verdict_reason", c_char * 1024), ("settings", mf_analyze_settings)]


class mf_global_settings(Structure):
    _fields_ = [("sample", c_int), ("max_patterns", c_int), ("seed", c_uint64), ("tol", c_double),
                ("max_iter", c_int), ("max_seconds", c_double)]


class mf_global_result(Structure):
    _fields_ = [("n", c_int), ("d", c_int), ("alpha", c_double), ("enumerated", c_int),
                ("n_samples", c_int), ("n_patterns", c_int), ("n_lines", c_int),
                ("gamma", c_double), ("gamma_lower", c_double), ("gamma_upper", c_double),
                ("upper_certified", c_int), ("gap", c_double), ("spec", c_char * SPEC_LEN),
                ("width", c_int), ("n_params", c_size_t), ("theta", POINTER(c_double)),
                ("q_min", c_double), ("path_norm", c_double), ("lambda_", POINTER(c_double)),
                ("rho", c_double), ("rho_cells", c_double), ("n_support", c_int),
                ("solver", c_char * 128), ("solver_status", c_int), ("iterations", c_int),
                ("solver_objective", c_double), ("lp_objective", c_double),
                ("seconds_patterns", c_double), ("seconds_solve", c_double),
                ("seconds_certify", c_double)]


# ------------------------------------------------------------------ prototypes

P = POINTER
_protos = {
    "mf_version": (c_char_p, []),
    "mf_abi_version": (c_int, []),
    "mf_sizeof": (c_size_t, [c_char_p]),
    "mf_strerror": (c_char_p, [c_int]),
    "mf_data_new": (c_int, [c_int, c_int, c_int, P(P(mf_data)), P(mf_err)]),
    "mf_data_free": (None, [P(mf_data)]),
    "mf_data_from_spec": (c_int, [c_char_p, c_char_p, P(P(mf_data)), P(mf_err)]),
    "mf_data_hash": (c_uint32, [P(mf_data)]),
    "mf_model_parse": (c_int, [c_char_p, c_int, c_int, P(P(mf_model)), P(mf_err)]),
    "mf_model_free": (None, [P(mf_model)]),
    "mf_work_new": (c_int, [P(mf_model), c_int, P(c_void_p), P(mf_err)]),
    "mf_work_free": (None, [c_void_p]),
    "mf_model_forward": (c_int, [P(mf_model), c_void_p, P(c_double), P(c_double), c_int,
                                 P(c_double)]),
    "mf_model_backward": (c_int, [P(mf_model), c_void_p, P(c_double), P(c_double), c_int,
                                  P(c_double), P(c_double)]),
    "mf_model_init": (c_int, [P(mf_model), c_char_p, c_double, P(mf_rng), P(c_double),
                              P(mf_err)]),
    "mf_model_layout": (c_size_t, [P(mf_model), c_char_p, c_size_t]),
    "mf_param_norm": (c_double, [P(mf_model), P(c_double)]),
    "mf_layer_norm": (c_double, [P(mf_model), P(c_double), c_int]),
    "mf_rng_seed": (None, [P(mf_rng), c_uint64]),
    "mf_params_read_for": (c_int, [c_char_p, P(mf_model), P(c_double), P(mf_err)]),
    "mf_params_parse": (c_int, [c_char_p, c_size_t, P(c_double), P(mf_err)]),
    "mf_loss_from_name": (c_int, [c_char_p, P(c_int)]),
    "mf_loss_name": (c_char_p, [c_int]),
    "mf_optimizer_from_name": (c_int, [c_char_p, P(c_int)]),
    "mf_outcome_name": (c_char_p, [c_int]),
    "mf_train_settings_default": (None, [P(mf_train_settings)]),
    "mf_train_settings_validate": (c_char_p, [P(mf_train_settings)]),
    "mf_train_state_new": (c_int, [c_size_t, P(P(mf_train_state)), P(mf_err)]),
    "mf_train_state_free": (None, [P(mf_train_state)]),
    "mf_train": (c_int, [P(mf_model), P(mf_data), P(mf_train_settings), P(mf_train_state),
                         P(mf_callbacks), P(mf_train_result), P(mf_err)]),
    "mf_metrics_csv_header": (c_char_p, []),
    "mf_metrics_csv_row": (None, [P(mf_metrics), c_char_p, c_size_t]),
    "mf_svm_settings_default": (None, [P(mf_svm_settings)]),
    "mf_svm_settings_validate": (c_char_p, [P(mf_svm_settings)]),
    "mf_svm_solve": (c_int, [P(mf_data), c_int, P(mf_svm_settings), P(P(mf_svm_result)),
                             P(mf_err)]),
    "mf_svm_result_free": (None, [P(mf_svm_result)]),
    "mf_svm_status_name": (c_char_p, [c_int]),
    "mf_analyze_settings_default": (None, [P(mf_analyze_settings)]),
    "mf_analyze_settings_validate": (c_char_p, [P(mf_analyze_settings)]),
    "mf_analyze": (c_int, [P(mf_model), P(mf_data), P(c_double), c_int, P(mf_analyze_settings),
                           P(P(mf_analysis)), P(mf_err)]),
    "mf_analysis_free": (None, [P(mf_analysis)]),
    "mf_verdict_name": (c_char_p, [c_int]),
    "mf_maxmargin": (c_int, [P(mf_model), P(mf_data), c_int, c_uint64, c_double,
                             P(P(mf_maxmargin_result)), P(mf_err)]),
    "mf_maxmargin_result_free": (None, [P(mf_maxmargin_result)]),
    "mf_global_settings_default": (None, [P(mf_global_settings)]),
    "mf_global_settings_validate": (c_char_p, [P(mf_global_settings)]),
    "mf_global_relu2": (c_int, [P(mf_model), P(mf_data), P(mf_global_settings),
                                P(P(mf_global_result)), P(mf_err)]),
    "mf_global_result_free": (None, [P(mf_global_result)]),
}

_lib = None
_lib_path = None
_checked = set()


def _candidates():
    env = os.environ.get("MARGINFLOW_LIB")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    build = os.environ.get("MARGINFLOW_BUILD", "build")
    out = [os.path.join(root, build, "libmarginflow.so.0")]
    found = ctypes.util.find_library("marginflow")
    if found:
        out.append(found)
    return out


def load():
    """The library (loaded once): see the module's docstring for which."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        for name, (res, args) in _protos.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        abi = lib.mf_abi_version()
        if abi != ABI_VERSION:
            raise ImportError("marginflow: %s has ABI revision %d, this binding was written for %d: "
                              "rebuild the library from this source tree, or update "
                              "python/marginflow" % (path, abi, ABI_VERSION))
        _lib, _lib_path = lib, path
        return lib
    raise ImportError("marginflow: cannot load libmarginflow.so.0 (tried: %s); build it with "
                      "`make shared`, or set MARGINFLOW_LIB to its path" % "; ".join(tried))


def lib():
    return _lib if _lib is not None else load()


def library_path():
    lib()
    return _lib_path


def check(struct):
    """Refuse a mirror whose size differs from the library's struct."""
    if struct in _checked:
        return struct
    name = struct.__name__
    have = lib().mf_sizeof(name.encode())
    want = ctypes.sizeof(struct)
    if have != want:
        raise Error(ERR_UNSUPPORTED,
                    "marginflow: the library at %s has %s of %d bytes, this binding's mirror has "
                    "%d: the header changed; update %s in python/marginflow/_ffi.py"
                    % (_lib_path, name, have, want, name))
    _checked.add(struct)
    return struct


def strerror(code):
    return lib().mf_strerror(code).decode()


def text(b):
    """A C string (bytes) as str; the library writes UTF-8 and escapes the rest."""
    return b.decode("utf-8", "replace") if b is not None else None


def raise_for(rc, err):
    if rc != OK:
        msg = text(err.msg) if err.msg else strerror(rc)
        raise Error(rc, msg)


def raise_invalid(sentence):
    if sentence is not None:
        raise Error(ERR_INVALID, text(sentence))
