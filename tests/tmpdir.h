/* Files in tests: a fresh temporary directory per test (TestSuite(x, .init = tmpdir_setup,
 * .fini = tmpdir_teardown), then tmp("file.bin") is a path inside it, valid until the next
 * call), and slurp() to read a whole file back. */
#ifndef NABLA_TEST_TMPDIR_H
#define NABLA_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

/* The whole file as a NUL-terminated malloc'd buffer; its length in *len (may be NULL). */
static inline char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return s;
}

/* Elements <tag> (with class="cls" unless cls is NULL) in the SVG file at path, counted by an XML
 * parser (python3's ElementTree): -1 when the file is not well-formed XML or python3 is missing. */
static inline int svg_count(const char *path, const char *tag, const char *cls) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import sys, xml.etree.ElementTree as E\n"
             "try: r = E.parse(sys.argv[1]).getroot()\nexcept Exception: sys.exit(255)\n"
             "n = [e for e in r.iter('{http://www.w3.org/2000/svg}' + sys.argv[2]) if sys.argv[3] in ('', e.get('class'))]\n"
             "sys.exit(min(len(n), 254))\" '%s' '%s' '%s' 2>/dev/null",
             path, tag, cls ? cls : "");
    const int rc = system(cmd);
    return rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) == 255 ? -1 : WEXITSTATUS(rc);
}

#endif
