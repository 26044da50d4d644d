/* CSV reader: good tables, and errors that name the line and column. */
#include "common.h"
#include "tmpdir.h"

#include <stdlib.h>
#include <string.h>

TestSuite(csv, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* Write text to a file in the test directory and return its path. */
static const char *file_with(const char *text) {
    snprintf(path_buf, sizeof path_buf, "%s/t.csv", dir);
    FILE *f = fopen(path_buf, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path_buf;
}

static void assert_error(nb_status want, const char *needle) {
    cr_assert_eq(nb_last_status(), want, "status %s, expected %s (%s)", nb_status_name(nb_last_status()),
                 nb_status_name(want), nb_last_error());
    cr_assert(strstr(nb_last_error(), needle), "message '%s' lacks '%s'", nb_last_error(), needle);
}

Test(csv, good_table) {
    const char *p = file_with("# a comment\r\n"
                              "x,y,label\r\n"
                              "1, 2.5 ,3\r\n"
                              "\r\n"
                              "-4e-2,5,  6\r\n"
                              "7,8,9"); /* no final newline */
    nb_tensor *t = nb_csv_load(p, &(nb_csv_opts){.header = true});
    cr_assert_not_null(t, "%s", nb_last_error());
    cr_assert_eq(t->dtype, NB_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 3);
    cr_assert_eq(t->shape[1], 3);
    const double want[9] = {1, 2.5, 3, -0.04, 5, 6, 7, 8, 9};
    assert_values(t, want, 9, 1e-7);
    cr_assert(t->persistent);
    nb_tensor_free(t);
}

Test(csv, delimiter_and_dtypes) {
    const char *p = file_with("1;2\n3;4\n-5;6\n");
    nb_tensor *t = nb_csv_load(p, &(nb_csv_opts){.delimiter = ';', .dtype = NB_I64});
    cr_assert_not_null(t, "%s", nb_last_error());
    cr_assert_eq(t->dtype, NB_I64);
    cr_assert_eq(((int64_t *)t->data)[4], -5);
    nb_tensor_free(t);
    p = file_with("0.1\t1e300\n");
    t = nb_csv_load(p, &(nb_csv_opts){.delimiter = '\t', .dtype = NB_F64});
    cr_assert_not_null(t, "%s", nb_last_error());
    cr_assert_eq(((double *)t->data)[0], 0.1);
    cr_assert_eq(((double *)t->data)[1], 1e300);
    nb_tensor_free(t);
    /* without a header, the first line is data */
    t = nb_csv_load(file_with("1,2\n"), NULL);
    cr_assert_not_null(t);
    cr_assert_eq(t->shape[0], 1);
    nb_tensor_free(t);
}

/* An i64 table reads integers exactly, over the whole i64 range, not through a double (which
 * rounded 2^53 + 1 and ids like 123456789012345679, and truncated 2.5 to 2). */
Test(csv, i64_columns_are_exact) {
    const char *p = file_with("9007199254740993, 123456789012345679\n9223372036854775807,-9223372036854775808\n3.0,1e3\n");
    nb_tensor *t = nb_csv_load(p, &(nb_csv_opts){.dtype = NB_I64});
    cr_assert_not_null(t, "%s", nb_last_error());
    const int64_t want[6] = {INT64_C(9007199254740993), INT64_C(123456789012345679), INT64_MAX, INT64_MIN, 3, 1000};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(((int64_t *)t->data)[i], want[i], "element %d: %lld", i, (long long)((int64_t *)t->data)[i]);
    nb_tensor_free(t);
    const char *bad[] = {"1,2.5\n", "9223372036854775808\n", "1e17\n", "-9223372036854775809\n"};
    for (int i = 0; i < 4; i++) {
        cr_assert_null(nb_csv_load(file_with(bad[i]), &(nb_csv_opts){.dtype = NB_I64}), "'%s' was accepted", bad[i]);
        cr_assert_eq(nb_last_status(), NB_ERR_FORMAT);
        cr_assert(strstr(nb_last_error(), "not an integer in the i64 range"), "%s", nb_last_error());
    }
}

Test(csv, bad_number) {
    cr_assert_null(nb_csv_load(file_with("a,b\n1,2\n3,abc\n"), &(nb_csv_opts){.header = true}));
    assert_error(NB_ERR_FORMAT, "line 3, column 2: 'abc' is not a number");
    cr_assert_null(nb_csv_load(file_with("1,2x\n"), NULL));
    assert_error(NB_ERR_FORMAT, "line 1, column 2: '2x'");
    cr_assert_null(nb_csv_load(file_with("1,,3\n"), NULL));
    assert_error(NB_ERR_FORMAT, "line 1, column 2: '' is not a number");
    /* a header that is not skipped is a bad number */
    cr_assert_null(nb_csv_load(file_with("x,y\n1,2\n"), NULL));
    assert_error(NB_ERR_FORMAT, "line 1, column 1: 'x'");
}

Test(csv, ragged_rows) {
    cr_assert_null(nb_csv_load(file_with("1,2\n3,4\n5,6,7\n"), NULL));
    assert_error(NB_ERR_FORMAT, "line 3 has 3 columns, expected 2");
    cr_assert_null(nb_csv_load(file_with("1,2\n3\n"), NULL));
    assert_error(NB_ERR_FORMAT, "line 2 has 1 columns, expected 2");
}

Test(csv, empty_missing_and_bad_options) {
    cr_assert_null(nb_csv_load(file_with("# only a comment\n\n"), NULL));
    assert_error(NB_ERR_FORMAT, "no data rows");
    cr_assert_null(nb_csv_load(file_with("a,b\n"), &(nb_csv_opts){.header = true}));
    assert_error(NB_ERR_FORMAT, "no data rows");
    cr_assert_null(nb_csv_load("/nonexistent/x.csv", NULL));
    assert_error(NB_ERR_IO, "cannot open");
    cr_assert_null(nb_csv_load(file_with("1\n"), &(nb_csv_opts){.delimiter = '.'}));
    assert_error(NB_ERR_VALUE, "cannot be a delimiter");
    const char nul[] = "1,2\n3\0,4\n";
    snprintf(path_buf, sizeof path_buf, "%s/nul.csv", dir);
    FILE *f = fopen(path_buf, "wb");
    fwrite(nul, 1, sizeof nul - 1, f);
    fclose(f);
    cr_assert_null(nb_csv_load(path_buf, NULL));
    assert_error(NB_ERR_FORMAT, "line 2 contains a NUL byte");
}
