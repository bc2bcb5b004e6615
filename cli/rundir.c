/*
 * rundir.c -- the run directory (interface and file list: rundir.h; the
 * config.json schema: docs/run-directory.md).
 *
 *   run_config <-> config.json   config_json (one writer: the full file, or
 *                                the identity the fingerprint hashes),
 *                                run_config_read (one reader, versions 1, 2)
 *   the directory                run_dir_create / run_dir_open / close
 *   the files                    summary.json, metrics.csv, command.txt,
 *                                snapshots.csv, params.txt, checkpoint.bin
 *   run_execute                  prepare (data, model, init values,
 *                                fingerprint) -> state (fresh or from the
 *                                checkpoint) -> start files -> mf_train with
 *                                the callbacks below -> final files
 */
#define _XOPEN_SOURCE 700 /* localtime_r (POSIX 2008 XSI) */
#include "rundir.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define LN10 2.302585092994045684
#define MAX_JSON_INT 9007199254740992.0 /* 2^53: integers round-trip through JSON numbers */

/* ============================================================ run_config */

void run_config_default(run_config *c) {
    memset(c, 0, sizeof *c);
    mf_train_settings_default(&c->s);
    c->model_spec = "linear";
    c->init_kind = "gauss";
    c->init_scale = 0.1;
    c->init_multiply = 1.0;
    c->made_by = "marginflow train";
    c->version = RUN_CONFIG_VERSION;
    c->data_seed = 1;
}

void run_config_free(run_config *c) {
    cJSON_Delete(c->tree);
    free(c->values);
    free(c->path);
    run_config_default(c);
}

/* A random initialization (gauss / balanced), which has a scale. */
static int init_random(const char *kind) {
    return strcmp(kind, "params") && strcmp(kind, "file");
}

cJSON *run_settings_json(const mf_train_settings *s, int with_stopping) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cli_json_str(o, "loss", mf_loss_name(s->loss));
    cli_json_str(o, "optimizer", mf_optimizer_name(s->optimizer));
    cli_json_num(o, "lr", s->lr);
    cli_json_num(o, "tol", s->tol);
    cli_json_num(o, "lr_up", s->lr_up);
    cli_json_num(o, "lr_down", s->lr_down);
    cli_json_num(o, "max_rel_step", s->max_rel_step);
    cli_json_int(o, "batch", s->batch);
    cli_json_int(o, "log_points", s->log_points);
    cli_json_int(o, "log_horizon", s->log_horizon);
    cli_json_int(o, "checkpoint_every", s->checkpoint_every);
    cli_json_int(o, "seed", (long long)s->seed);
    if (mf_train_is_epoch_run(s)) { /* only here: other runs keep their identity */
        cJSON_AddBoolToObject(o, "epoch_run", 1);
        cli_json_num(o, "alpha_min", s->alpha_min);
        cli_json_num(o, "loss_cap", s->loss_cap);
        cli_json_num(o, "archive_decades", s->archive_decades);
        cJSON *ae = cJSON_AddArrayToObject(o, "archive_epochs");
        for (int i = 0; ae && i < s->n_archive_epochs; i++)
            cJSON_AddItemToArray(ae, cJSON_CreateNumber((double)s->archive_epochs[i]));
    }
    if (with_stopping) {
        cli_json_int(o, "max_steps", s->max_steps);
        cli_json_num(o, "until_log10_loss", s->until_log10_loss);
        cli_json_num(o, "until_margin_gap", s->until_margin_gap);
        cli_json_num(o, "until_time", s->until_time);
        cli_json_num(o, "wall_seconds", s->wall_seconds);
        if (mf_train_is_epoch_run(s)) cli_json_int(o, "max_epochs", s->max_epochs);
    }
    return o;
}

/* root.model: spec, n_params, degree (and homogeneous when asked). */
static void model_json(cJSON *root, const mf_model *m, int homogeneous) {
    cJSON *mj = cJSON_AddObjectToObject(root, "model");
    if (!mj) return;
    cli_json_str(mj, "spec", m->spec);
    cli_json_int(mj, "n_params", (long long)m->n_params);
    cli_json_int(mj, "degree", m->degree);
    if (homogeneous) cJSON_AddBoolToObject(mj, "homogeneous", m->homogeneous != 0);
}

/* The sizes of data set d into the object dj: n, d, num_classes. */
static void data_sizes(cJSON *dj, const mf_data *d) {
    cli_json_int(dj, "n", d->n);
    cli_json_int(dj, "d", d->d);
    cli_json_int(dj, "num_classes", d->num_classes);
}

/* The provenance of a full config.json: library version, maker, claim, the
 * command that made the run and those that resumed it (this process
 * appended when resumed). */
static void config_origin(cJSON *root, const run_config *c, int resumed) {
    cli_json_str(root, "library_version", MF_VERSION);
    cli_json_str(root, "made_by", c->made_by);
    if (c->claim) cli_json_str(root, "claim", c->claim);
    /* a run read from config.json keeps what it recorded (null: nothing) */
    cJSON *av = c->argv ? cJSON_Duplicate(c->argv, 1)
                        : c->tree ? cJSON_CreateNull() : cli_json_argv(cli_argc, cli_argv);
    cJSON_AddItemToObject(root, "argv", av);
    if (!c->resumes && !resumed) return;
    cJSON *list = c->resumes ? cJSON_Duplicate(c->resumes, 1) : cJSON_CreateArray();
    if (resumed && list) cJSON_AddItemToArray(list, cli_json_argv(cli_argc, cli_argv));
    cJSON_AddItemToObject(root, "resumes", list);
}

/* config.json as JSON: full = 1 the whole file (resumed: this process is
 * added to "resumes"); full = 0 the run's identity -- no stopping criteria,
 * no provenance, no data path or description -- whose unformatted text the
 * checkpoint fingerprint is computed from. The data and model fields come
 * from the loaded data and parsed model. NULL when out of memory. */
static cJSON *config_json(const run_config *c, const mf_data *d, const mf_model *m, int full,
                          int resumed) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cli_json_str(root, "format", "marginflow-config");
    cli_json_int(root, "version", RUN_CONFIG_VERSION);
    if (full) config_origin(root, c, resumed);
    cJSON *dj = cJSON_AddObjectToObject(root, "data");
    if (dj) {
        cli_json_str(dj, "spec", c->data_spec);
        if (full) cli_json_str(dj, "path", c->data_path);
        cli_json_str(dj, "format", c->format);
        if (full) cli_json_str(dj, "desc", d->desc);
        data_sizes(dj, d);
        if (c->hash != RUN_HASH_ABSENT) { /* runs from before data hashes keep none */
            char h[16];
            snprintf(h, sizeof h, "%08x", (unsigned)c->data_hash);
            cli_json_str(dj, "data_hash", h);
        }
        /* subsets and the test set: written only when used (identity of older runs) */
        if (c->train_limit) cli_json_int(dj, "limit", c->train_limit);
        if (c->n_classes == 2) {
            double cv[2] = {c->classes[0], c->classes[1]};
            cli_json_num_array(dj, "classes", cv, 2);
        }
        if (c->train_limit || c->n_classes || c->test_spec)
            cli_json_int(dj, "seed", (long long)c->data_seed);
        if (c->test_spec) {
            cJSON *tj = cJSON_AddObjectToObject(dj, "test");
            cli_json_str(tj, "spec", c->test_spec);
            if (full) cli_json_str(tj, "path", c->test_path);
            if (c->test_limit) cli_json_int(tj, "limit", c->test_limit);
            if (c->hash != RUN_HASH_ABSENT) {
                char h[16];
                snprintf(h, sizeof h, "%08x", (unsigned)c->test_hash);
                cli_json_str(tj, "data_hash", h);
            }
        }
    }
    model_json(root, m, 0);
    cJSON *ij = cJSON_AddObjectToObject(root, "init");
    if (ij) {
        int random = init_random(c->init_kind);
        cli_json_str(ij, "kind", c->init_kind);
        cli_json_num(ij, "scale", random ? c->init_scale : NAN);
        if (c->init_values) cli_json_num_array(ij, "params", c->init_values, c->n_init);
        else cJSON_AddNullToObject(ij, "params");
        cli_json_str(ij, "file", c->init_file);
        /* only when set, so the identity of every earlier run is unchanged */
        if (c->init_multiply != 1.0) cli_json_num(ij, "multiply", c->init_multiply);
    }
    cJSON_AddItemToObject(root, "settings", run_settings_json(&c->s, full));
    return root;
}

static uint32_t crc_of(const cJSON *j) {
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    uint32_t fp = 0;
    if (text) fp = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)text, (uInt)strlen(text));
    cJSON_free(text);
    return fp;
}

