/* nabla/io.h — safetensors, checkpoints, graph and plot output.
 *
 * Like data.h these functions need no context: they return a status (or NULL) and set the
 * thread-local error (nb_last_error). Hostile or corrupt files give NB_ERR_FORMAT with a message
 * saying what is wrong; missing optional libraries give NB_ERR_UNSUPPORTED.
 *
 * Checkpoints:
 *
 *   nb_safetensors_save_params(ps, "model.safetensors", (const char *[]){"epoch", "12", NULL});
 *   ...
 *   if (nb_safetensors_load_params(ps, "model.safetensors") != NB_OK) puts(nb_last_error());
 */
#ifndef NABLA_IO_H
#define NABLA_IO_H

#include "graph.h"
#include "optim.h"
#include "params.h"
#include "regularize.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- safetensors (https://github.com/huggingface/safetensors) ----------------------------- *
 * Layout: 8-byte little-endian header length L, L bytes of JSON
 * {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "value"}} padded with spaces, then the raw little-endian data, which
 * the tensors cover exactly (in order, without gaps). Supported dtypes: F32, F64, I64. */

/* Named tensors (and string metadata) read from a file; everything is owned by the list. */
typedef struct {
    int n;
    char **names;
    nb_tensor **tensors;     /* long-lived, contiguous; freed by nb_tensor_list_free */
    int nmeta;
    char **meta_keys, **meta_values;
    bool checksummed;        /* the file carried nabla's CRC-32s (header + each tensor) and they matched */
} nb_tensor_list;

/* Write n tensors (any dtype among F32/F64/I64, any strides, step or long-lived) under unique
 * names, plus optional metadata given as a NULL-terminated array of alternating keys and values
 * (meta may be NULL). Atomic: the file is written to path + ".tmp" in the same directory (locked,
 * so concurrent saves to one path take turns), flushed, fsync'ed and renamed over path, so a
 * crash leaves the old file or the new one, plus at most that one temporary file, which the next
 * save reuses. A file replaced keeps its permissions; when path is a symbolic link, the file it
 * points to is replaced and the link stays (a new file gets 0666 less the umask, as with fopen);
 * the temporary name is cut to fit NAME_MAX. Checksums: the first metadata entry, "nabla.crc32", holds the CRC-32 (zlib's) of
 * the header and of each tensor's bytes, so the file stays valid safetensors for other readers
 * and nb_safetensors_load detects damage. Errors: NB_ERR_NULL, NB_ERR_VALUE (duplicate or
 * reserved name, metadata key "nabla.crc32"), NB_ERR_SHAPE, NB_ERR_IO. */
nb_status nb_safetensors_save(const char *path, int n, const char *const *names, const nb_tensor *const *tensors,
                              const char *const *meta);

/* Read every tensor of a file. NULL on error: NB_ERR_IO, NB_ERR_FORMAT (header length beyond the
 * file or over 100 MB, invalid JSON, duplicate names, \u0000 in a string, unknown dtype, bad or
 * overflowing shape, data offsets out of range / overlapping / leaving gaps / not dtype size *
 * numel, tensors over the readers' cap (nb_set_read_limit in data.h), and "is damaged" naming
 * the header or the tensor whose checksum does not match). A file with nabla's checksums is
 * verified completely (->checksummed); files of other writers have none and load unverified.
 * The checksum entry is not listed in meta_keys. */
nb_tensor_list *nb_safetensors_load(const char *path);
void nb_tensor_list_free(nb_tensor_list *l);
nb_tensor *nb_tensor_list_find(const nb_tensor_list *l, const char *name);   /* NULL if absent */
const char *nb_tensor_list_meta(const nb_tensor_list *l, const char *key);   /* NULL if absent */

/* Save every parameter of ps under its name (dtype F32 or F64 as ps->dtype), then every buffer
 * registered in ps (batch norm's running statistics, in their own dtype), with optional
 * metadata as above (torch's safetensors.torch.save_file(model.state_dict())). */
nb_status nb_safetensors_save_params(const nb_params *ps, const char *path, const char *const *meta);
/* Load values into ps by name. All or nothing: ps is changed only when the file holds exactly
 * the parameters and buffers of ps, each with the dtype and shape of the model's tensor (no conversion: an F32 file
 * does not load into F64 parameters). Errors: those of nb_safetensors_load, and NB_ERR_FORMAT
 * for a missing or unexpected name or a dtype/shape mismatch
 * ("'model.st': 'fc1.weight': file has F32 (10,784), model has F32 (20,784)"). */
nb_status nb_safetensors_load_params(nb_params *ps, const char *path);

