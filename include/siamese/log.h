/*
 * log.h — one-line log messages on stderr: "2026-01-01T12:00:00Z level message".
 * Thread-safe (one fprintf per line). log_set_level() filters below a level.
 * On a terminal, one progress line may stand below them (log_progress()).
 */
#ifndef SIAMESE_LOG_H
#define SIAMESE_LOG_H

#include <stdio.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } LogLevel;

void log_set_level(LogLevel level);
/* Parses "debug", "info", "warn" or "error"; returns -EINVAL otherwise. */
int log_parse_level(const char *s, LogLevel *out);
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether log_msg(level, ...) would print: for callers that must prepare
 * the arguments of a line (the access log) before they can log it. */
int log_enabled(LogLevel level);

/* A write-only stream whose every line becomes one log_msg(level, line):
 * progress written by modules that take a FILE * (the trainer) then shares
 * the log's format and honours log_set_level(). Terminal control is dropped:
 * "\r" discards the line so far (a redrawn bar), escapes like "\033[K" go;
 * a line without its newline is logged at fclose().
 * Caller closes it with fclose(). NULL if out of memory. */
FILE *log_stream(LogLevel level); /* "warning: x" lines go out as "warn x" */

/* A progress line for long runs: on a terminal, one line ("enroll [###  ]
 * 40% ...", printf format, the first line of it) redrawn in place below the
 * log lines, which keep printing above it; log_progress_end() leaves it as it
 * stands and ends it. Nothing unless stderr is a terminal and the level lets
 * info through (log_progress_shown()): elsewhere callers log a line now and
 * then instead. Thread-safe. */
int log_progress_shown(void);
void log_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_progress_end(void);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