/* The checkpoint fingerprint of the run: CRC-32 of its identity text. For a
 * version-1 train config (legacy = 1) the identity as that writer built it:
 * version 1 and the init object as written there. */
static uint32_t fingerprint(const run_config *c, const mf_data *d, const mf_model *m, int legacy) {
    run_config c1 = *c;
    if (legacy) c1.hash = RUN_HASH_ABSENT; /* version 1 had no data hash */
    cJSON *id = config_json(&c1, d, m, 0, 0);
    if (id && legacy) {
        cJSON *ij = cJSON_CreateObject();
        cli_json_str(ij, "kind", c->v1.kind);
        cli_json_num(ij, "scale", c->v1.scale);
        cli_json_str(ij, "params", c->v1.params);
        cli_json_str(ij, "file", c->v1.file);
        cJSON_ReplaceItemInObjectCaseSensitive(id, "version", cJSON_CreateRaw("1"));
        cJSON_ReplaceItemInObjectCaseSensitive(id, "init", ij);
    }
    uint32_t fp = crc_of(id);
    cJSON_Delete(id);
    return fp;
}

uint32_t run_fingerprint(const run_config *c, const mf_data *d, const mf_model *m) {
    return fingerprint(c, d, m, 0);
}

/* Write dir/config.json (atomically). Returns an mf_error code, e filled. */
static int write_config(const char *dir, const run_config *c, const mf_data *d,
                        const mf_model *m, int resumed, mf_err *e) {
    cJSON *j = config_json(c, d, m, 1, resumed);
    char *path = cli_join(dir, "config.json");
    int rc = j && path ? cli_json_write(path, j, e) : MF_ERR_NOMEM;
    if (rc == MF_ERR_NOMEM && !(j && path)) cli_fmt(e->msg, sizeof e->msg, "out of memory");
    free(path);
    cJSON_Delete(j);
    return rc;
}

/* ------------------------------------------------------------- reading */

/* The settings object (both versions): every field; max_rel_step may be
 * absent (early version-1 files), the stopping criteria null (off). */
static void read_settings(cli_jr *r, const cJSON *sj, mf_train_settings *s) {
    const char *ls = NULL, *os = NULL;
    double x;
    const char *P = "settings";
    const unsigned R = CLI_J_REQUIRED;
    if (cli_jstr(r, sj, P, "loss", R, 64, &ls) == 1 && mf_loss_from_name(ls, &s->loss))
        cli_jbadk(r, P, "loss", "unknown loss '%s'", ls);
    if (cli_jstr(r, sj, P, "optimizer", R, 64, &os) == 1 &&
        mf_optimizer_from_name(os, &s->optimizer))
        cli_jbadk(r, P, "optimizer", "unknown optimizer '%s'", os);
    cli_jnum(r, sj, P, "lr", R, &s->lr);
    cli_jnum(r, sj, P, "tol", R, &s->tol);
    cli_jnum(r, sj, P, "lr_up", R, &s->lr_up);
    cli_jnum(r, sj, P, "lr_down", R, &s->lr_down);
    cli_jnum(r, sj, P, "max_rel_step", 0, &s->max_rel_step);
    if (cli_jint(r, sj, P, "batch", R, -1e9, 1e9, &x) == 1) s->batch = (int)x;
    if (cli_jint(r, sj, P, "log_points", R, -1e9, 1e9, &x) == 1) s->log_points = (int)x;
    if (cli_jint(r, sj, P, "log_horizon", R, 0, MAX_JSON_INT, &x) == 1) s->log_horizon = (long long)x;
    if (cli_jint(r, sj, P, "checkpoint_every", R, 0, MAX_JSON_INT, &x) == 1)
        s->checkpoint_every = (long long)x;
    if (cli_jint(r, sj, P, "seed", R, 0, MAX_JSON_INT, &x) == 1) s->seed = (uint64_t)x;
    if (cli_jint(r, sj, P, "max_steps", R, 0, MAX_JSON_INT, &x) == 1) s->max_steps = (long long)x;
    cli_jnum(r, sj, P, "until_log10_loss", R | CLI_J_NULL, &s->until_log10_loss);
    /* until_margin_gap: absent in runs made before it existed */
    cli_jnum(r, sj, P, "until_margin_gap", CLI_J_NULL, &s->until_margin_gap);
    cli_jnum(r, sj, P, "until_time", R | CLI_J_NULL, &s->until_time);
    cli_jnum(r, sj, P, "wall_seconds", R | CLI_J_NULL, &s->wall_seconds);
    /* epoch runs (absent in every other run) */
    cli_jnum(r, sj, P, "alpha_min", 0, &s->alpha_min);
    cli_jnum(r, sj, P, "loss_cap", 0, &s->loss_cap);
    cli_jnum(r, sj, P, "archive_decades", 0, &s->archive_decades);
    if (cli_jint(r, sj, P, "max_epochs", 0, 0, MAX_JSON_INT, &x) == 1) s->max_epochs = (long long)x;
    if (cJSON_GetArraySize(cli_jget(sj, "archive_epochs")) > 0) { /* [] = none */
        double v[MF_MAX_ARCHIVE_EPOCHS];
        int n = 0;
        if (cli_jnumarr(r, sj, P, "archive_epochs", MF_MAX_ARCHIVE_EPOCHS, v, &n) == 1) {
            s->n_archive_epochs = n;
            for (int i = 0; i < n; i++) {
                if (cli_jint_ok(r, "settings.archive_epochs", v[i], 0, MAX_JSON_INT)) {
                    cli_jbadk(r, P, "archive_epochs", "must hold integers >= 0");
                    break;
                }
                s->archive_epochs[i] = (long long)v[i];
            }
        }
    }
    if (cJSON_IsTrue(cli_jget(sj, "epoch_run")) && !mf_train_is_epoch_run(s))
        cli_jbadk(r, P, "max_epochs", "an sgd epoch run needs max_epochs > 0");
}

/* The init object. Version 2: kind gauss | balanced (scale), params (an
 * array), file (a path). Version 1 of reproduce: kind "params" with an
 * array, or kind and scale (and a seed, equal to settings.seed). Version 1
 * of train: kind and scale always, params a string or null, file a path or
 * null -- kept in c->v1 for the fingerprint, and normalized. */
static void read_init(cli_jr *r, const cJSON *ij, run_config *c) {
    const char *P = "init", *kind = NULL, *text = NULL, *file = NULL;
    double scale = NAN;
    int n = 0;
    cli_jstr(r, ij, P, "kind", CLI_J_REQUIRED, 64, &kind);
    cli_jnum(r, ij, P, "scale", CLI_J_NULL, &scale);
    const cJSON *pv = cli_jget(ij, "params");
    if (cJSON_IsArray(pv)) {
        c->values = malloc(sizeof(double) * (size_t)(cJSON_GetArraySize(pv) + 1));
        if (!c->values) cli_jbadk(r, P, "params", "out of memory");
        else if (cli_jnumarr(r, ij, P, "params", 1 << 30, c->values, &n) == 1)
            c->init_values = c->values, c->n_init = n;
    } else {
        cli_jstr(r, ij, P, "params", CLI_J_NULL, (size_t)-1, &text);
    }
    cli_jstr(r, ij, P, "file", CLI_J_NULL, (size_t)-1, &file);
    double mult = 1.0;
    if (cli_jnum(r, ij, P, "multiply", 0, &mult) == 1 && !(mult > 0 && isfinite(mult)))
        cli_jbadk(r, P, "multiply", "must be a finite number > 0");
    c->init_multiply = mult;
    if (c->version == 1 && !c->claim && cli_jget(ij, "file")) { /* written by train */
        c->v1.present = 1;
        c->v1.kind = kind, c->v1.scale = scale, c->v1.params = text, c->v1.file = file;
    }
    c->init_text = text, c->init_file = file, c->init_scale = scale;
    c->init_kind = c->init_values || text ? "params" : file ? "file" : kind;
    if (!kind || r->failed) return;
    if (!strcmp(c->init_kind, "params") && !c->init_values && !text)
        cli_jbadk(r, P, "params", "is required for kind params");
    else if (!strcmp(c->init_kind, "file") && !file)
        cli_jbadk(r, P, "file", "is required for kind file");
    else if (init_random(c->init_kind) && !isfinite(scale))
        cli_jbadk(r, P, "scale", "is required for kind %s", kind);
}

