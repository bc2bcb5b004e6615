/*
 * main.c -- the marginflow command: `marginflow <command> [options]`.
 *
 * Dispatches to the subcommands in the table below; adding a command is one
 * line here plus its function (declared in cli.h). `marginflow --help` /
 * `marginflow help` list them, `marginflow help CMD` is `marginflow CMD
 * --help`, `marginflow --version` prints the library version. An unknown
 * command prints a message and exits 2.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cli_argc;
char **cli_argv;

static const cli_command commands[] = {
    {"train", cli_train, "train a model on a data set; writes a run directory"},
    {"layout", cli_layout, "print the parameter order of a model (for --init-params)"},
    {"svm", cli_svm, "exact max-margin reference (l2 SVM / l1 LP) of a data set"},
    {"analyze", mf_cli_analyze, "KKT certificates and optimality verdict for a trained run"},
    {"maxmargin", mf_cli_maxmargin, "multi-start search for the best normalized margin (a search)"},
    {"global", mf_cli_global, "certified global max-margin value of two-layer ReLU nets"},
    {"reproduce", cli_reproduce, "run the papers' claims as checks; figures and a report"},
    {"robust", cli_robust, "L2 robustness (PGD, Carlini-Wagner) of a run's archived states"},
    {"sweep", cli_sweep, "run a grid of runs (cores, job arrays, MPI); resumable"},
    {"sweep-report", cli_sweep_report, "results.csv and figures of a sweep directory"},
    {"plot", cli_plot, "figures of your own runs (run directories, sweep points, sweeps)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f,
            "usage: marginflow <command> [options]\n"
            "\n"
            "marginflow %s -- margin maximization in homogeneous neural networks\n"
            "\n"
            "commands:\n",
            MF_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "  marginflow <command> --help   options of a command\n"
            "  marginflow --version          print the version\n"
            "\n"
            "exit codes: 0 finished, 1 I/O or other error, 2 bad usage or bad input,\n"
            "            3 data not separable (svm, global), 4 run ended non-finite,\n"
            "            130 interrupted\n");
}

static const cli_command *find(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    cli_argc = argc;
    cli_argv = argv;
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (!strcmp(cmd, "help") && argc > 2) {
            const cli_command *c = find(argv[2]);
            if (!c) {
                cli_error("unknown command '%s'; see marginflow --help", cli_q(argv[2]));
                return CLI_EXIT_USAGE;
            }
            char *sub[] = {argv[2], "--help", NULL};
            return c->run(2, sub);
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("marginflow %s\n", MF_VERSION);
        return CLI_EXIT_OK;
    }
    const cli_command *c = find(cmd);
    if (!c) {
        cli_error("unknown command '%s'; see marginflow --help", cli_q(cmd));
        return CLI_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
