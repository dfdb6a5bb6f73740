/*
 * routes_decide.c — how /verify and /identify decide: the threshold of the
 * request (a "threshold" field, a target false-accept rate "far" looked up
 * in the model's operating points, or the calibrated one), what the reply
 * says about it, and the estimated FAR and FRR at each measured distance.
 *
 * One calibration (serve_calib()) is read once per request, so a reload in
 * the middle of a request cannot mix two thresholds in one answer.
 */
#include <errno.h>
#include <math.h>

#include "routes.h"
#include "siamese/common.h"

/* The rate of the "far" field: 0, or -1 with the reply (400) filled. */
static int far_threshold(const char *text, Decision *d, Reply *rep) {
    double v;
    char err[SM_ERRMAX];
    if (parse_number(text, 0.0, 1.0, &v) < 0 || !(v > 0)) {
        reply_error(rep, 400, "bad_request",
                    "far must be a false-accept rate in (0, 1], e.g. 1e-3");
        return -1;
    }
    if (!d->calib->ops) {
        reply_error(rep, 400, "no_operating_points",
                    "this model has no operating points to turn a far into a threshold: "
                    "recalibrate it (siamesed --calibrate) or give a threshold");
        return -1;
    }
    int rc = optable_threshold_at_far(d->calib->ops, v, &d->threshold, NULL, NULL, err);
    if (rc < 0) {
        reply_error(rep, 400, rc == -ERANGE ? "far_unsupported" : "bad_request", "%s", err);
        return -1;
    }
    d->far = v;
    return 0;
}

int decision_of(Server *srv, const ReqForm *f, Decision *d, Reply *rep) {
    const char *t, *far;
    double v;
    *d = (Decision){serve_calib(srv), 0, NAN};
    d->threshold = d->calib->threshold;
    if (form_text(f, "threshold", 0, &t, rep) < 0 || form_text(f, "far", 0, &far, rep) < 0)
        return -1;
    if (t && far) {
        reply_error(rep, 400, "bad_request", "give threshold or far, not both");
        return -1;
    }
    if (far)
        return far_threshold(far, d, rep);
    if (!t)
        return 0;
    if (parse_number(t, 0.0, 1e6, &v) < 0) {
        reply_error(rep, 400, "bad_request", "threshold must be a number in [0, 1e6]");
        return -1;
    }
    d->threshold = (float)v;
    return 0;
}

void decision_add(const Decision *d, cJSON *o) {
    json_add_f32(o, "threshold", d->threshold);
    if (!isnan(d->far))
        cJSON_AddNumberToObject(o, "far", d->far);
}

void decision_add_rates(const Decision *d, float dist, cJSON *o) {
    double far, frr;
    if (!d->calib->ops)
        return;
    optable_rates_at(d->calib->ops, dist, &far, &frr);
    json_add_f32(o, "estimated_far", (float)far); /* float precision is plenty */
    json_add_f32(o, "estimated_frr", (float)frr);
}

const char *decision_verdict(const Decision *d, float dist) {
    return dist < d->threshold ? "same" : "different";
}