/* Provenance: version (1 when absent), maker, claim, argv, resumes. */
static void read_origin(cli_jr *r, const cJSON *root, run_config *c) {
    double v = 1;
    const char *by = NULL, *claim = NULL;
    if (cli_jint(r, root, "", "version", 0, 1, RUN_CONFIG_VERSION, &v) == 1) c->version = (int)v;
    else c->version = 1;
    cli_jstr(r, root, "", "made_by", CLI_J_NULL, 256, &by);
    cli_jstr(r, root, "", "claim", CLI_J_NULL, 256, &claim);
    if (by) c->made_by = by;
    c->claim = claim;
    const cJSON *av = cli_jget(root, "argv"), *rs = cli_jget(root, "resumes");
    c->argv = av;
    c->resumes = cJSON_IsArray(rs) ? rs : NULL;
}

/* The data_hash field of obj (named where): 8 hex digits into *out; 1 if
 * present and valid, 0 if absent or bad (bad: reported through r). */
static int read_hash(cli_jr *r, const cJSON *obj, const char *where, uint32_t *out) {
    const char *h = NULL;
    if (cli_jstr(r, obj, where, "data_hash", 0, 8, &h) != 1) return 0;
    char *end;
    unsigned long v = strtoul(h, &end, 16);
    if (strlen(h) != 8 || *end || !isxdigit((unsigned char)h[0])) {
        cli_jbadk(r, where, "data_hash", "must be 8 hexadecimal digits");
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}
/* Data and model: spec, path (DESCRIBE: path or spec), format, model spec. */
static void read_data_model(cli_jr *r, const cJSON *root, run_config *c, int purpose) {
    const cJSON *dj = cli_jget(root, "data"), *mj = cli_jget(root, "model");
    const unsigned R = purpose == RUN_READ_RESUME ? CLI_J_REQUIRED : 0;
    const char *spec = NULL, *path = NULL, *format = NULL, *model = NULL;
    cli_jstr(r, dj, "data", "spec", R, (size_t)-1, &spec);
    cli_jstr(r, dj, "data", "path", R, (size_t)-1, &path);
    cli_jstr(r, dj, "data", "format", R | CLI_J_NULL, 64, &format);
    cli_jstr(r, mj, "model", "spec", CLI_J_REQUIRED, (size_t)-1, &model);
    c->data_spec = spec ? spec : path;
    c->data_path = path ? path : spec;
    c->format = format;
    c->model_spec = model;
    if (!c->data_path) cli_jbadk(r, "data", "path", "needs data.path or data.spec");
    /* data_hash: 8 hex digits (absent in runs written before data hashes) */
    c->hash = read_hash(r, dj, "data", &c->data_hash) ? RUN_HASH_RECORDED : RUN_HASH_ABSENT;
    double x;
    if (cli_jint(r, dj, "data", "limit", 0, 0, 1e9, &x) == 1) c->train_limit = (int)x;
    if (cli_jint(r, dj, "data", "seed", 0, 0, MAX_JSON_INT, &x) == 1) c->data_seed = (uint64_t)x;
    if (cli_jget(dj, "classes")) {
        double cv[2];
        int n = 0;
        if (cli_jnumarr(r, dj, "data", "classes", 2, cv, &n) == 1) {
            if (n != 2 || cli_jint_ok(r, "data.classes", cv[0], 0, 255) ||
                cli_jint_ok(r, "data.classes", cv[1], 0, 255))
                cli_jbadk(r, "data", "classes", "must be two class indices");
            else
                c->n_classes = 2, c->classes[0] = (int)cv[0], c->classes[1] = (int)cv[1];
        }
    }
    const cJSON *tj = cli_jget(dj, "test");
    if (tj) {
        const char *ts = NULL, *tp = NULL;
        cli_jstr(r, tj, "data.test", "spec", CLI_J_REQUIRED, (size_t)-1, &ts);
        cli_jstr(r, tj, "data.test", "path", 0, (size_t)-1, &tp);
        if (cli_jint(r, tj, "data.test", "limit", 0, 0, 1e9, &x) == 1) c->test_limit = (int)x;
        c->test_spec = ts;
        c->test_path = tp ? tp : ts;
        if (!read_hash(r, tj, "data.test", &c->test_hash) && c->hash == RUN_HASH_RECORDED) {
            cli_jbadk(r, "data.test", "data_hash", "is missing (data.data_hash is recorded)");
        }
    }
}

int run_config_read(const char *dir, int purpose, run_config *c, run_read_error *err) {
    run_config_default(c);
    memset(err, 0, sizeof *err);
    c->path = cli_join(dir, "config.json");
    size_t n = 0;
    char *text = c->path ? cli_read_text(c->path, CLI_MAX_JSON_BYTES, &n, err->why, sizeof err->why)
                         : NULL;
    if (!text) {
        err->kind = RUN_READ_OPEN;
        err->errnum = c->path ? errno : ENOMEM;
        if (!c->path) cli_fmt(err->why, sizeof err->why, "out of memory");
        return -1;
    }
    cli_jr r = {c->path, err->why, sizeof err->why, NULL, 0};
    c->tree = cli_json_parse(&r, text, n);
    free(text);
    if (!c->tree) {
        err->kind = RUN_READ_JSON;
        return -1;
    }
    cli_jr ignored = {c->path, NULL, 0, NULL, 0}; /* RUN_READ_DESCRIBE: what it does not need */
    const cJSON *root = c->tree, *ij = cli_jget(root, "init"), *sj = cli_jget(root, "settings");
    int resume = purpose == RUN_READ_RESUME;
    read_origin(resume ? &r : &ignored, root, c);
    if (resume && !(cli_jget(root, "data") && cli_jget(root, "model") && ij && sj))
        cli_jbadk(&r, "", "data/model/init/settings", "needs all four objects");
    read_data_model(&r, root, c, purpose);
    read_init(resume ? &r : &ignored, ij, c);
    read_settings(resume ? &r : &ignored, sj, &c->s);
    c->loss_name = cli_jstr_or(sj, "loss", NULL);
    if (!r.failed) return 0;
    err->kind = RUN_READ_FIELD;
    cli_fmt(err->field, sizeof err->field, "%s", r.key ? r.key : "?");
    char *path = c->path;
    c->path = NULL;
    run_config_free(c);
    c->path = path;
    return -1;
}

/* ============================================================ directory */

char *run_dir_default_path(const char *prefix) {
    time_t now = time(NULL);
    struct tm tmv;
    char stamp[32], buf[128];
    localtime_r(&now, &tmv);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
    snprintf(buf, sizeof buf, "runs/%s-%s", prefix, stamp);
    struct stat st;
    for (int k = 2; stat(buf, &st) == 0 && k < 100; k++)
        snprintf(buf, sizeof buf, "runs/%s-%s-%d", prefix, stamp, k);
    char *p = malloc(strlen(buf) + 1);
    if (p) strcpy(p, buf);
    return p;
}

static int dir_path(run_dir *rd, const char *path, char *why, size_t cap) {
    rd->lock_fd = -1;
    rd->path = NULL;
    if (!path[0]) {
        cli_fmt(why, cap, "the run directory name is empty (--out '' or --resume '')");
        return CLI_EXIT_USAGE;
    }
    rd->path = malloc(strlen(path) + 1);
    if (!rd->path) {
        cli_fmt(why, cap, "out of memory");
        return CLI_EXIT_ERROR;
    }
    strcpy(rd->path, path);
    return 0;
}

/* The files marginflow keeps in a run directory (rundir.h), the lock, and
 * the analysis `marginflow analyze` adds. */
static const char *const run_files[] = {"config.json", "metrics.csv", "params.txt", "summary.json",
                                        "checkpoint.bin", "command.txt", "snapshots.csv",
                                        "analysis.json", RUN_LOCK_FILE, NULL};

/* Whether name is one of run_files, or the temporary file "NAME.tmp.<pid>"
 * an atomic write of one of them leaves when killed before its rename. */
static int run_file_name(const char *name, int tmp_too) {
    for (int i = 0; run_files[i]; i++) {
        size_t l = strlen(run_files[i]);
        if (strncmp(name, run_files[i], l)) continue;
        if (!name[l]) return 1;
        if (tmp_too && !strncmp(name + l, ".tmp.", 5) && name[l + 5]) {
            const char *p = name + l + 5;
            while (*p >= '0' && *p <= '9') p++;
            if (!*p) return 1;
        }
    }
    return 0;
}

/* Whether dir/config.json is a marginflow config (its "format" says so). */
static int is_run_config(const char *dir) {
    char *p = cli_join(dir, "config.json"), w[MF_ERR_LEN];
    char *t = p ? cli_read_text(p, CLI_MAX_JSON_BYTES, NULL, w, sizeof w) : NULL;
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    const char *f = cli_jstr_or(j, "format", NULL);
    int ok = f && !strcmp(f, "marginflow-config");
    cJSON_Delete(j);
    free(t);
    free(p);
    return ok;
}

/* What the directory at path holds: DIR_NONE (absent or empty), DIR_PARTIAL
 * (only marginflow's files with its lock file, no config.json: a run killed
 * before it was marked, which the same command starts afresh), DIR_RUN (a
 * marginflow config.json and only marginflow's files), DIR_FOREIGN
 * (anything else: *which names an entry that is not marginflow's,
 * malloc'd), DIR_ERROR (not a directory, or unreadable: errno). */
enum { DIR_NONE, DIR_PARTIAL, DIR_RUN, DIR_FOREIGN, DIR_ERROR };
static int classify_dir(const char *path, char **which) {
    *which = NULL;
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? DIR_NONE : DIR_ERROR;
    int any = 0, config = 0, lock = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *n = ent->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
        if (!any && !*which) *which = strdup(n); /* the first entry, for messages */
        any = 1;
        if (!strcmp(n, "config.json")) config = 1;
        else if (!strcmp(n, RUN_LOCK_FILE)) lock = 1;
        else if (!run_file_name(n, 1)) {
            free(*which);
            *which = strdup(n);
            closedir(d);
            return DIR_FOREIGN;
        }
    }
    closedir(d);
    if (config && !is_run_config(path)) {
        free(*which);
        *which = strdup("config.json");
        return DIR_FOREIGN;
    }
    /* a run is marked by its config.json; one killed before that has its
     * lock file (taken before anything is written): without either, files
     * with marginflow's names (a params.txt) may be the user's own */
    int k = config ? DIR_RUN : lock ? DIR_PARTIAL : any ? DIR_FOREIGN : DIR_NONE;
    if (k != DIR_FOREIGN) {
        free(*which);
        *which = NULL;
    }
    return k;
}

