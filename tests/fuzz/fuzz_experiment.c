/*
 * fuzz_experiment.c -- libFuzzer harness for the experiment (claim) files of
 * `marginflow reproduce` (rp_experiment_parse, cli/experiment.c). Input: the
 * file's bytes (at most 256 KiB), parsed once as the full claim and once with
 * its quick overrides merged. Nothing is trained: the parser only reads,
 * validates and expands (at most RP_MAX_RUNS runs per claim), so every input
 * is bounded.
 * Checks: a refusal is one non-empty sentence that starts with the file's
 * name and leaves no runs or checks; an accepted file has 1..RP_MAX_RUNS
 * runs with valid train settings (mf_train_settings_validate), non-empty
 * names that are unique, finite init values, vary values and w_ref; its
 * checks have known quantities (rows of the check table, cli/checks.c),
 * carry only keys their quantity reads and every key it needs, and known
 * columns; its figures have known kinds. The harness links the parser with
 * cli/json.c, cli/checks.c and cli/common.c (see the Makefile).
 */
#include "fuzz.h"

/* the command line the run directory records (cli/main.c has them in the program) */
int cli_argc;
char **cli_argv;

#include "checks.h"
#include "experiment.h"

#include <math.h>

#define NAME "fuzz.json"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("experiment");
    return 0;
}

static int listed(const char *const *list, const char *s) {
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

static void check_ok(const rp_experiment *x) {
    FUZZ_ASSERT(x->root != NULL);
    FUZZ_ASSERT(x->title && x->paper && x->reference && x->statement);
    FUZZ_ASSERT(isnan(x->gamma_star) || isfinite(x->gamma_star));
    FUZZ_ASSERT(x->n_wref >= 0 && x->n_wref <= RP_MAX_WREF);
    for (int j = 0; j < x->n_wref; j++) FUZZ_ASSERT(isfinite(x->wref[j]));
    FUZZ_ASSERT(x->nruns >= 1 && x->nruns <= RP_MAX_RUNS && x->runs);
    for (int i = 0; i < x->nruns; i++) {
        const rp_run *r = &x->runs[i];
        FUZZ_ASSERT(memchr(r->name, '\0', sizeof r->name) && r->name[0]);
        FUZZ_ASSERT(memchr(r->base, '\0', sizeof r->base) && r->base[0]);
        FUZZ_ASSERT(memchr(r->data_spec, '\0', sizeof r->data_spec) && r->data_spec[0]);
        FUZZ_ASSERT(memchr(r->model_spec, '\0', sizeof r->model_spec));
        FUZZ_ASSERT(mf_train_settings_validate(&r->s) == NULL);
        FUZZ_ASSERT(r->s.seed == r->seed && r->seed <= (uint64_t)RP_MAX_SEED);
        FUZZ_ASSERT(!r->has_vary || isfinite(r->vary));
        FUZZ_ASSERT((r->init_params == NULL) == (r->n_init == 0));
        for (int k = 0; k < r->n_init; k++) FUZZ_ASSERT(isfinite(r->init_params[k]));
        if (!r->init_params) FUZZ_ASSERT(isfinite(r->init_scale));
        FUZZ_ASSERT(!r->done && !r->data && !r->model && !r->theta && !r->rows);
        /* directory names unique (quadratic: only for small claims) */
        for (int k = 0; k < i && x->nruns <= 300; k++) FUZZ_ASSERT(strcmp(r->name, x->runs[k].name));
    }
    FUZZ_ASSERT(x->nchecks >= 1 && x->nchecks <= RP_MAX_CHECKS && x->checks);
    mf_metrics z;
    memset(&z, 0, sizeof z);
    for (int i = 0; i < x->nchecks; i++) {
        FUZZ_ASSERT(cJSON_IsObject(x->checks[i].spec));
        const rp_quantity *q = rp_quantity_find(x->checks[i].quantity);
        FUZZ_ASSERT(q && q == x->checks[i].def);
        /* only keys the quantity reads (and "quantity", "comment") */
        const cJSON *kv;
        cJSON_ArrayForEach(kv, x->checks[i].spec) {
            int allowed = !strcmp(kv->string, "quantity") || !strcmp(kv->string, "comment");
            for (int k = 0; q->keys[k] && !allowed; k++) allowed = !strcmp(q->keys[k], kv->string);
            FUZZ_ASSERT(allowed);
        }
        for (int k = 0; q->required[k]; k++) FUZZ_ASSERT(cJSON_GetObjectItemCaseSensitive(x->checks[i].spec, q->required[k]));
        FUZZ_ASSERT(!x->checks[i].column || !isnan(rp_col(&z, x->checks[i].column)));
    }
    FUZZ_ASSERT(x->nfigures >= 0 && x->nfigures <= RP_MAX_FIGURES);
    for (int i = 0; i < x->nfigures; i++) FUZZ_ASSERT(listed(rp_figure_kinds, x->figures[i]));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > ((size_t)256 << 10)) return 0;
    for (int quick = 0; quick < 2; quick++) {
        rp_experiment x;
        char why[MF_ERR_LEN];
        memset(why, 'x', sizeof why);
        int rc = rp_experiment_parse((const char *)data, size, NAME, quick, &x, why, sizeof why);
        FUZZ_ASSERT(memchr(why, '\0', sizeof why) != NULL);
        if (rc) {
            FUZZ_ASSERT(rc == -1);
            FUZZ_ASSERT(strncmp(why, NAME ":", strlen(NAME ":")) == 0 && strlen(why) > strlen(NAME ":"));
            FUZZ_ASSERT(x.nruns == 0 && x.runs == NULL && x.nchecks == 0 && x.checks == NULL);
        } else {
            FUZZ_ASSERT(why[0] == '\0');
            check_ok(&x);
        }
        rp_experiment_free(&x);
        FUZZ_ASSERT(x.root == NULL && x.runs == NULL);
    }
    return 0;
}
