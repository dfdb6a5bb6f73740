/*
 * prove_util.h — what test_durability.c and test_hostile.c share on top of
 * the daemon harness (daemon_harness.h): their main(), a test's own daemon
 * (scratch directory, database, one log per run), reading files and a
 * process's resident memory, a seeded RNG, and the check that a refused
 * start said why in exactly one line.
 *
 * The helpers whose names end in _ok assert (Check); the others return codes.
 */
#ifndef PROVE_UTIL_H
#define PROVE_UTIL_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon_harness.h"

/* A test's own daemon: scratch dir, database (dir/siamesed.db unless the test
 * points db elsewhere), numbered logs dir/runN.log. */
typedef struct {
    Daemon d;
    char dir[320], db[400];
    int runs;
} Own;

void own_init_ok(Own *o, const char *tag);
/* Starts o with --model model --db o->db and the extra flags (may be NULL).
 * 0 serving; -1 exited or never answered (wait status in o->d.status). */
int own_start(Own *o, const char *model, const char *const *extra);
void own_start_ok(Own *o, const char *model, const char *const *extra);
/* SIGTERM: asserts exit 0 and no sanitizer report in the run's log. */
void own_stop_ok(Own *o);
/* Asserts that no run of o (killed ones included) logged a sanitizer report. */
void own_logs_clean_ok(const Own *o);

/* Writes n bytes to path (created or truncated); 0 or -1. */
int spit(const char *path, const void *p, size_t n);

/* VmRSS of a process in KiB, -1 if unknown. */
long rss_kb(pid_t pid);

/* xorshift64*: the tests' only randomness, seeded, so runs repeat. */
typedef struct {
    uint64_t s;
} Rng;
uint64_t rng_next(Rng *r);
/* Uniform in lo..hi (inclusive). */
int rng_range(Rng *r, int lo, int hi);

/* Asserts that the last start of o was refused cleanly: a normal exit with a
 * non-zero code (not a signal), no sanitizer report, and a log of exactly
 * one line that starts with "siamesed: " and contains needle. */
void refused_in_one_line_ok(const Own *o, const char *needle);

/* main() of a test executable: `NAME SIAMESED MKMODEL SRCROOT`. Fills H (a
 * scratch root named after name, models A and B), runs the suite and
 * returns the process's exit status; the scratch root is removed when all
 * passed, kept (and named) otherwise. */
int prove_main(int argc, char **argv, const char *name, Suite *s);
/* prove_main in two halves, for a main that decides between them whether
 * to run at all: prove_init fills H (0, or the exit status on failure);
 * prove_run runs s, removes the scratch root if all passed (curl cleaned up
 * either way) and returns the exit status. */
int prove_init(int argc, char **argv, const char *name);
int prove_run(const char *name, Suite *s);

#endif
