/* Pictures written by the library itself: SVG line plots and PNG image grids. */
#include "../internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#ifdef NB_HAVE_PNG
#include <png.h>
#endif

/* ---- SVG line plot ------------------------------------------------------------------------------ */
enum { W = 760, H = 460, ML = 78, MR = 190, MT = 46, MB = 62 }; /* canvas and margins */
static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

typedef struct {
    double lo, hi, step;  /* axis range, a whole number of steps */
    int decimals;         /* for tick labels */
} axis;

/* 1, 2 or 5 times a power of ten, the smallest at least raw */
static double nice_step(double raw) {
    double p = pow(10, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

static axis make_axis(double lo, double hi, bool integer) {
    if (hi - lo < 1e-12 * (fabs(lo) + fabs(hi)) || hi == lo) {
        double d = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= d, hi += d;
    }
    double step = nice_step((hi - lo) / 6);
    if (integer && step < 1) step = 1;
    axis a = {floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step, step, 0};
    a.decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    return a;
}

/* s as XML character data: markup escaped, control bytes dropped (not XML), bytes that are not
 * UTF-8 written as U+FFFD (an XML parser refuses the file otherwise) */
static void xml_text(FILE *f, const char *s) {
    while (s && *s) {
        const int n = nb__utf8_len((const unsigned char *)s);
        if (n == 0) {
            fputs(NB__REPLACEMENT_CHAR, f), s++;
            continue;
        }
        if (n > 1) {
            fwrite(s, 1, (size_t)n, f), s += n;
            continue;
        }
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f); /* control bytes are not XML */
        }
        s++;
    }
}

static double sx(const axis *a, double x) { return ML + (x - a->lo) / (a->hi - a->lo) * (W - ML - MR); }
static double sy(const axis *a, double y) { return H - MB - (y - a->lo) / (a->hi - a->lo) * (H - MT - MB); }
static double xval(const nb_series *s, int64_t i) { return s->x ? s->x[i] : (double)(i + 1); }

nb_status nb_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, int nseries,
                      const nb_series *series) {
    return nb_plot_svg_marked(path, title, xlabel, ylabel, nseries, series, 0, NULL);
}

nb_status nb_plot_svg_marked(const char *path, const char *title, const char *xlabel, const char *ylabel, int nseries,
                             const nb_series *series, int n_marks, const nb_plot_mark *marks) {
    static const char fn[] = "plot_svg";
    if (!path || nseries < 1 || !series) return nb_set_error(NB_ERR_NULL, "%s: need a path and at least one series", fn);
    if (n_marks < 0 || (n_marks > 0 && !marks)) return nb_set_error(NB_ERR_NULL, "%s: %d marks but no array", fn, n_marks);
    for (int i = 0; i < n_marks; i++) /* written into an attribute: a colour name, #hex or rgb(...) only */
        for (const char *c = marks[i].color; c && *c; c++)
            if (!isalnum((unsigned char)*c) && !strchr("#(),.% ", *c))
                return nb_set_error(NB_ERR_VALUE, "%s: mark %d's color \"%s\" is not a colour name, #hex or rgb()", fn, i,
                                    marks[i].color);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    bool integer_x = true;
    for (int k = 0; k < nseries; k++) {
        if (series[k].n < 0 || (series[k].n > 0 && !series[k].y))
            return nb_set_error(NB_ERR_NULL, "%s: series %d has no values", fn, k);
        for (int64_t i = 0; i < series[k].n; i++) {
            double x = xval(&series[k], i), y = series[k].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
            integer_x = integer_x && x == floor(x);
        }
    }
    if (!(x0 <= x1)) return nb_set_error(NB_ERR_VALUE, "%s: no finite point to plot", fn);
    const axis ax = make_axis(x0, x1, integer_x), ay = make_axis(y0, y1, false);
    FILE *f = fopen(path, "w");
    if (!f) return nb_set_error(NB_ERR_IO, "%s: cannot create '%s': %s", fn, path, strerror(errno));

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"13\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    if (title) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">",
                (ML + W - MR) / 2, MT - 18);
        xml_text(f, title);
        fputs("</text>\n", f);
    }
    /* grid lines and tick labels */
    fputs("<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n", f);
    const int nx = (int)lround((ax.hi - ax.lo) / ax.step), ny = (int)lround((ay.hi - ay.lo) / ay.step);
    for (int i = 0; i <= nx; i++) {
        double px = sx(&ax, ax.lo + i * ax.step);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>\n", px, MT, px, H - MB);
    }
    for (int i = 0; i <= ny; i++) {
        double py = sy(&ay, ay.lo + i * ay.step);
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>\n", ML, py, W - MR, py);
    }
    fputs("</g>\n<g fill=\"#333\">\n", f);
    for (int i = 0; i <= nx; i++)
        fprintf(f, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%.*f</text>\n", sx(&ax, ax.lo + i * ax.step),
                H - MB + 18, ax.decimals, ax.lo + i * ax.step + 0.0);
    for (int i = 0; i <= ny; i++)
        fprintf(f, "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\" dominant-baseline=\"middle\">%.*f</text>\n", ML - 6,
                sy(&ay, ay.lo + i * ay.step), ay.decimals, ay.lo + i * ay.step + 0.0);
    fputs("</g>\n", f);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", ML, MT,
            W - ML - MR, H - MT - MB);
    if (xlabel) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (ML + W - MR) / 2, H - 16);
        xml_text(f, xlabel);
        fputs("</text>\n", f);
    }
    if (ylabel) {
        fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\">", 20, (MT + H - MB) / 2);
        xml_text(f, ylabel);
        fputs("</text>\n", f);
    }
    /* marks under the curves: lines labelled along their top, crosses */
    for (int i = 0; i < n_marks; i++) {
        const nb_plot_mark *mk = &marks[i];
        /* inside the frame, up to rounding (a data point can sit a few ulps below the axis' end) */
        const double px = sx(&ax, mk->x), py = mk->cross ? sy(&ay, mk->y) : MT;
        if (!(px >= ML - 0.5 && px <= W - MR + 0.5 && py >= MT - 0.5 && py <= H - MB + 0.5)) continue;
        const char *col = mk->color ? mk->color : mk->cross ? "#000" : "#888";
        if (mk->cross) {
            fprintf(f, "<path class=\"end-mark\" d=\"M%.2f,%.2f l10,10 m0,-10 l-10,10\" stroke=\"%s\" "
                       "stroke-width=\"2.5\"/>\n", px - 5, py - 5, col);
            continue;
        }
        fprintf(f, "<line class=\"mark\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"%s\" "
                   "stroke-width=\"1.5\" stroke-dasharray=\"5,4\"/>\n", px, MT, px, H - MB, col);
        /* written downwards along the line, so that neighbouring marks do not overlap */
        fprintf(f, "<text fill=\"%s\" font-size=\"11\" transform=\"translate(%.2f,%d) rotate(90)\">", col, px + 3,
                MT + 4);
        xml_text(f, mk->label ? mk->label : "");
        fputs("</text>\n", f);
    }
    /* one polyline per series, then the legend */
    for (int k = 0; k < nseries; k++) {
        const nb_series *s = &series[k];
        const char *col = palette[k % 10];
        fprintf(f, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        int64_t shown = 0;
        for (int64_t i = 0; i < s->n; i++)
            if (isfinite(xval(s, i)) && isfinite(s->y[i]))
                fprintf(f, shown++ ? " %.2f,%.2f" : "%.2f,%.2f", sx(&ax, xval(s, i)), sy(&ay, s->y[i]));
        fputs("\"/>\n", f);
        if (shown <= 40) /* markers while they stay readable */
            for (int64_t i = 0; i < s->n; i++)
                if (isfinite(xval(s, i)) && isfinite(s->y[i]))
                    fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n", sx(&ax, xval(s, i)),
                            sy(&ay, s->y[i]), col);
        if (k >= (H - MT - 10) / 22) continue; /* the legend shows the series that fit */
        const int ly = MT + 10 + 22 * k;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", W - MR + 14,
                ly, W - MR + 40, ly, col);
        fprintf(f, "<text x=\"%d\" y=\"%d\" dominant-baseline=\"middle\">", W - MR + 46, ly);
        xml_text(f, s->name ? s->name : "");
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    return ok ? NB_OK : nb_set_error(NB_ERR_IO, "%s: writing '%s' failed", fn, path);
}

