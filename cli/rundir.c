/*
 * rundir.c -- the run-directory files that `marginflow train` and
 * `marginflow reproduce` both write: the settings as JSON (config.json,
 * summary.json) and summary.json itself (outcome, final metrics, speed,
 * model, data, settings). Kept in one place so a run made by reproduce reads
 * exactly like one made by train.
 */
#include "cli.h"

#include <stdlib.h>

/* The training settings as a JSON object. with_stopping = 0 leaves out the
 * stopping criteria (train's checkpoint fingerprint is computed from the
 * configuration without them). NULL when out of memory. */
cJSON *cli_settings_json(const mf_train_settings *s, int with_stopping) {
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
    if (with_stopping) {
        cli_json_int(o, "max_steps", s->max_steps);
        cli_json_num(o, "until_log10_loss", s->until_log10_loss);
        cli_json_num(o, "until_margin_gap", s->until_margin_gap);
        cli_json_num(o, "until_time", s->until_time);
        cli_json_num(o, "wall_seconds", s->wall_seconds);
    }
    return o;
}

/* Write DIR/summary.json (atomically) for a finished run: format name and
 * version, outcome, steps, speed, the final metrics (t both as an exact
 * decimal string and as log t), model, data and settings. Returns an
 * mf_error code; the message is printed with cli_error. */
int cli_write_summary(const char *dir, const mf_train_settings *s, const mf_data *d,
                      const mf_model *m, const mf_train_result *r) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return MF_ERR_NOMEM;
    cli_json_str(root, "format", "marginflow-summary");
    cli_json_int(root, "version", 1);
    cli_json_str(root, "library_version", MF_VERSION);
    cli_json_str(root, "outcome", mf_outcome_name(r->outcome));
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
        char t[64];
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
    cJSON *mj = cJSON_AddObjectToObject(root, "model");
    if (mj) {
        cli_json_str(mj, "spec", m->spec);
        cli_json_int(mj, "n_params", (long long)m->n_params);
        cli_json_int(mj, "degree", m->degree);
        cJSON_AddBoolToObject(mj, "homogeneous", m->homogeneous != 0);
    }
    cJSON *dj = cJSON_AddObjectToObject(root, "data");
    if (dj) {
        cli_json_str(dj, "desc", d->desc);
        cli_json_int(dj, "n", d->n);
        cli_json_int(dj, "d", d->d);
        cli_json_int(dj, "num_classes", d->num_classes);
    }
    cJSON_AddItemToObject(root, "settings", cli_settings_json(s, 1));
    char *path = cli_join(dir, "summary.json");
    mf_err e = {0, ""};
    int rc = path ? cli_json_write(path, root, &e) : MF_ERR_NOMEM;
    if (rc) cli_error("%s", rc == MF_ERR_NOMEM && !path ? "out of memory" : e.msg);
    free(path);
    cJSON_Delete(root);
    return rc;
}
