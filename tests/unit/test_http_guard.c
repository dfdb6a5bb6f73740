/*
 * test_http_guard.c — unit tests for the request guard (src/server/
 * http_guard.h): the shared body budget refuses what would exceed it and
 * gives back what is released; the watchdog shuts down the socket of an
 * armed entry once its deadline passes (the peer sees end of file), leaves
 * a disarmed one alone, and never closes the descriptor.
 */
#include "siamese/common.h"
#include "src/server/http_guard.h"

#include "check_util.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

START_TEST(test_budget) {
    Guard *g = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(guard_new(1000, &g, err), 0);
    ck_assert_int_eq(guard_reserve(g, 600), 0);
    ck_assert_int_eq(guard_reserve(g, 500), -1); /* 1100 > 1000: nothing reserved */
    ck_assert_uint_eq(guard_reserved(g), 600);
    ck_assert_int_eq(guard_reserve(g, 400), 0); /* exactly full */
    ck_assert_int_eq(guard_reserve(g, 1), -1);
    guard_release(g, 600);
    ck_assert_uint_eq(guard_reserved(g), 400);
    ck_assert_int_eq(guard_reserve(g, (size_t)-1), -1); /* no wrap-around */
    ck_assert_uint_eq(guard_reserved(g), 400);
    guard_release(g, 400);
    ck_assert_uint_eq(guard_reserved(g), 0);
    guard_free(g);
    guard_free(NULL);
}
END_TEST

/* 1 when fd reads end of file within seconds. */
static int eof_within(int fd, double seconds) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(seconds * 1000)) <= 0)
        return 0;
    char b;
    return recv(fd, &b, 1, MSG_DONTWAIT) == 0;
}

START_TEST(test_deadlines) {
    Guard *g = NULL;
    char err[SM_ERRMAX];
    int a[2], b[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    ck_assert_int_eq(guard_new(1, &g, err), 0);
    GuardEntry ea = {0}, eb = {0};
    double t0 = sm_now();
    guard_arm(g, &ea, a[0], t0 + 0.3);
    guard_arm(g, &eb, b[0], t0 + 0.3);
    guard_disarm(g, &eb); /* its body arrived in time */
    ck_assert(!eof_within(a[1], 0.15));
    ck_assert_msg(eof_within(a[1], 1.0), "the expired socket was not shut down");
    double dt = sm_now() - t0;
    ck_assert_msg(dt >= 0.3 && dt < 0.8, "shut down after %.2f s", dt);
    ck_assert(ea.fired && ea.armed);
    ck_assert(!eof_within(b[1], 0.3));
    ck_assert(!eb.fired && !eb.armed);
    ck_assert_int_ne(fcntl(a[0], F_GETFD), -1); /* shut down, not closed */
    guard_disarm(g, &ea);
    guard_disarm(g, &ea); /* twice is a no-op */
    guard_free(g);
    for (int i = 0; i < 2; i++)
        close(a[i]), close(b[i]);
}
END_TEST

int main(void) {
    Suite *s = suite_create("http_guard");
    TCase *tc = tcase_create("guard");
    tcase_add_test(tc, test_budget);
    tcase_add_test(tc, test_deadlines);
    suite_add_tcase(s, tc);
    return check_run(s);
}