/* Why the directory cannot be a run's (exit 2), or 0 when it can: absent,
 * empty, a half-made run, or (replace) a run. */
static int check_dir(const char *path, int replace, char *why, size_t cap) {
    char *which = NULL;
    int k = classify_dir(path, &which), code = CLI_EXIT_USAGE;
    if (k == DIR_FOREIGN)
        cli_fmt(why, cap, "%s is not empty and is not a marginflow run directory (it holds "
                "'%s'); choose a new or empty directory, so that no file of yours is "
                "overwritten", cli_q(path), cli_q(which));
    else if (k == DIR_RUN && !replace)
        cli_fmt(why, cap, "%s already holds a run; continue it with --resume %s or choose another "
                "--out", cli_q(path), cli_q(path));
    else if (k == DIR_ERROR)
        cli_fmt(why, cap, "cannot use %s as a run directory: %s", cli_q(path), strerror(errno));
    else
        code = 0;
    free(which);
    return code;
}

/* Take the run's lock: an fcntl write lock on dir/RUN_LOCK_FILE (created
 * if absent, never removed: removing it would let two processes lock two
 * different files), held until run_dir_close. A second process gets exit 2
 * naming the holder. fcntl locks are per process and not inherited by
 * fork, so each process that writes a run takes its own. */
static int take_lock(run_dir *rd, char *why, size_t cap) {
    char *lp = cli_join(rd->path, RUN_LOCK_FILE);
    if (!lp) {
        cli_fmt(why, cap, "out of memory");
        return CLI_EXIT_ERROR;
    }
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    free(lp);
    if (fd < 0) {
        cli_fmt(why, cap, "cannot lock %s: cannot open %s/%s: %s", cli_q(rd->path), cli_q(rd->path),
                RUN_LOCK_FILE, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        rd->lock_fd = fd;
        return 0;
    }
    int en = errno;
    if (en == EACCES || en == EAGAIN) {
        struct flock who;
        memset(&who, 0, sizeof who);
        who.l_type = F_WRLCK;
        who.l_whence = SEEK_SET;
        char pid[48] = "";
        if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK)
            snprintf(pid, sizeof pid, " (pid %ld)", (long)who.l_pid);
        cli_fmt(why, cap, "%s is in use by another marginflow process%s; wait until it ends, "
                "or choose another directory", cli_q(rd->path), pid);
        close(fd);
        return CLI_EXIT_USAGE;
    }
    cli_fmt(why, cap, "cannot lock %s: %s", cli_q(rd->path), strerror(en));
    close(fd);
    return CLI_EXIT_ERROR;
}

/* Exit code for a failed mkdir: what the user named (a file in the way, a
 * name too long, no permission) is bad input, a full or failing disk not. */
static int mkdir_exit(int en) {
    return en == ENOSPC || en == EIO || en == ENOMEM || en == EROFS ? CLI_EXIT_ERROR
                                                                     : CLI_EXIT_USAGE;
}

int run_dir_create(run_dir *rd, const char *path, int replace, char *why, size_t cap) {
    int code = dir_path(rd, path, why, cap);
    /* checked before anything is created (no lock file in a user's folder),
     * and again under the lock (another process may have made a run there
     * in between) */
    if (!code) code = check_dir(path, replace, why, cap);
    if (!code && cli_mkdirs(path) != 0) {
        int en = errno;
        cli_fmt(why, cap, "cannot create run directory %s: %s", cli_q(path), strerror(en));
        code = mkdir_exit(en);
    }
    if (!code) code = take_lock(rd, why, cap);
    if (!code) code = check_dir(path, replace, why, cap);
    if (code) run_dir_close(rd);
    return code;
}

/* Remove the temporary files "NAME.tmp.<pid>" that an atomic write killed
 * before its rename left in dir (a SIGKILL during a checkpoint write). Only
 * called with the run's lock held, so no writer of the run is alive.
 * Failures are ignored: the files are garbage either way. */
static void remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!run_file_name(ent->d_name, 1) || run_file_name(ent->d_name, 0)) continue;
        char *path = cli_join(dir, ent->d_name);
        if (path) remove(path);
        free(path);
    }
    closedir(d);
}

int run_dir_open(run_dir *rd, const char *path, char *why, size_t cap) {
    int code = dir_path(rd, path, why, cap);
    if (!code) code = take_lock(rd, why, cap);
    if (code) {
        run_dir_close(rd);
        return code;
    }
    remove_stale_tmp(path);
    return 0;
}

void run_dir_close(run_dir *rd) {
    if (rd->lock_fd >= 0) close(rd->lock_fd);
    free(rd->path);
    rd->path = NULL;
    rd->lock_fd = -1;
}

/* ================================================================ files */

int run_write_summary(const char *dir, const mf_train_settings *s, const mf_data *d,
                      const mf_model *m, const mf_train_result *r, char *why, size_t cap) {
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        cli_fmt(why, cap, "out of memory");
        return MF_ERR_NOMEM;
    }
    cli_json_str(root, "format", "marginflow-summary");
    cli_json_int(root, "version", 1);
    cli_json_str(root, "library_version", MF_VERSION);
    cli_json_str(root, "outcome", mf_outcome_name(r->outcome));
    cli_json_str(root, "reason", r->reason); /* stalled: why; else null */
    cli_json_int(root, "steps", r->steps);
    cli_json_int(root, "rejected", r->rejected);
    cli_json_num(root, "wall_seconds", r->wall_seconds);
    cli_json_num(root, "steps_per_second", r->steps_per_second);
    if (s->optimizer == MF_OPT_FLOW) cli_json_int(root, "stiff_steps", r->stiff_steps);
    cli_json_int(root, "gradient_evals", r->gradient_evals);
    cli_json_int(root, "forward_evals", r->forward_evals);
    cli_json_int(root, "term_gradients", r->term_gradients);
    cJSON *f = cJSON_AddObjectToObject(root, "final");
    if (f) {
        char t[MF_LOG_VALUE_LEN]; /* always holds the value (marginflow.h) */
        const mf_metrics *mt = &r->final;
        cli_json_int(f, "step", mt->step);
        mf_format_log_value(t, sizeof t, mt->time_log);
        cli_json_str(f, "time", t);
        cli_json_num(f, "log_time", mt->time_log);
        cli_json_num(f, "log10_loss", mt->log10_loss);
        cli_json_num(f, "norm", mt->norm);
        cli_json_num(f, "q_min", mt->q_min);
        cli_json_num(f, "normalized_margin", mt->normalized_margin);
        cli_json_num(f, "smoothed_margin", mt->smoothed_margin);
        cli_json_num(f, "layer_margin", mt->layer_margin);
        cli_json_num(f, "lr", mt->lr);
        cli_json_num(f, "train_error", mt->train_error);
        cli_json_num(f, "balancedness", mt->balancedness);
        cli_json_num(f, "beta", mt->beta);
        cli_json_num(f, "smoothed_decrease", mt->smoothed_decrease);
        cli_json_num(f, "loss_increase", mt->loss_increase);
        cli_json_num(f, "margin_change", mt->margin_change);
        if (mf_train_is_epoch_run(s)) {
            cli_json_int(f, "epoch", mt->epoch);
            cli_json_num(f, "log10_mean_loss", mt->log10_mean_loss);
            cli_json_num(f, "test_error", mt->test_error);
            cli_json_num(f, "epoch_seconds", mt->epoch_seconds);
        }
    }
    /* the discretization indicators of the run (marginflow.h, mf_metrics):
     * what gradient flow never shows, and where this run showed it most */
    cJSON *ind = cJSON_AddObjectToObject(root, "indicators");
    if (ind) {
        cli_json_num(ind, "smoothed_decrease", r->final.smoothed_decrease);
        if (r->smoothed_decrease_step >= 0)
            cli_json_int(ind, "smoothed_decrease_step", r->smoothed_decrease_step);
        else
            cJSON_AddNullToObject(ind, "smoothed_decrease_step");
        cli_json_num(ind, "loss_increase", r->final.loss_increase);
        if (r->loss_increase_step >= 0)
            cli_json_int(ind, "loss_increase_step", r->loss_increase_step);
        else
            cJSON_AddNullToObject(ind, "loss_increase_step");
        cli_json_num(ind, "beta", r->final.beta);
        cli_json_num(ind, "margin_change", r->final.margin_change);
        cJSON_AddBoolToObject(ind, "flow_monotone", !(r->final.smoothed_decrease > 1e-9) &&
                                                        !(r->final.loss_increase > 1));
    }
    model_json(root, m, 1);
    cJSON *dj = cJSON_AddObjectToObject(root, "data");
    if (dj) {
        cli_json_str(dj, "desc", d->desc);
        data_sizes(dj, d);
    }
    cJSON_AddItemToObject(root, "settings", run_settings_json(s, 1));
    char *path = cli_join(dir, "summary.json");
    mf_err e = {0, ""};
    int rc = path ? cli_json_write(path, root, &e) : MF_ERR_NOMEM;
    if (rc) cli_fmt(why, cap, "%s", rc == MF_ERR_NOMEM && !path ? "out of memory" : e.msg);
    free(path);
    cJSON_Delete(root);
    return rc;
}

