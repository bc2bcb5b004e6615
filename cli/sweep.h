/*
 * sweep.h -- what `marginflow sweep` (cli/sweep.c) and `marginflow
 * sweep-report` (cli/sweep_report.c) share: the layout of a sweep directory
 * and its two file formats (docs/sweeps.md).
 *
 *   DIR/sweep.json             "marginflow-sweep" v1: the grid (as given),
 *                              its file, and every point's id and axis values
 *   DIR/points/<id>/lock       held (fcntl write lock) while a process runs
 *                              the point; released when it ends or dies
 *   DIR/points/<id>/point.json the point's id, axis values and identity
 *   DIR/points/<id>/run/       its run directory (cli/rundir.c), with
 *                              analysis.json when the grid analyzes
 *   DIR/points/<id>/result.json "marginflow-sweep-point" v1, written
 *                              atomically last: the point is finished
 *                              exactly when this file holds its id
 */
#ifndef MF_CLI_SWEEP_H
#define MF_CLI_SWEEP_H

#include "grid.h"

#define SWEEP_META_FORMAT "marginflow-sweep"
#define SWEEP_RESULT_FORMAT "marginflow-sweep-point"

/* DIR/points/<id>, or DIR/points/<id>/<name> when name is not NULL;
 * malloc'd (NULL when out of memory). */
char *sweep_point_path(const char *dir, const char *id, const char *name);

/* The result.json of point id in DIR when it is a finished result of that
 * point (format, version and id checked), else NULL. */
cJSON *sweep_result_read(const char *dir, const char *id);

/* The grid of the sweep in DIR (DIR/sweep.json), parsed and validated as
 * grid_parse does. Returns 0, or -1 with why "DIR/sweep.json: ...". */
int sweep_grid_read(const char *dir, sweep_grid *g, char *why, size_t cap);

#endif