/* ---- training checkpoints ------------------------------------------------------------------ */
/* Everything a training loop needs to continue bit-identically: parameters, the buffers
 * registered in ps (batch-norm running statistics, nb_params_add_buffer), optimizer state,
 * step and hyperparameters, the early-stopping state with its snapshot, the epoch counter, the
 * context's random generator (dropout masks) and up to NB_CHECKPOINT_MAX_VALUES values of the
 * caller's own (e.g. the loss history). The batch order is a function of (seed, epoch) (see
 * nb_batcher_start), so a checkpoint written at the end of an epoch resumes exactly. */
#define NB_CHECKPOINT_MAX_VALUES 4096
typedef struct {
    int64_t epoch;        /* epochs completed */
    nb_rng rng;           /* e.g. *nb_ctx_rng(ctx) */
    int64_t n_values;
    double values[NB_CHECKPOINT_MAX_VALUES];
} nb_train_state;

/* Write a checkpoint (one safetensors file with checksums, written atomically: a crash leaves
 * the previous one intact, plus at most path.tmp, which the next save reuses). opt and es may be
 * NULL. Doubles are stored exactly (C99 hex floats). The state is checked as nb_checkpoint_load
 * checks it, so a checkpoint that saves also loads: NB_ERR_VALUE for an epoch or optimizer step
 * outside [0, 2^53], invalid hyperparameters, inconsistent early-stopping counters. */
nb_status nb_checkpoint_save(const char *path, const nb_params *ps, const nb_optim *opt, const nb_early_stop *es,
                             const nb_train_state *st);
/* Restore a checkpoint into objects built with the same configuration. All or nothing: on any
 * error (unreadable file, damaged file — checksum mismatch naming the header or the tensor —,
 * another optimizer, parameter or buffer names/shapes/dtypes that differ (a file without the
 * model's buffers included), state sizes that differ, implausible
 * state: optimizer step outside [0, 2^53], hyperparameters nb_optim_validate refuses, flags not
 * 0/1, inconsistent early-stopping counters, tensors of another dtype than ps->dtype) nothing is
 * changed and NB_ERR_IO / NB_ERR_FORMAT says why. Parameter names of any length work. F64
 * parameters, optimizer state and snapshot are stored as F64. */
nb_status nb_checkpoint_load(const char *path, nb_params *ps, nb_optim *opt, nb_early_stop *es, nb_train_state *st);

/* ---- pictures ------------------------------------------------------------------------------ */
/* One line of a plot: y[i] at x[i] (x NULL: at 1, 2, ..., n, i.e. epochs). Non-finite points
 * are skipped. */
typedef struct {
    const char *name;       /* shown in the legend */
    const double *x, *y;
    int64_t n;
} nb_series;

/* A dashed vertical line across the plot at x, labelled along its top (<line class="mark">), e.g.
 * the restored best epoch or a learning-rate change; or, with cross, a cross at (x, y)
 * (<path class="end-mark">), e.g. where a pruned trial stopped. */
typedef struct {
    double x;
    const char *label;      /* the line's label (NULL: none; crosses have none) */
    const char *color;      /* NULL: grey for lines, black for crosses; else a colour name, #hex or rgb() (NB_ERR_VALUE) */
    bool cross;
    double y;
} nb_plot_mark;

/* Write an SVG line plot of the series (colours assigned in order) with axes, "nice" ticks,
 * axis labels, a title and a legend. title/xlabel/ylabel may be NULL. Each series becomes one
 * <polyline> with one point per finite value. Errors: NB_ERR_NULL, NB_ERR_VALUE (no finite
 * point), NB_ERR_IO. */
nb_status nb_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, int nseries,
                      const nb_series *series);
/* nb_plot_svg with n_marks marks (marks may be NULL when n_marks is 0), drawn under the
 * curves; marks outside the plotted ranges are left out. */
nb_status nb_plot_svg_marked(const char *path, const char *title, const char *xlabel, const char *ylabel, int nseries,
                             const nb_series *series, int n_marks, const nb_plot_mark *marks);

/* Write a grid of grayscale images as an 8-bit grayscale PNG. images: (N,1,H,W), (N,H,W), or
 * (N,D) with D a perfect square (H = W = sqrt D); values in [0,1] (clamped, NaN -> 0), pixel =
 * round(255 v). ncols images per row (0: ceil(sqrt N)), pad pixels of black around and between
 * images (torchvision's make_grid layout): width = ncols*(W+pad)+pad, height = nrows*(H+pad)+pad.
 * Errors: NB_ERR_SHAPE, NB_ERR_DTYPE (I64), NB_ERR_IO, NB_ERR_UNSUPPORTED (built without libpng). */
nb_status nb_png_grid(const char *path, const nb_tensor *images, int ncols, int pad);

#ifdef __cplusplus
}
#endif
#endif
