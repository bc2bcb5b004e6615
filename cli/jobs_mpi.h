/*
 * jobs_mpi.h -- the Open MPI backend of the task pool (cli/jobs_mpi.c),
 * compiled only into build/marginflow-mpi (`make mpi`, -DMF_MPI).
 *
 * jobs_mpi hands out task indices dynamically: rank 0 serves them -- it
 * alone calls spec->next and spec->on_done, and it alone has every entry
 * of st[] filled -- and every rank (rank 0 too) runs up to spec->workers
 * tasks at once, each in a forked child (which makes no MPI call and ends
 * with _exit), asking rank 0 for the next index whenever a slot is free.
 * So slow tasks do not stall the others, and a rank that dies takes only
 * its running tasks with it. Every rank must call jobs_run_spec with this
 * backend and the same n_tasks and task; it returns on every rank after
 * every rank has run its last task. Setting *stop on a rank stops its
 * requests (rank 0: its hand-out) and sends spec->stop_signal to its
 * running tasks.
 */
#ifndef MF_CLI_JOBS_MPI_H
#define MF_CLI_JOBS_MPI_H

#include "jobs.h"

extern const jobs_backend jobs_mpi;

/* MPI_Init (once per process); 0, or -1 when MPI cannot start. */
int jobs_mpi_init(void);
int jobs_mpi_rank(void);
int jobs_mpi_size(void);
/* Collectives over all ranks: rank 0's v, and the largest v. */
int jobs_mpi_bcast_int(int v);
int jobs_mpi_max_int(int v);
/* MPI_Finalize (when initialized). */
void jobs_mpi_finalize(void);

#endif
