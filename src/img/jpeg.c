/*
 * jpeg.c — JPEG decoding with libjpeg-turbo (the libjpeg API), from memory,
 * into 8-bit gray.
 *
 * Baseline and progressive files in gray, YCbCr/RGB and CMYK/YCCK are
 * supported. Colour files are decoded to RGB and reduced with the same luma as
 * PNG and PPM (not libjpeg's own gray conversion) so that one picture gives
 * the same gray whatever format carried it. CMYK comes out of libjpeg as
 * stored; files with an Adobe APP14 marker (Photoshop and libjpeg itself)
 * store it inverted, so R = C*K/255, and plain CMYK gets (255-C)(255-K)/255.
 *
 * libjpeg's defaults are unfit for untrusted input, so we replace them:
 * error_exit (which calls exit()) longjmps back here; warnings are silent,
 * except those that mean the data is cut or corrupt (a premature EOF is
 * otherwise papered over with gray); dimensions are checked against the
 * limits between jpeg_read_header and jpeg_start_decompress; a progress
 * monitor caps the number of scans (each one is a pass over the whole
 * coefficient buffer, so hundreds of tiny scans are a CPU bomb); the
 * working memory (coefficients of multi-scan files above all) is reserved
 * against the byte limits before jpeg_start_decompress allocates it, and
 * max_memory_to_use caps it again inside libjpeg. When the caller wants a
 * much smaller result, libjpeg's DCT scaling decodes at 1/2, 1/4 or 1/8.
 */
#include "img_internal.h"
#include "siamese/common.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jpeglib.h first: it pulls in jconfig.h, which decides what jerror.h lists. */
#include <jpeglib.h>

#include <jerror.h>

/* Real encoders write at most a few dozen scans. */
#define JPEG_MAX_SCANS 100
/* Enough for the coefficients of a 4096x4096 4:4:4 CMYK progressive file. */
#define JPEG_MAX_MEMORY (256L << 20)

typedef struct {
    struct jpeg_error_mgr pub; /* first, so cinfo->err can be cast back */
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    int rc;
    char msg[JMSG_LENGTH_MAX];
} JpegCtx;

static void jpeg_fail(j_common_ptr cinfo, int rc) {
    JpegCtx *ctx = (JpegCtx *)cinfo->err;
    ctx->rc = rc;
    longjmp(ctx->jmp, 1);
}

static void jpeg_on_error(j_common_ptr cinfo) {
    JpegCtx *ctx = (JpegCtx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, ctx->msg);
    switch (cinfo->err->msg_code) {
    case JERR_OUT_OF_MEMORY:
        jpeg_fail(cinfo, -ENOMEM);
        break;
    case JERR_NO_BACKING_STORE: /* what exceeding max_memory_to_use looks like */
        snprintf(ctx->msg, sizeof ctx->msg, "needs more than %ld MiB of working memory",
                 JPEG_MAX_MEMORY >> 20);
        jpeg_fail(cinfo, -E2BIG);
        break;
    default:
        jpeg_fail(cinfo, -EINVAL);
    }
}

/* level < 0 is a warning, >= 0 trace output. The warnings below mean the
 * pixels we would return are partly invented, so they are errors here. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level >= 0)
        return;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
        jpeg_on_error(cinfo);
        break;
    default:
        cinfo->err->num_warnings++;
    }
}

static void jpeg_on_progress(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        JpegCtx *ctx = (JpegCtx *)cinfo->err;
        snprintf(ctx->msg, sizeof ctx->msg, "more than %d scans", JPEG_MAX_SCANS);
        jpeg_fail(cinfo, -EINVAL);
    }
}

/* (x * y) / 255 rounded, for 8-bit x and y. */
static unsigned mul255(unsigned x, unsigned y) {
    return (x * y + 127u) / 255u;
}

/* One decoded scanline (1, 3 or 4 components) to oc channels: gray (luma)
 * or RGB (gray replicated). */
static void jpeg_row_out(const JSAMPLE *row, size_t w, int comps, int inverted, int oc,
                         uint8_t *dst) {
    for (size_t x = 0; x < w; x++) {
        const JSAMPLE *s = row + x * (size_t)comps;
        unsigned rgb[3];
        if (comps == 1) {
            rgb[0] = rgb[1] = rgb[2] = s[0];
        } else if (comps == 3) {
            rgb[0] = s[0], rgb[1] = s[1], rgb[2] = s[2];
        } else {
            unsigned k = inverted ? s[3] : 255u - s[3];
            unsigned c = inverted ? s[0] : 255u - s[0];
            unsigned m = inverted ? s[1] : 255u - s[1];
            unsigned y = inverted ? s[2] : 255u - s[2];
            rgb[0] = mul255(c, k), rgb[1] = mul255(m, k), rgb[2] = mul255(y, k);
        }
        if (oc == 3)
            dst[3 * x] = (uint8_t)rgb[0], dst[3 * x + 1] = (uint8_t)rgb[1],
                    dst[3 * x + 2] = (uint8_t)rgb[2];
        else
            dst[x] = comps == 1 ? s[0] : img_luma(rgb[0], rgb[1], rgb[2]);
    }
}

/* Picks the output colour space for what the header announced; anything
 * libjpeg cannot turn into RGB fails in jpeg_start_decompress. */
static int jpeg_pick_output(j_decompress_ptr cinfo) {
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        return 1;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        return 4;
    default:
        cinfo->out_color_space = JCS_RGB;
        return 3;
    }
}

