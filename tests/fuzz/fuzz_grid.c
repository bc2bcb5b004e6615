/*
 * fuzz_grid.c -- libFuzzer harness for the grid files of `marginflow sweep`
 * (grid_parse, cli/grid.c). Input: the file's bytes (at most 64 KiB), parsed
 * with a limit of 2000 points (the limit is a parameter, so the expansion
 * of every point stays within the per-input timeout). Nothing is trained
 * and no data is loaded (grid_check_runs is not called: a data spec may
 * name any file).
 * Checks: a refusal is one non-empty sentence that starts with the file's
 * name; an accepted grid has 1..GRID_MAX_AXES axes of 1..GRID_MAX_VALUES
 * values each (numbers finite, or strings), whose product is npoints
 * (1..2000); ids of 16 lower-case hex digits, all distinct; every point
 * re-expands (grid_point) to a run with valid train settings, the grid's
 * checkpoint_every and the same id; figures have known kinds naming axes
 * and columns. The harness links the parser with cli/experiment.c,
 * cli/rundir.c (run settings as JSON), cli/json.c, cli/checks.c and
 * cli/common.c (see the Makefile).
 */
#include "fuzz.h"

#include "grid.h"
#include "rundir.h"

#include <math.h>

#define NAME "fuzz.json"
#define MAX_POINTS 2000

int cli_argc; /* cli/rundir.c records the command line (defined by main.c) */
char **cli_argv;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("grid");
    return 0;
}

/* Point i re-expanded has the id computed at parse time. */
static void check_point(const sweep_grid *g, int i) {
    rp_run r;
    char why[MF_ERR_LEN];
    FUZZ_ASSERT(grid_point(g, i, &r, why, sizeof why) == 0);
    FUZZ_ASSERT(mf_train_settings_validate(&r.s) == NULL);
    FUZZ_ASSERT(r.s.checkpoint_every == g->checkpoint_every);
    FUZZ_ASSERT(memchr(r.data_spec, '\0', sizeof r.data_spec) && r.data_spec[0]);
    cJSON *id = grid_identity(g, &r);
    FUZZ_ASSERT(id != NULL);
    cJSON_Delete(id);
    free(r.init_params);
    char d[512];
    grid_point_desc(g, i, d, sizeof d);
    FUZZ_ASSERT(memchr(d, '\0', sizeof d) != NULL);
}

static void check_ok(const sweep_grid *g) {
    FUZZ_ASSERT(g->root && g->base && cJSON_IsObject(g->base));
    FUZZ_ASSERT(g->naxes >= 1 && g->naxes <= GRID_MAX_AXES);
    double prod = 1;
    for (int a = 0; a < g->naxes; a++) {
        const grid_axis *ax = &g->axes[a];
        FUZZ_ASSERT(ax->n >= 1 && ax->n <= GRID_MAX_VALUES);
        FUZZ_ASSERT((ax->num == NULL) != (ax->str == NULL));
        for (int k = 0; ax->num && k < ax->n; k++) FUZZ_ASSERT(isfinite(ax->num[k]));
        for (int k = 0; ax->str && k < ax->n; k++) FUZZ_ASSERT(ax->str[k] && ax->str[k][0]);
        FUZZ_ASSERT(grid_axis_find(g, ax->name) == a);
        prod *= ax->n;
    }
    FUZZ_ASSERT(prod == g->npoints && g->npoints >= 1 && g->npoints <= MAX_POINTS);
    for (int i = 0; i < g->npoints; i++) {
        FUZZ_ASSERT(strlen(g->ids[i]) == 16 && strspn(g->ids[i], "0123456789abcdef") == 16);
        for (int a = 0; a < g->naxes; a++) {
            int k = g->vidx[(size_t)i * (size_t)g->naxes + (size_t)a];
            FUZZ_ASSERT(k >= 0 && k < g->axes[a].n);
        }
        for (int j = 0; j < i && g->npoints <= 200; j++) FUZZ_ASSERT(strcmp(g->ids[i], g->ids[j]));
    }
    for (int i = 0; i < g->npoints; i += g->npoints / 7 + 1) check_point(g, i);
    check_point(g, g->npoints - 1);
    FUZZ_ASSERT(g->checkpoint_every >= 0);
    FUZZ_ASSERT(g->class_tol > 0 && g->class_tol < 1);
    FUZZ_ASSERT(isnan(g->gamma_star) || g->gamma_star > 0);
    FUZZ_ASSERT(!g->analyze || mf_analyze_settings_validate(&g->as) == NULL);
    FUZZ_ASSERT(g->nfigures >= 0 && g->nfigures <= GRID_MAX_FIGURES);
    for (int k = 0; k < g->nfigures; k++) {
        const grid_figure *f = &g->figures[k];
        int fr = !strcmp(f->kind, "fractions");
        FUZZ_ASSERT(fr || !strcmp(f->kind, "metric"));
        FUZZ_ASSERT(grid_axis_find(g, f->x) >= 0);
        FUZZ_ASSERT(!f->group || (grid_axis_find(g, f->group) >= 0 && strcmp(f->group, f->x)));
        FUZZ_ASSERT(fr ? f->of && !f->y : f->y && !f->of);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > ((size_t)64 << 10)) return 0;
    sweep_grid g;
    char why[MF_ERR_LEN];
    memset(why, 'x', sizeof why);
    int rc = grid_parse((const char *)data, size, NAME, MAX_POINTS, &g, why, sizeof why);
    FUZZ_ASSERT(memchr(why, '\0', sizeof why) != NULL);
    if (rc) {
        FUZZ_ASSERT(rc == -1);
        FUZZ_ASSERT(strncmp(why, NAME ":", strlen(NAME ":")) == 0 && strlen(why) > strlen(NAME ":"));
    } else {
        FUZZ_ASSERT(why[0] == '\0');
        check_ok(&g);
    }
    grid_free(&g);
    FUZZ_ASSERT(g.root == NULL && g.vidx == NULL && g.ids == NULL);
    return 0;
}
