/* Output files of the examples: by default they go to out/ (ignored by git), and every output
 * path is checked before training starts, so a run never ends with a result it cannot write. */
#ifndef NABLA_EX_OUTPUT_H
#define NABLA_EX_OUTPUT_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Create path's parent directories if missing and check that path can be written: opened for
 * appending (which changes nothing in an existing file; a file made here is removed again), so a
 * parent that is a file, a directory in path's place, a read-only file or file system are found
 * before training. False (with a message on stderr naming prog) when it cannot. NULL or "" (no
 * output) is fine. */
static inline bool ex_prepare_output(const char *prog, const char *path) {
    if (!path || !*path) return true;
    char dir[4096];
    if (strlen(path) >= sizeof dir) return fprintf(stderr, "%s: output path too long: %s\n", prog, path), false;
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    for (char *p = dir + 1; *p; p++) { /* mkdir -p */
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) break;
        *p = '/';
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return fprintf(stderr, "%s: cannot create directory %s for %s: %s\n", prog, dir, path, strerror(errno)), false;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fprintf(stderr, "%s: cannot write %s: %s is not a directory\n", prog, path, dir), false;
    const bool existed = stat(path, &st) == 0;
    if (existed && S_ISDIR(st.st_mode)) return fprintf(stderr, "%s: cannot write %s: it is a directory\n", prog, path), false;
    FILE *f = fopen(path, "a");
    if (!f) return fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno)), false;
    fclose(f);
    if (!existed) remove(path);
    return true;
}

#endif
