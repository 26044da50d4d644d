/* A fresh temporary directory per test: TestSuite(x, .init = tmpdir_setup, .fini = tmpdir_teardown),
 * then tmp("file.bin") is a path inside it (valid until the next call). */
#ifndef NABLA_TEST_TMPDIR_H
#define NABLA_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];
static char path_buf[256];

static inline void tmpdir_setup(void) {
    strcpy(dir, "/tmp/nabla_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static inline void tmpdir_teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static inline const char *tmp(const char *name) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

#endif