/* Read one line of f into buf[cap] (without its '\n'; *len its length).
 * Returns 1 a line, 0 end of file (or a last line without '\n', which a
 * write cut short leaves: dropped), -1 a line of cap bytes or more or a NUL
 * byte (*len = which: 1 too long, 2 NUL). Reads at most cap bytes, so an
 * endless input (/dev/zero) is refused at once. */
static int read_line(FILE *f, char *buf, size_t cap, size_t *len) {
    size_t n = 0;
    int ch;
    while ((ch = getc(f)) != EOF && ch != '\n') {
        if (ch == '\0' || n + 1 >= cap) {
            *len = ch == '\0' ? 2 : 1;
            return -1;
        }
        buf[n++] = (char)ch;
    }
    buf[n] = '\0';
    *len = n;
    return ch == '\n';
}

/* The metrics.csv header of a run with settings s. */
static const char *metrics_header(const mf_train_settings *s) {
    return mf_train_is_epoch_run(s) ? mf_epoch_csv_header() : mf_metrics_csv_header();
}

/* Keep the header hdr and the rows with step < step of the metrics file at path
 * (cut in place with ftruncate, then fsync), so the resumed run appends
 * exactly what an uninterrupted run would have written from there on
 * (mf_train re-emits the row at the checkpoint step). Read line by line,
 * each at most CLI_MAX_METRICS_LINE bytes (a row is under 1 KiB), so memory
 * stays bounded whatever the file holds. hdr is the header the run writes
 * (metrics or epoch rows). A file of a run made before the discretization
 * indicators (its header the first LEGACY_COLUMNS columns of today's
 * metrics header) keeps that format: *legacy is set and the resumed run
 * writes those columns only. Returns 0 or a CLI exit code. */
#define LEGACY_COLUMNS 12
static int truncate_metrics(const char *path, const char *hdr, long long step, int *legacy,
                            char *why, size_t cap) {
    const char *qp = cli_q(path);
    FILE *f = fopen(path, "r+b");
    if (!f) {
        cli_fmt(why, cap, "cannot resume: cannot open %s: %s", qp, strerror(errno));
        return errno == ENOMEM ? CLI_EXIT_ERROR : CLI_EXIT_USAGE;
    }
    char *line = malloc(CLI_MAX_METRICS_LINE);
    if (!line) {
        fclose(f);
        cli_fmt(why, cap, "out of memory");
        return CLI_EXIT_ERROR;
    }
    size_t len = 0, old_len = 0;
    if (strcmp(hdr, mf_metrics_csv_header()) == 0) { /* epoch rows have no legacy format */
        for (int k = 0; k < LEGACY_COLUMNS && hdr[old_len]; old_len++) k += hdr[old_len] == ',';
        if (old_len) old_len--; /* the legacy header: hdr up to its LEGACY_COLUMNS-th comma */
    }
    long lineno = 1;
    int got = read_line(f, line, CLI_MAX_METRICS_LINE, &len), code = 0;
    off_t keep = 0;
    *legacy = old_len && got == 1 && len == old_len && strncmp(line, hdr, old_len) == 0;
    if (*legacy) hdr = line;
    if (got < 0 && len == 2) {
        cli_fmt(why, cap, "cannot resume: %s:1: NUL byte; not a marginflow metrics file", qp);
        code = CLI_EXIT_USAGE;
    } else if (got != 1 || (!*legacy && strcmp(line, hdr) != 0)) {
        cli_fmt(why, cap, "cannot resume: %s:1:1: not a marginflow metrics file (header differs)",
                qp);
        code = CLI_EXIT_USAGE;
    }
    if (!code) keep = (off_t)strlen(hdr) + 1;
    while (!code) {
        lineno++;
        got = read_line(f, line, CLI_MAX_METRICS_LINE, &len);
        if (got < 0) {
            cli_fmt(why, cap, "cannot resume: %s:%ld: %s; not a marginflow metrics file", qp,
                    lineno, len == 2 ? "NUL byte" : "line of more than " CLI_MAX_METRICS_LINE_TEXT " bytes");
            code = CLI_EXIT_USAGE;
            break;
        }
        if (got == 0) break; /* the end, or a torn last line: dropped */
        char *end;
        long long s = strtoll(line, &end, 10);
        if (end == line || *end != ',' || s >= step) break;
        keep += (off_t)len + 1;
    }
    if (!code && (fflush(f) != 0 || ftruncate(fileno(f), keep) != 0 || fsync(fileno(f)) != 0)) {
        cli_fmt(why, cap, "cannot resume: cannot cut %s back to step %lld: %s", qp, step,
                strerror(errno));
        code = CLI_EXIT_ERROR;
    }
    free(line);
    fclose(f);
    return code;
}

/* Append this process' command line to dir/command.txt (created fresh). */
static int write_command(const char *dir, const char *prefix, int fresh, char *why, size_t cap) {
    char *q = cli_shell_quote(cli_argc, cli_argv);
    char *path = cli_join(dir, "command.txt");
    int rc = 0;
    if (!q || !path) {
        cli_fmt(why, cap, "out of memory");
        rc = CLI_EXIT_ERROR;
    } else {
        FILE *f = fopen(path, fresh ? "w" : "a");
        if (!f || fprintf(f, "%s%s\n", prefix, q) < 0 || fclose(f) != 0) {
            cli_fmt(why, cap, "cannot write %s: %s", path, strerror(errno));
            rc = CLI_EXIT_ERROR;
        }
    }
    free(q);
    free(path);
    return rc;
}

/* dir/snapshots.csv: a comment line naming the format and the model, the
 * header step,log10_time,p0,.., one row per logged step (%.17g). A file that
 * cannot be written is left out (the snapshots stay in memory). */
static void write_snapshots(const char *dir, const mf_model *m, const run_output *o) {
    char *sp = cli_join(dir, "snapshots.csv");
    FILE *f = sp ? fopen(sp, "wb") : NULL;
    free(sp);
    if (!f) return;
    fprintf(f, "# marginflow snapshots v1: theta at every logged step, order of "
               "marginflow layout; model=%s\nstep,log10_time",
            m->spec);
    for (size_t j = 0; j < m->n_params; j++) fprintf(f, ",p%zu", j);
    fputc('\n', f);
    for (int i = 0; i < o->nrows; i++) {
        char b[40];
        fprintf(f, "%lld,", o->rows[i].step);
        if (isfinite(o->rows[i].time_log)) fprintf(f, "%.17g", o->rows[i].time_log / LN10);
        for (size_t j = 0; j < m->n_params; j++) {
            mf_format_double(b, sizeof b, o->snaps[(size_t)i * m->n_params + j]);
            fprintf(f, ",%s", b);
        }
        fputc('\n', f);
    }
    fclose(f);
}

