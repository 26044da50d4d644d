/* SVG line plots and PNG image grids. */
#include "common.h"
#include "tmpdir.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if __has_include(<png.h>)
#include <png.h>
#define HAVE_PNG_H 1
#endif

TestSuite(plot, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* number of "x,y" pairs in the points attribute of the k-th polyline */
static int polyline_points(const char *svg, int k) {
    const char *p = svg;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, "<polyline");
        cr_assert_not_null(p, "polyline %d missing", k);
        p++;
    }
    p = strstr(p, "points=\"");
    cr_assert_not_null(p);
    p += 8;
    int n = 0;
    for (; *p && *p != '"'; p++) n += *p == ',';
    return n;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

Test(plot, svg_series_axes_legend) {
    const double train[5] = {2.3, 1.1, 0.8, 0.61, 0.52}, val[5] = {2.2, 1.3, 0.95, 0.9, 0.93};
    const double acc[5] = {0.35, NAN, 0.71, 0.79, 0.81};
    const nb_series s[3] = {{"train loss", NULL, train, 5}, {"val loss", NULL, val, 5}, {"val acc <top-1>", NULL, acc, 5}};
    cr_assert_eq(nb_plot_svg(tmp("p.svg"), "Fashion-MNIST & MLP", "epoch", "loss / accuracy", 3, s), NB_OK, "%s",
                 nb_last_error());
    char *svg = slurp(tmp("p.svg"), NULL);
    cr_assert(strncmp(svg, "<?xml", 5) == 0);
    cr_assert(strstr(svg, "</svg>\n") == svg + strlen(svg) - 7);
    cr_assert_eq(count(svg, "<polyline"), 3);
    cr_assert_eq(polyline_points(svg, 0), 5);
    cr_assert_eq(polyline_points(svg, 1), 5);
    cr_assert_eq(polyline_points(svg, 2), 4, "the NaN is skipped");
    cr_assert(strstr(svg, ">train loss</text>") && strstr(svg, ">val loss</text>"));
    cr_assert(strstr(svg, ">val acc &lt;top-1&gt;</text>"), "legend text is escaped");
    cr_assert(strstr(svg, ">Fashion-MNIST &amp; MLP</text>"));
    cr_assert(strstr(svg, ">epoch</text>") && strstr(svg, ">loss / accuracy</text>"));
    /* x ticks at whole epochs 1..5, y ticks at multiples of 0.5 from 0 to 2.5 */
    for (int e = 1; e <= 5; e++) {
        char t[32];
        snprintf(t, sizeof t, "\">%d</text>", e);
        cr_assert(strstr(svg, t), "x tick %d missing", e);
    }
    for (int k = 0; k <= 5; k++) {
        char t[32];
        snprintf(t, sizeof t, "\">%.1f</text>", 0.5 * k);
        cr_assert(strstr(svg, t), "y tick %.1f missing", 0.5 * k);
    }
    cr_assert(!strstr(svg, "\">3.0</text>"), "the y axis ends at the first tick above the data");
    free(svg);
    /* an XML parser accepts it */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
                 "sys.exit(0 if len(r.findall('{http://www.w3.org/2000/svg}polyline')) == 3 else 1)\" '%s'",
                 tmp("p.svg"));
        cr_assert_eq(system(cmd), 0, "not well-formed XML");
    }
}



/* A title, labels and series names with bytes that are not UTF-8 and control bytes: the SVG
 * stays well-formed (U+FFFD for the former, the latter dropped); xmllint refused the file. */
Test(plot, svg_text_is_always_well_formed) {
    const double y[3] = {1, 2, 3};
    nb_series s = {.name = "a\xff\x01" "b", .y = y, .n = 3};
    const char *path = tmp("bytes.svg");
    cr_assert_eq(nb_plot_svg(path, "t\xc3\x28 \xe2\x82 \xf0\x9f\x98\x80 \x07" "end", "x\x80", "y\xed\xa0\x80", 1, &s), NB_OK,
                 "%s", nb_last_error());
    char *svg = slurp(path, NULL);
    cr_assert(clean_text(svg), "the SVG holds bytes that are not UTF-8 or control bytes");
    cr_assert(strstr(svg, "\xf0\x9f\x98\x80"), "well-formed multi-byte characters are kept");
    cr_assert(strstr(svg, "a\xef\xbf\xbd" "b"), "a stray byte becomes U+FFFD, the control byte goes");
    free(svg);
}