/* The working memory of a decode of cinfo (header read, output size set):
 * the whole coefficient buffer when the file has several scans (every
 * progressive file; 128 bytes per 8x8 block and component, at full size
 * whatever the scaling), a generous allowance for the row buffers, and the
 * gray result. */
static uint64_t jpeg_need_bytes(const struct jpeg_decompress_struct *cinfo, int comps, int oc) {
    uint64_t need = (uint64_t)cinfo->output_width * cinfo->output_height * (uint64_t)oc +
                    64u * (uint64_t)cinfo->image_width * (uint64_t)(comps + 1);
    if (cinfo->progressive_mode || cinfo->comps_in_scan < cinfo->num_components)
        for (int i = 0; i < cinfo->num_components; i++) {
            const jpeg_component_info *c = &cinfo->comp_info[i];
            uint64_t bw = c->width_in_blocks + (uint64_t)c->h_samp_factor;
            uint64_t bh = c->height_in_blocks + (uint64_t)c->v_samp_factor;
            need += bw * bh * DCTSIZE2 * sizeof(JCOEF);
        }
    return need;
}

/* Sets up cinfo on buf with our error handling and memory cap. */
static void jpeg_begin(struct jpeg_decompress_struct *cinfo, JpegCtx *ctx, const uint8_t *buf,
                       size_t len, const ImgLimits *lim) {
    jpeg_create_decompress(cinfo);
    cinfo->progress = &ctx->progress;
    cinfo->mem->max_memory_to_use = lim->max_bytes && lim->max_bytes < (uint64_t)JPEG_MAX_MEMORY
                                        ? (long)lim->max_bytes
                                        : JPEG_MAX_MEMORY;
    jpeg_mem_src(cinfo, buf, (unsigned long)len);
}

static void jpeg_ctx_init(struct jpeg_decompress_struct *cinfo, JpegCtx *ctx) {
    memset(cinfo, 0, sizeof *cinfo);
    memset(ctx, 0, sizeof *ctx);
    cinfo->err = jpeg_std_error(&ctx->pub);
    ctx->pub.error_exit = jpeg_on_error;
    ctx->pub.emit_message = jpeg_on_message;
    ctx->progress.progress_monitor = jpeg_on_progress;
}

int img_probe_jpeg(const uint8_t *buf, size_t len, const ImgLimits *lim, uint64_t *w, uint64_t *h,
                   char *err) {
    struct jpeg_decompress_struct cinfo;
    JpegCtx ctx;
    jpeg_ctx_init(&cinfo, &ctx);
    int rc;
    if (setjmp(ctx.jmp)) {
        rc = sm_err(err, ctx.rc, "jpeg: %s", ctx.msg);
        goto out;
    }
    jpeg_begin(&cinfo, &ctx, buf, len, lim);
    jpeg_read_header(&cinfo, TRUE);
    *w = cinfo.image_width, *h = cinfo.image_height;
    rc = img_check_dims("jpeg", *w, *h, lim, err);
out:
    jpeg_destroy_decompress(&cinfo);
    return rc;
}

int img_decode_jpeg(const uint8_t *buf, size_t len, const ImgLimits *lim, int min_w, int min_h,
                    int oc, ImgGray *out, char *err) {
    struct jpeg_decompress_struct cinfo;
    JpegCtx ctx;
    jpeg_ctx_init(&cinfo, &ctx);
    uint8_t *volatile gray = NULL;
    volatile uint64_t reserved = 0;
    int rc;
    if (setjmp(ctx.jmp)) {
        rc = sm_err(err, ctx.rc, "jpeg: %s", ctx.msg);
        goto out;
    }
    jpeg_begin(&cinfo, &ctx, buf, len, lim);
    jpeg_read_header(&cinfo, TRUE);
    rc = img_check_dims("jpeg", cinfo.image_width, cinfo.image_height, lim, err);
    if (rc < 0)
        goto out;
    int comps = jpeg_pick_output(&cinfo);
    cinfo.scale_num = 1;
    cinfo.scale_denom =
        (unsigned)img_jpeg_denom(cinfo.image_width, cinfo.image_height, min_w, min_h);
    jpeg_calc_output_dimensions(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    uint64_t need = jpeg_need_bytes(&cinfo, comps, oc);
    if ((rc = img_reserve(lim, "jpeg", need, err)) < 0)
        goto out;
    reserved = need;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != comps || w != cinfo.output_width || h != cinfo.output_height) {
        rc = sm_err(err, -EINVAL, "jpeg: unexpected output layout (%d components)",
                    cinfo.output_components);
        goto out;
    }
    JSAMPARRAY row = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE,
                                                (JDIMENSION)(w * (size_t)comps), 1);
    gray = malloc(w * h * (size_t)oc);
    if (!gray) {
        rc = sm_err(err, -ENOMEM, "jpeg: out of memory for %zux%zu", w, h);
        goto out;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        if (jpeg_read_scanlines(&cinfo, row, 1) != 1) {
            rc = sm_err(err, -EINVAL, "jpeg: decoder stalled at row %zu", y);
            goto out;
        }
        jpeg_row_out(row[0], w, comps, cinfo.saw_Adobe_marker, oc, gray + y * w * (size_t)oc);
    }
    /* Reads through EOI, so a file cut after its last scanline is caught. */
    jpeg_finish_decompress(&cinfo);
    *out = (ImgGray){(int)w, (int)h, oc, gray};
    gray = NULL;
out:
    jpeg_destroy_decompress(&cinfo);
    free(gray);
    img_release(lim, reserved);
    return rc;
}
