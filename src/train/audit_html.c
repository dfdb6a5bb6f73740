/*
 * audit_html.c — the label audit's HTML report (`siamesed --audit --report
 * FILE`): for each top suspect, its image, given and suggested label and
 * score, then its nearest neighbours as thumbnails with their labels and
 * distances. Self-contained like the training report (report_html.c), whose
 * thumbnail and text helpers it uses: no script, nothing fetched.
 */
#include <stdlib.h>

#include "report_html_int.h"
#include "siamese/audit.h"
#include "siamese/common.h"

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}"
    ".suspect{display:flex;gap:12px;align-items:flex-start;border-bottom:1px solid #e3e3e3;"
    "padding:8px 0}.who{width:220px;font-size:12px;word-break:break-all}.nn{display:flex;"
    "flex-wrap:wrap;gap:6px}figure{margin:0;font-size:11px;text-align:center;width:64px}"
    "img{image-rendering:pixelated}.agree{color:#0072B2}.other{color:#D55E00}";

static const char *label_of(const Dataset *d, int l) {
    return d->class_names && d->class_names[l] ? d->class_names[l] : "?";
}

static void suspect(Sb *b, const Dataset *d, const AuditRow *r, int i, int rank, int k) {
    sb_printf(b, "<div class=\"suspect\" data-index=\"%d\" data-score=\"%.4f\">", i,
              (double)r->score);
    report_sample_img(b, d, i);
    sb_printf(b, "<div class=\"who\">#%d &middot; ", rank);
    if (d->files)
        sb_escape(b, d->files[i]);
    else
        sb_printf(b, "IDX #%d", i);
    sb_lit(b, "<br>label <b>");
    sb_escape(b, label_of(d, d->y[i]));
    sb_lit(b, "</b>, suggested <b>");
    sb_escape(b, label_of(d, r->suggested));
    sb_printf(b, "</b><br>score %.3f</div><div class=\"nn\">", (double)r->score);
    for (int q = 0; q < k && q < AUDIT_SHOWN; q++) {
        int j = r->nn[q];
        sb_lit(b, "<figure>");
        report_sample_img(b, d, j);
        sb_printf(b, "<figcaption class=\"%s\">", d->y[j] == d->y[i] ? "agree" : "other");
        sb_escape(b, label_of(d, d->y[j]));
        sb_printf(b, "<br>d %.3f</figcaption></figure>", (double)r->nd[q]);
    }
    sb_lit(b, "</div></div>\n");
}

int audit_html_write(const char *path, const char *model_path, const Dataset *d,
                     const AuditRow *rows, const int *order, int top, int k, char *err) {
    Sb b = {0};
    sb_lit(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "img-src data:; style-src 'unsafe-inline'\">\n<link rel=\"icon\" href=\"data:,\">\n"
               "<title>siamesed label audit</title>\n");
    sb_printf(&b, "<style>%s</style></head><body>\n<h1>Label audit: ", style);
    sb_escape(&b, d->source ? d->source : "");
    sb_lit(&b, "</h1>\n<p>Model <code>");
    sb_escape(&b, model_path);
    sb_printf(&b,
              "</code>. The %d samples (of %d) whose %d nearest neighbours disagree most with "
              "their label (distance-weighted vote); the nearest %d are shown, in blue when "
              "they share the label, in orange when not.</p>\n",
              top, d->n, k, k < AUDIT_SHOWN ? k : AUDIT_SHOWN);
    for (int r = 0; r < top; r++)
        suspect(&b, d, &rows[order[r]], order[r], r + 1, k);
    sb_lit(&b, "</body></html>\n");
    int rc = b.oom ? sm_err(err, -ENOMEM, "audit report: out of memory")
                   : sm_write_file_atomic(path, b.s, b.len, err);
    free(b.s);
    return rc;
}
