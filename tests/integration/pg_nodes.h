/*
 * pg_nodes.h — what the many-nodes-on-PostgreSQL tests share (test_pg_nodes.c,
 * test_pg_balancer.c): their main(), which skips when the machine or the
 * binary cannot run them; siamesed nodes on one throwaway cluster
 * (tests/pg_cluster.h); enroll and identify calls that return what happened
 * instead of asserting, so threads can count outcomes.
 *
 * Helpers ending in _ok assert (Check); the others return codes.
 */
#ifndef PG_NODES_H
#define PG_NODES_H

#include "pg_cluster.h"
#include "prove_util.h"

/* The write key every node gets (behind a balancer the nodes need keys:
 * routes_admit.c), and the Authorization value that sends it. */
#define NODE_KEY "pg-nodes-test-key-0123456789"
#define NODE_AUTH "Bearer " NODE_KEY

/* main() of such a test (`NAME SIAMESED MKMODEL SRCROOT`): exit 77 with one
 * line saying why when PostgreSQL's binaries are not installed, or when this
 * siamesed does not take `--db postgresql://…` (it refuses such a URI, or
 * treats it as a SQLite file name and leaves the database empty); otherwise
 * runs s as prove_main does. The test process's working directory becomes
 * the scratch root. */
int pg_nodes_main(int argc, char **argv, const char *name, Suite *s);

/* A fresh cluster (asserts that it started). */
PgCluster *cluster_start_ok(int flags);

/* Starts node o (own_init_ok first) on the cluster's database with model A,
 * NODE_KEY and 8 HTTP threads, on a free port. */
void node_start_ok(Own *o, const PgCluster *pg);

/* Starts node o again after it stopped or was killed: the same database,
 * flags and port (asserts). */
void node_restart_ok(Own *o, const PgCluster *pg);

/* Enrolls image (its own subject) through port: the Resp (caller frees). */
Resp node_enroll(int port, const char *subject, const Buf *image);
/* Identifies image through port with k=1: 1 when the best match is subject
 * at the distance of the very same image, 0 when it is something else, -1
 * when the request failed (status in *status when not NULL, 0 for no answer). */
int node_finds(int port, const char *subject, const Buf *image, long *status);

/* 1 when r is a 503 whose body is the JSON error shape. */
int is_503_json(const Resp *r);

/* The p-th percentile (0..100) of n values (sorted in place); NaN if n is 0. */
double percentile(double *v, int n, double p);

#endif