/* ---- PNG image grid ------------------------------------------------------------------------------ */
nb_status nb_png_grid(const char *path, const nb_tensor *images, int ncols, int pad) {
    static const char fn[] = "png_grid";
    if (!path || !images) return nb_set_error(NB_ERR_NULL, "%s: NULL argument", fn);
    char b[128];
    if (images->dtype == NB_I64) return nb_set_error(NB_ERR_DTYPE, "%s: images must be f32 or f64, got i64", fn);
    int64_t n = images->ndim >= 1 ? images->shape[0] : 0, h = 0, w = 0;
    if (images->ndim == 4 && images->shape[1] == 1) h = images->shape[2], w = images->shape[3];
    else if (images->ndim == 3) h = images->shape[1], w = images->shape[2];
    else if (images->ndim == 2) {
        h = w = (int64_t)llround(sqrt((double)images->shape[1]));
        if (h * w != images->shape[1]) h = w = 0;
    }
    if (n < 1 || h < 1 || w < 1 || pad < 0 || ncols < 0)
        return nb_set_error(NB_ERR_SHAPE,
                            "%s: images %s (pad %d, ncols %d): need (N,1,H,W), (N,H,W) or (N,D) with D square, N >= 1",
                            fn, nb_shape_str(images, b, sizeof b), pad, ncols);
    if (ncols == 0) ncols = (int)ceil(sqrt((double)n));
    if (ncols > n) ncols = (int)n;
    const int64_t nrows = (n + ncols - 1) / ncols;
    const int64_t width = ncols * (w + pad) + pad, height = nrows * (h + pad) + pad;
    if (width > 65535 || height > 65535 || width * height > (1LL << 28))
        return nb_set_error(NB_ERR_SHAPE, "%s: a grid of %lldx%lld pixels is too large", fn, (long long)width,
                            (long long)height);
#ifdef NB_HAVE_PNG
    uint8_t *px = calloc((size_t)(width * height), 1);
    if (!px) return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    for (int64_t k = 0; k < n; k++) {
        const int64_t top = pad + (k / ncols) * (h + pad), left = pad + (k % ncols) * (w + pad);
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                double v = nb_get(images, (k * h + i) * w + j);
                v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN -> 0 */
                px[(top + i) * width + left + j] = (uint8_t)lround(255 * v);
            }
    }
    png_image img = {.version = PNG_IMAGE_VERSION, .width = (png_uint_32)width, .height = (png_uint_32)height,
                     .format = PNG_FORMAT_GRAY};
    int ok = png_image_write_to_file(&img, path, 0, px, (png_int_32)width, NULL);
    free(px);
    if (!ok) {
        nb_set_error(NB_ERR_IO, "%s: cannot write '%s': %s", fn, path, img.message);
        png_image_free(&img);
        return NB_ERR_IO;
    }
    return NB_OK;
#else
    return nb_set_error(NB_ERR_UNSUPPORTED, "%s: nabla was built without libpng", fn);
#endif
}