/* ============================================================== execute */

/* State shared with the training callbacks. */
typedef struct exec_ctx {
    const run_exec *x;
    run_output *out;
    const mf_model *m;
    const char *dir;
    char *ckpt_path;
    uint32_t fingerprint;
    FILE *metrics;
    int legacy_columns;    /* a run made before the indicators: write the old columns */
    int epochs;            /* an epoch run: its CSV rows and progress line */
    const mf_train_settings *s;
    double prev_loss;      /* progress: log10 Loss of the previous row */
    int progress_shown;
    char err[MF_ERR_LEN];  /* why a callback failed */
} exec_ctx;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void cb_log(void *user, int level, const char *msg) {
    exec_ctx *c = user;
    if (c->x->log == RUN_LOG_NONE) return;
    if (level <= MF_LOG_ERROR || (level <= MF_LOG_WARN && c->x->log >= RUN_LOG_WARNINGS)) {
        if (c->progress_shown) fputc('\n', stderr), c->progress_shown = 0;
        cli_error("%s%s", level == MF_LOG_WARN ? "warning: " : "", msg);
    }
}

/* Keep row m (and room for its snapshot, NAN until on_snapshot fills it). */
static int keep_row(exec_ctx *c, const mf_metrics *m) {
    run_output *o = c->out;
    size_t np = c->m->n_params;
    if (o->nrows == o->caprows) {
        int nc = o->caprows ? 2 * o->caprows : 256;
        mf_metrics *n2 = realloc(o->rows, sizeof *n2 * (size_t)nc);
        if (!n2) return -1;
        o->rows = n2;
        if (c->x->snapshots) {
            double *s2 = realloc(o->snaps, sizeof *s2 * (size_t)nc * np);
            if (!s2) return -1;
            o->snaps = s2;
        }
        o->caprows = nc;
    }
    if (c->x->snapshots)
        for (size_t j = 0; j < np; j++) o->snaps[(size_t)o->nrows * np + j] = NAN;
    o->rows[o->nrows++] = *m;
    return 0;
}

static int cb_metrics(void *user, const mf_metrics *m) {
    exec_ctx *c = user;
    char row[MF_METRICS_ROW_LEN];
    if ((c->x->keep || c->x->snapshots) && keep_row(c, m)) {
        cli_fmt(c->err, sizeof c->err, "out of memory keeping the metrics");
        return 1;
    }
    if (c->epochs) {
        mf_epoch_csv_row(m, row, sizeof row);
    } else {
        mf_metrics_csv_row(m, row, sizeof row);
        if (c->legacy_columns) { /* cut at the LEGACY_COLUMNS-th comma */
            char *q = row;
            for (int k = 0; q && k < LEGACY_COLUMNS; k++) q = strchr(q + (k > 0), ',');
            if (q) *q = '\0';
        }
    }
    if (fputs(row, c->metrics) < 0 || fputc('\n', c->metrics) == EOF || fflush(c->metrics)) {
        cli_fmt(c->err, sizeof c->err, "cannot write %s/metrics.csv: %s", c->dir, strerror(errno));
        return 1;
    }
    return 0;
}

/* The parameters of the row cb_metrics has just kept (the library calls
 * this right after on_metrics with the same row). */
static int cb_snapshot(void *user, const mf_metrics *m, const double *theta) {
    exec_ctx *c = user;
    run_output *o = c->out;
    if (o->nrows == 0 || o->rows[o->nrows - 1].step != m->step) return 0;
    memcpy(o->snaps + (size_t)(o->nrows - 1) * c->m->n_params, theta,
           c->m->n_params * sizeof(double));
    return 0;
}

static int cb_checkpoint(void *user, const mf_train_state *s) {
    exec_ctx *c = user;
    mf_err e = {0, ""};
    if (mf_checkpoint_write(c->ckpt_path, s, c->fingerprint, &e) != MF_OK) {
        cli_fmt(c->err, sizeof c->err, "%s", e.msg);
        return 1;
    }
    return 0;
}

/* DIR/archive/epoch-NNNNNNNN.bin: the state of an archived epoch (the
 * checkpoint format, with the run's fingerprint). */
static int cb_archive(void *user, const mf_train_state *s, const mf_metrics *m) {
    exec_ctx *c = user;
    char *ad = cli_join(c->dir, RUN_ARCHIVE_DIR), name[64], *p = NULL;
    cli_fmt(name, sizeof name, "epoch-%08lld.bin", m->epoch);
    mf_err e = {0, ""};
    int rc = ad && cli_mkdirs(ad) == 0 && (p = cli_join(ad, name)) ? MF_OK : MF_ERR_IO;
    if (rc) cli_fmt(c->err, sizeof c->err, "cannot create %s: %s", ad ? ad : "archive",
                    ad ? strerror(errno) : "out of memory");
    if (!rc && mf_checkpoint_write(p, s, c->fingerprint, &e) != MF_OK) {
        cli_fmt(c->err, sizeof c->err, "%s", e.msg);
        rc = 1;
    }
    free(ad);
    free(p);
    return rc ? 1 : 0;
}

static int cb_should_stop(void *user) {
    const exec_ctx *c = user;
    return g_stop != 0 || (c->x->stop && *c->x->stop);
}

/* Compact t for the progress line: 4 significant digits at any size. */
static void short_time(char *b, size_t cap, double time_log) {
    if (time_log == -INFINITY) {
        snprintf(b, cap, "0");
        return;
    }
    double l = time_log / LN10;
    if (fabs(l) < 300) {
        snprintf(b, cap, "%.4g", exp(time_log));
        return;
    }
    double E = floor(l), mant = pow(10.0, l - E);
    snprintf(b, cap, "%.3fe%+.0f", mant, E);
}

/* Epoch runs: one line per epoch (epoch, losses, margins, accuracies,
 * seconds per epoch, ETA from max_epochs or from the loss target and the
 * last epoch's decrease). */
static void epoch_progress(exec_ctx *c, const mf_metrics *m) {
    const mf_train_settings *s = c->s;
    char eta[48] = "?", acc[32];
    double rem = NAN;
    if (s->max_epochs > 0) rem = (double)(s->max_epochs - m->epoch);
    if (!isnan(s->until_log10_loss) && m->log10_loss < c->prev_loss) {
        double r2 = (m->log10_loss - s->until_log10_loss) / (c->prev_loss - m->log10_loss);
        if (isnan(rem) || r2 < rem) rem = r2 > 0 ? r2 : 0;
    }
    if (isfinite(rem) && isfinite(m->epoch_seconds)) {
        double t = rem * m->epoch_seconds;
        if (t < 3600) cli_fmt(eta, sizeof eta, "%.0fm%02.0fs", floor(t / 60), fmod(t, 60));
        else cli_fmt(eta, sizeof eta, "%.0fh%02.0fm", floor(t / 3600), fmod(floor(t / 60), 60));
    }
    if (isnan(m->test_error)) cli_fmt(acc, sizeof acc, "%.4f", 1 - m->train_error);
    else cli_fmt(acc, sizeof acc, "%.4f/%.4f", 1 - m->train_error, 1 - m->test_error);
    fprintf(stderr, "epoch %lld%s%.0lld  log10L %s  gamma %s  layer %s  acc %s  alpha %s  "
                    "rej %lld  %s s/epoch  ETA %s\n",
            m->epoch, s->max_epochs > 0 ? "/" : "", s->max_epochs > 0 ? s->max_epochs : 0LL,
            cli_g(m->log10_loss, 6), cli_g(m->normalized_margin, 4), cli_g(m->layer_margin, 4), acc,
            cli_g(m->lr, 3), m->rejected, cli_g(m->epoch_seconds, 3), eta);
    c->prev_loss = m->log10_loss;
}

static void cb_progress(void *user, const mf_metrics *m, double sps) {
    exec_ctx *c = user;
    if (c->epochs) {
        epoch_progress(c, m);
        return;
    }
    char t[MF_LOG_VALUE_LEN]; /* "%.3fe%+.0f": at most 6 + 310 characters */
    short_time(t, sizeof t, m->time_log);
    fprintf(stderr, "\rstep %lld  t %s  log10L %s  gamma %s  %.0f steps/s    ", m->step, t,
            cli_g(m->log10_loss, 6), cli_g(m->normalized_margin, 6), sps);
    fflush(stderr);
    c->progress_shown = 1;
}

/* Record why the run failed in o->err; returns code. */
static int fail(run_output *o, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(run_output *o, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof o->err, fmt, ap);
    va_end(ap);
    return code;
}

