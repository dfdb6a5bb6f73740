/*
 * test_durability.h — what the two files of test_durability share: an
 * acknowledged enroll, reading the database behind the daemon's back, and
 * the corrupt-file test case (test_durability_files.c).
 */
#ifndef TEST_DURABILITY_H
#define TEST_DURABILITY_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* An enroll the daemon answered 201: subject, its sample ids, and the seed
 * of its images (img_pgm(seed), img_pgm(seed + 1), ...). */
typedef struct {
    char subject[32];
    int64_t ids[2];
    uint32_t seed;
    int n;    /* samples */
    int last; /* the last one a crash-test thread had acknowledged */
} Ack;

/* First column of the first row of sql, on a read-only connection (out gets
 * the SQLite error instead when there is none). */
void db_text(const char *db, const char *sql, char *out, size_t size);
/* The same as an integer; asserts that it is one. */
long long db_int(const char *db, const char *sql);
/* How many of the n acks GET /subjects/{id} does not show with exactly
 * their sample ids; the first such in first. */
int acks_missing(int port, const Ack *a, int n, char *first, size_t size);
/* Asserts identify with the ack's first image ranks its subject first. */
void identify_finds_ok(int port, const Ack *a);

TCase *tcase_files(void); /* test_durability_files.c */

#endif
