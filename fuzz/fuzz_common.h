/* Shared by the libFuzzer harnesses: each input is written to a file (the readers take paths)
 * and read back with the reader under test. Built by scripts/fuzz.sh (clang,
 * -fsanitize=fuzzer,address,undefined); a crash, a sanitizer report or a leak is a bug. */
#ifndef NABLA_FUZZ_COMMON_H
#define NABLA_FUZZ_COMMON_H

#include <nabla/nabla.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* One file per process, in memory when /dev/shm exists. */
static const char *fuzz_path(const char *ext) {
    static char path[256];
    if (!path[0])
        snprintf(path, sizeof path, "%s/nabla_fuzz_%d%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
                 (int)getpid(), ext);
    return path;
}

static const char *fuzz_write(const uint8_t *data, size_t size, const char *ext) {
    const char *p = fuzz_path(ext);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return p;
}

/* A reader must never allocate much more than its input could justify: a small cap turns an
 * unbounded allocation into an error instead of an out-of-memory report. */
static void fuzz_init(void) {
    nb_set_read_limit((size_t)64 << 20);
    nb_set_num_threads(1);
}

#endif