/* Count the values in an --init-params list that mf_params_parse has read
 * (so every token is a number): tokens between its separators (blanks,
 * commas) outside '#' comments. */
static size_t count_values(const char *s) {
    size_t k = 0;
    int in = 0;
    for (; *s; s++) {
        if (*s == '#') {
            while (s[1] && s[1] != '\n') s++;
            in = 0;
            continue;
        }
        int sep = strchr(" \t\r\n,\f\v", *s) != NULL;
        if (!sep && !in) k++;
        in = !sep;
    }
    return k;
}

/* Load spec (format as given) and take its subset: limit samples, the two
 * classes of c. *out, or a CLI exit code with why filled. */
static int load_subset(const run_config *c, const char *path, int limit, mf_data **out, char *why,
                       size_t cap) {
    mf_err e = {0, ""};
    mf_data *D = NULL, *S = NULL;
    int code = cli_load_data(path, c->format, &D, why, cap);
    if (code) return code;
    if (limit > 0 || c->n_classes == 2) {
        if (D->num_classes < 2) {
            cli_fmt(why, cap, "%s: --train-limit, --test-limit and --classes need multi-class data "
                    "(class indices as labels)", cli_q(path));
            mf_data_free(D);
            return CLI_EXIT_USAGE;
        }
        int rc = mf_data_select(D, c->n_classes == 2 ? c->classes : NULL, limit, c->data_seed, &S,
                                &e);
        mf_data_free(D);
        if (rc) {
            cli_fmt(why, cap, "%s", e.msg);
            return cli_exit_for(rc, 1);
        }
        D = S;
    }
    *out = D;
    return 0;
}

int run_load_data(const run_config *c, mf_data **train, mf_data **test, char *why, size_t cap) {
    *train = *test = NULL;
    int code = load_subset(c, c->data_path, c->train_limit, train, why, cap);
    if (!code && c->test_spec) code = load_subset(c, c->test_path, c->test_limit, test, why, cap);
    if (!code && *test && ((*test)->d != (*train)->d || (*test)->num_classes != (*train)->num_classes)) {
        cli_fmt(why, cap, "the test set %s has dimension %d and %d classes, the training set %d and %d",
                cli_q(c->test_spec), (*test)->d, (*test)->num_classes ? (*test)->num_classes : 2, (*train)->d,
                (*train)->num_classes ? (*train)->num_classes : 2);
        code = CLI_EXIT_USAGE;
    }
    if (code) {
        mf_data_free(*train);
        mf_data_free(*test);
        *train = *test = NULL;
    }
    return code;
}

int run_data_hash_check(const run_config *c, const mf_data *d, const mf_data *test,
                        const char *dir, char *why, size_t cap) {
    if (c->hash == RUN_HASH_NEW) return 0;
    if (c->hash == RUN_HASH_ABSENT) {
        cli_fmt(why, cap, "warning: %s/config.json records no data_hash (the run was written "
                "before marginflow checked data contents), so the data %s cannot be checked "
                "against it", cli_q(dir), cli_q(c->data_spec));
        return 1;
    }
    uint32_t h = mf_data_hash(d);
    if (h != c->data_hash) {
        cli_fmt(why, cap, "the data %s no longer match the run: their data_hash is %08x, but "
                "%s/config.json records %08x; restore the data the run was made with, or start "
                "a new run", cli_q(c->data_spec), (unsigned)h, cli_q(dir), (unsigned)c->data_hash);
        return -1;
    }
    if (!test) return 0;
    h = mf_data_hash(test);
    if (h == c->test_hash) return 0;
    cli_fmt(why, cap, "the test data %s no longer match the run: their data_hash is %08x, but "
            "%s/config.json records %08x (data.test.data_hash); restore the data the run was made "
            "with, or start a new run", cli_q(c->test_spec), (unsigned)h, cli_q(dir),
            (unsigned)c->test_hash);
    return -1;
}

/* Settings, data, model, and the initial values typed as a list (into
 * *values, owned by the caller; rc->init_values then points there). The
 * data's hash is compared with the one the run recorded (resume), or
 * recorded (a new run, or a run written before data hashes: *had_no_hash
 * set and *fp_prev the fingerprint its checkpoint carries). */
static int exec_prepare(run_config *rc, const run_exec *x, run_output *o, double **values,
                        int *had_no_hash, uint32_t *fp_prev) {
    mf_err e = {0, ""};
    const char *why = mf_train_settings_validate(&rc->s);
    if (why) return fail(o, CLI_EXIT_USAGE, "%s", why);
    int code = run_load_data(rc, &o->data, &o->test, o->err, sizeof o->err);
    if (code) return code;
    rc->s.test = o->test;
    char hw[MF_ERR_LEN];
    int hc = run_data_hash_check(rc, o->data, o->test, x->dir, hw, sizeof hw);
    if (hc < 0) return fail(o, CLI_EXIT_USAGE, "cannot resume: %s", hw);
    if (hc > 0 && x->log >= RUN_LOG_WARNINGS)
        cli_error("%s; from now on it records the hash of these data", hw);
    /* a run without a hash: its checkpoint carries the identity without
     * one (*fp_prev); from now on the run records the hash of these data
     * (the checkpoint is re-stamped, config.json rewritten with it) */
    *had_no_hash = rc->hash == RUN_HASH_ABSENT;
    if (rc->hash != RUN_HASH_RECORDED)
        rc->data_hash = mf_data_hash(o->data), rc->test_hash = mf_data_hash(o->test);
    int rc2 = mf_model_parse(rc->model_spec, o->data->d, o->data->num_classes, &o->model, &e);
    if (rc2) return fail(o, cli_exit_for(rc2, 1), "%s", e.msg);
    const mf_model *m = o->model;
    if (rc->init_text && !rc->init_values) {
        /* parsed first, so a token that is not a number is named as such
         * ("1;2"), then counted */
        *values = malloc(sizeof(double) * (m->n_params ? m->n_params : 1));
        if (!*values) return fail(o, CLI_EXIT_ERROR, "out of memory");
        rc2 = mf_params_parse(rc->init_text, m->n_params, *values, &e);
        if (rc2 == MF_ERR_DIM)
            return fail(o, CLI_EXIT_USAGE, "--init-params: expected %zu values for %s, got %zu; "
                        "see marginflow layout --model '%s' --data '%s'",
                        m->n_params, m->spec, count_values(rc->init_text), m->spec,
                        cli_q(rc->data_spec));
        if (rc2) return fail(o, cli_exit_for(rc2, 1), "--init-params: %s", e.msg);
        rc->init_values = *values;
        rc->n_init = (int)m->n_params;
    }
    if (rc->init_values && (size_t)rc->n_init != m->n_params)
        return fail(o, CLI_EXIT_USAGE, "init.params has %d values, %s needs %zu", rc->n_init,
                    m->spec, m->n_params);
    if (*had_no_hash) *fp_prev = fingerprint(rc, o->data, m, 0);
    rc->hash = rc->hash == RUN_HASH_RECORDED ? RUN_HASH_RECORDED : RUN_HASH_NEW;
    o->fingerprint = fingerprint(rc, o->data, m, 0);
    return 0;
}

/* The initial parameters of a new run into theta (c->init_kind), times
 * c->init_multiply; a params file must be one of this model
 * (mf_params_read_for checks its header). */
static int exec_init(const run_config *c, const mf_model *m, double *theta, char *why, size_t cap) {
    mf_err e = {0, ""};
    int rc;
    if (c->init_values) {
        memcpy(theta, c->init_values, m->n_params * sizeof(double));
        rc = MF_OK;
    } else if (c->init_file) {
        rc = mf_params_read_for(c->init_file, m, theta, &e);
    } else {
        mf_rng rng;
        mf_rng_seed(&rng, c->s.seed);
        rc = mf_model_init(m, c->init_kind, c->init_scale, &rng, theta, &e);
    }
    if (rc) cli_fmt(why, cap, "%s", e.msg);
    else if (c->init_multiply != 1.0)
        for (size_t k = 0; k < m->n_params; k++) theta[k] *= c->init_multiply;
    return rc ? cli_exit_for(rc, 1) : 0;
}

/* The state to train from: read from the checkpoint (resume; a version-1
 * train run's checkpoint carries the version-1 fingerprint: *restamp set),
 * or new with the initial parameters, in a new directory with the step-0
 * checkpoint and the metrics header written. */
