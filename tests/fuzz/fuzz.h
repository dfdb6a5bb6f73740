/*
 * fuzz.h — what every fuzz target in tests/fuzz shares.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput() and nothing else that
 * is visible. The same object links either with libFuzzer (clang,
 * -Dfuzz=true) or with replay_main.c, which runs it over a corpus as a plain
 * test. A target returns 0 for every input; it reports a broken contract (a
 * value the header promises and the module did not deliver) with
 * FUZZ_CHECK(), which aborts, so that the fuzzer and the replay test both
 * count it as a crash.
 */
#ifndef SIAMESE_FUZZ_H
#define SIAMESE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the failed condition when cond is false. Not assert(): it must
 * hold in every build, NDEBUG or not. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);

/* Replaces the contents of one process-wide in-memory file (memfd) with
 * data and returns a path that opens it ("/proc/self/fd/N"), for the APIs
 * that read only from a path. Aborts when no memfd can be had: that is the
 * environment failing, not the code under test. Borrowed static string. */
const char *fuzz_memfile(const uint8_t *data, size_t size);

#endif