Test(plot, svg_explicit_x_and_errors) {
    const double x[3] = {0, 0.25, 0.5}, y[3] = {1, 1, 1}; /* a flat line still gets a y range */
    const nb_series s = {"lr", x, y, 3};
    cr_assert_eq(nb_plot_svg(tmp("q.svg"), NULL, NULL, NULL, 1, &s), NB_OK, "%s", nb_last_error());
    char *svg = slurp(tmp("q.svg"), NULL);
    cr_assert_eq(polyline_points(svg, 0), 3);
    cr_assert(strstr(svg, "\">0.25</text>") || strstr(svg, "\">0.2</text>"), "fractional x ticks");
    cr_assert(!strstr(svg, "nan,") && !strstr(svg, "nan\"") && !strstr(svg, ">nan") && !strstr(svg, "inf"));
    free(svg);
    const double bad[2] = {NAN, INFINITY};
    const nb_series b = {"bad", NULL, bad, 2};
    cr_assert_eq(nb_plot_svg(tmp("r.svg"), NULL, NULL, NULL, 1, &b), NB_ERR_VALUE);
    cr_assert_eq(nb_plot_svg(tmp("r.svg"), NULL, NULL, NULL, 0, &b), NB_ERR_NULL);
    cr_assert_eq(nb_plot_svg("/nonexistent/r.svg", NULL, NULL, NULL, 1, &s), NB_ERR_IO);
}

#ifdef HAVE_PNG_H
/* decode with libpng's simplified API into a gray buffer */
static uint8_t *read_png(const char *path, unsigned *w, unsigned *h) {
    png_image img = {.version = PNG_IMAGE_VERSION};
    cr_assert(png_image_begin_read_from_file(&img, path), "%s", img.message);
    cr_assert_eq(img.format & PNG_FORMAT_FLAG_COLOR, 0, "grayscale PNG expected");
    img.format = PNG_FORMAT_GRAY;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    cr_assert(png_image_finish_read(&img, NULL, px, 0, NULL), "%s", img.message);
    *w = img.width, *h = img.height;
    return px;
}

Test(plot, png_grid_pixels) {
    /* 3 images 2x2, 2 per row, pad 1: 7x7 pixels */
    const float v[12] = {0, 1, 0.5f, 0.2f, -1, 1.5f, NAN, 0.004f, 0.998f, 0.25f, 0.75f, 1};
    nb_tensor *im = nb_tensor_from(NB_F32, NB_SHAPE(3, 1, 2, 2), v);
    cr_assert_eq(nb_png_grid(tmp("g.png"), im, 2, 1), NB_OK, "%s", nb_last_error());
    unsigned w, h;
    uint8_t *px = read_png(tmp("g.png"), &w, &h);
    cr_assert_eq(w, 7);
    cr_assert_eq(h, 7);
    uint8_t want[49] = {0};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                double x = v[k * 4 + i * 2 + j];
                x = x > 0 ? (x < 1 ? x : 1) : 0;
                want[(1 + (k / 2) * 3 + i) * 7 + 1 + (k % 2) * 3 + j] = (uint8_t)lround(255 * x);
            }
    cr_assert_eq(want[1 * 7 + 2], 255);
    cr_assert_eq(want[2 * 7 + 1], 128); /* 0.5 -> 127.5 rounds up */
    for (int i = 0; i < 49; i++) cr_assert_eq(px[i], want[i], "pixel (%d,%d) = %d, expected %d", i / 7, i % 7, px[i], want[i]);
    free(px);
    /* (N, D) with D square, default columns ceil(sqrt 3) = 2, no padding: 4x4 */
    nb_tensor *flat = nb_tensor_from(NB_F32, NB_SHAPE(3, 4), v);
    cr_assert_eq(nb_png_grid(tmp("f.png"), flat, 0, 0), NB_OK);
    px = read_png(tmp("f.png"), &w, &h);
    cr_assert_eq(w, 4);
    cr_assert_eq(h, 4);
    cr_assert_eq(px[1], 255);       /* image 0, pixel (0,1) */
    cr_assert_eq(px[2], 0);         /* image 1, pixel (0,0) = -1 clamped */
    cr_assert_eq(px[3], 255);       /* image 1, pixel (0,1) = 1.5 clamped */
    cr_assert_eq(px[2 * 4 + 1], 64); /* image 2, pixel (0,1) = 0.25 */
    cr_assert_eq(px[2 * 4 + 2], 0);  /* empty slot */
    free(px);
    nb_tensor_free(im), nb_tensor_free(flat);
}
#endif

Test(plot, png_errors) {
    nb_tensor *odd = nb_tensor_new(NB_F32, NB_SHAPE(2, 5));
    cr_assert_eq(nb_png_grid(tmp("e.png"), odd, 0, 0), NB_ERR_SHAPE);
    cr_assert(strstr(nb_last_error(), "(2,5)"), "%s", nb_last_error());
    nb_tensor *rgb = nb_tensor_new(NB_F32, NB_SHAPE(2, 3, 4, 4));
    cr_assert_eq(nb_png_grid(tmp("e.png"), rgb, 0, 0), NB_ERR_SHAPE);
    nb_tensor *lab = nb_tensor_new(NB_I64, NB_SHAPE(2, 4));
    cr_assert_eq(nb_png_grid(tmp("e.png"), lab, 0, 0), NB_ERR_DTYPE);
    nb_tensor *ok = nb_tensor_new(NB_F64, NB_SHAPE(1, 4));
    cr_assert_eq(nb_png_grid("/nonexistent/e.png", ok, 0, 0), NB_ERR_IO);
    cr_assert_eq(access(tmp("e.png"), F_OK), -1);
    nb_tensor_free(odd), nb_tensor_free(rgb), nb_tensor_free(lab), nb_tensor_free(ok);
}