static int exec_state(const run_config *c, const run_exec *x, run_output *o, run_dir *rd,
                      mf_train_state **st, int *restamp, int had_no_hash, uint32_t fp_prev) {
    mf_err e = {0, ""};
    int rc;
    if (x->resume) { /* the directory was opened (and locked) by run_execute */
        char *cp = cli_join(rd->path, "checkpoint.bin");
        rc = cp ? mf_checkpoint_read(cp, o->fingerprint, o->model->n_params, st, &e) : MF_ERR_NOMEM;
        if (rc == MF_ERR_FOREIGN && (c->v1.present || had_no_hash)) {
            mf_err e1 = {0, ""};
            uint32_t fp1 = c->v1.present ? fingerprint(c, o->data, o->model, 1) : fp_prev;
            if (mf_checkpoint_read(cp, fp1, o->model->n_params, st, &e1) == MF_OK) rc = MF_OK, *restamp = 1;
        }
        free(cp);
        if (rc) return fail(o, cli_exit_for(rc, 1), "cannot resume: %s", e.msg);
        return 0;
    }
    if (mf_train_state_new(o->model->n_params, st, &e))
        return fail(o, CLI_EXIT_ERROR, "%s", e.msg);
    if ((rc = exec_init(c, o->model, (*st)->theta, o->err, sizeof o->err))) return rc;
    if ((rc = run_dir_create(rd, x->dir, x->replace, o->err, sizeof o->err))) return rc;
    /* Before config.json marks the folder as a run, write (atomically) what
     * --resume needs: the step-0 checkpoint and the metrics header. A
     * SIGKILL at any later moment leaves a resumable run; one before it
     * leaves no config.json, and the same command starts afresh. */
    char *cp0 = cli_join(rd->path, "checkpoint.bin"), *mp0 = cli_join(rd->path, "metrics.csv");
    char hdr[512];
    snprintf(hdr, sizeof hdr, "%s\n", metrics_header(&c->s));
    rc = cp0 && mp0 ? MF_OK : MF_ERR_NOMEM;
    if (rc == MF_OK && x->checkpoint) rc = mf_checkpoint_write(cp0, *st, o->fingerprint, &e);
    if (rc == MF_OK) rc = mf_write_file_atomic(mp0, hdr, strlen(hdr), &e);
    free(cp0);
    free(mp0);
    if (rc) return fail(o, CLI_EXIT_ERROR, "%s", rc == MF_ERR_NOMEM ? "out of memory" : e.msg);
    return 0;
}

/* config.json (rewritten on resume: the stopping criteria may change),
 * command.txt, and the metrics file opened for appending (cut back to the
 * checkpoint's step on resume). A re-stamped checkpoint is written first. */
static int exec_start(const run_config *c, const run_exec *x, exec_ctx *cx,
                      const mf_train_state *st, int restamp) {
    mf_err e = {0, ""};
    run_output *o = cx->out;
    int rc;
    if (restamp && mf_checkpoint_write(cx->ckpt_path, st, cx->fingerprint, &e))
        return fail(o, CLI_EXIT_ERROR, "%s", e.msg);
    if (write_config(cx->dir, c, o->data, o->model, x->resume, &e))
        return fail(o, CLI_EXIT_ERROR, "%s", e.msg);
    if (x->command && (rc = write_command(cx->dir, x->resume ? "# resumed: " : "", !x->resume,
                                          o->err, sizeof o->err)))
        return rc;
    char *mp = cli_join(cx->dir, "metrics.csv");
    if (!mp) return fail(o, CLI_EXIT_ERROR, "out of memory");
    if (x->resume && (rc = truncate_metrics(mp, metrics_header(&c->s), st->step,
                                            &cx->legacy_columns, o->err, sizeof o->err))) {
        free(mp);
        return rc;
    }
    cx->metrics = fopen(mp, "ab"); /* the header is already there */
    if (!cx->metrics) cli_fmt(o->err, sizeof o->err, "cannot open %s: %s", mp, strerror(errno));
    free(mp);
    return cx->metrics ? 0 : CLI_EXIT_ERROR;
}

/* mf_train with the callbacks of x; the metrics file is closed after. */
static int exec_train(const run_config *c, const run_exec *x, exec_ctx *cx, mf_train_state *st) {
    run_output *o = cx->out;
    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.user = cx;
    cb.log = cb_log;
    cb.on_metrics = cb_metrics;
    if (x->snapshots) cb.on_snapshot = cb_snapshot;
    if (x->checkpoint) cb.on_checkpoint = cb_checkpoint;
    if (x->signals || x->stop) cb.should_stop = cb_should_stop;
    if (x->progress) cb.on_progress = cb_progress;
    if (x->archive && cx->epochs) cb.on_archive = cb_archive;
    cb.progress_seconds = 0.5;
    struct sigaction sa, old_int, old_term;
    if (x->signals) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
    }
    mf_err e = {0, ""};
    int rc = mf_train(cx->m, o->data, &c->s, st, &cb, &o->res, &e);
    if (x->signals) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (cx->progress_shown) fputc('\n', stderr);
    int closed = fclose(cx->metrics) == 0;
    cx->metrics = NULL;
    if (!closed && rc == MF_OK) {
        cli_fmt(o->err, sizeof o->err, "cannot write %s/metrics.csv: %s", cx->dir, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    if (rc) {
        cli_fmt(o->err, sizeof o->err, "%s", rc == MF_ERR_CALLBACK && cx->err[0] ? cx->err : e.msg);
        return cli_exit_for(rc, 0);
    }
    return 0;
}

/* The final checkpoint, params.txt, summary.json, snapshots.csv; the final
 * theta kept for the caller. */
static int exec_finish(const run_config *c, const run_exec *x, exec_ctx *cx,
                       const mf_train_state *st) {
    run_output *o = cx->out;
    const mf_model *m = cx->m;
    mf_err e = {0, ""};
    if (x->checkpoint && mf_checkpoint_write(cx->ckpt_path, st, cx->fingerprint, &e) != MF_OK)
        return fail(o, CLI_EXIT_ERROR, "%s", e.msg);
    if (x->keep) {
        o->theta = malloc(sizeof(double) * (m->n_params ? m->n_params : 1));
        if (!o->theta) return fail(o, CLI_EXIT_ERROR, "out of memory");
        memcpy(o->theta, st->theta, m->n_params * sizeof(double));
    }
    char *pp = cli_join(cx->dir, "params.txt");
    int rc = pp ? mf_params_write(pp, m, st->theta, &e) : MF_ERR_NOMEM;
    free(pp);
    if (rc) return fail(o, CLI_EXIT_ERROR, "%s", e.msg[0] ? e.msg : "out of memory");
    if (run_write_summary(cx->dir, &c->s, o->data, m, &o->res, o->err, sizeof o->err))
        return CLI_EXIT_ERROR;
    if (x->snapshots) write_snapshots(cx->dir, m, o);
    return 0;
}

int run_execute(const run_config *c, const run_exec *x, run_output *out) {
    memset(out, 0, sizeof *out);
    run_config rc = *c; /* with the typed initial values resolved */
    double *values = NULL;
    mf_train_state *st = NULL;
    run_dir rd = {NULL, -1};
    exec_ctx cx;
    memset(&cx, 0, sizeof cx);
    /* a resume locks the run first: a run being trained is not touched */
    int restamp = 0, code = x->resume ? run_dir_open(&rd, x->dir, out->err, sizeof out->err) : 0;
    int had_no_hash = 0;
    uint32_t fp_prev = 0;
    if (!code) code = exec_prepare(&rc, x, out, &values, &had_no_hash, &fp_prev);
    if (!code) code = exec_state(&rc, x, out, &rd, &st, &restamp, had_no_hash, fp_prev);
    if (!code) out->start_step = st->step;
    if (!code) {
        cx.x = x, cx.out = out, cx.m = out->model, cx.dir = rd.path;
        cx.s = &rc.s, cx.epochs = mf_train_is_epoch_run(&rc.s), cx.prev_loss = NAN;
        cx.fingerprint = out->fingerprint;
        cx.ckpt_path = cli_join(rd.path, "checkpoint.bin");
        if (!cx.ckpt_path) code = CLI_EXIT_ERROR, cli_fmt(out->err, sizeof out->err, "out of memory");
    }
    if (!code) code = exec_start(&rc, x, &cx, st, restamp);
    if (!code) code = exec_train(&rc, x, &cx, st);
    if (!code) code = exec_finish(&rc, x, &cx, st);
    if (cx.metrics) fclose(cx.metrics);
    free(cx.ckpt_path);
    run_dir_close(&rd);
    mf_train_state_free(st);
    free(values);
    return code;
}

void run_output_free(run_output *o) {
    if (!o) return;
    mf_data_free(o->data);
    mf_data_free(o->test);
    mf_model_free(o->model);
    free(o->theta);
    free(o->rows);
    free(o->snaps);
    memset(o, 0, sizeof *o);
}
