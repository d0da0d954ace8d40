/*
 * cmd_preprocess.c — `laic preprocess`: CLIP preprocessing of image files to one .npy.
 *
 *   laic preprocess (--images DIR | --list FILE | --image F) [--size 224] --out P.npy [--uint8]
 *
 * Output: float32 [N,3,S,S] normalised with CLIP mean/std, or with --uint8 the uint8 [N,S,S,3]
 * crops before normalisation (what PIL gives; used to check parity). Images are processed in
 * parallel with OpenMP, in list order (sorted path order for --images). Any unreadable image
 * fails the whole run with one error line naming it (the lowest-index failure, so the message
 * does not depend on thread timing) and no output file is written (npy_write is atomic).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/image.h"
#include "io/err.h"
#include "io/npy.h"

#define PROGRESS_MIN 1000   // lists at least this long get progress lines on stderr

int cmd_preprocess(int argc, char **argv) {
    CliOpt opts[] = {
        {"--images", "DIR", NULL, "directory of .jpg/.jpeg/.png, recursive, sorted by path", NULL,
         0},
        {"--list", "FILE", NULL, "text file, one image path per line (relative to the file)", NULL,
         0},
        {"--image", "F", NULL, "a single image file", NULL, 0},
        {"--size", "S", "224", "crop size (the model's image size)", NULL, 0},
        {"--out", "P.npy", NULL, "output .npy", NULL, 0},
        {"--uint8", NULL, NULL, "write uint8 [N,S,S,3] crops instead of normalised float32", NULL,
         0},
    };
    int n = CLI_N(opts);
    if (cli_parse(argc, argv, "preprocess",
                  "CLIP preprocessing (PIL bicubic resize, centre crop, normalise) of images.",
                  opts, n, NULL, 0, NULL))
        return cli_exit_code();
    const char *dir = cli_get(opts, n, "--images"), *list = cli_get(opts, n, "--list"),
               *one = cli_get(opts, n, "--image"), *out = cli_get(opts, n, "--out");
    int nsrc = !!dir + !!list + !!one;
    if (nsrc != 1) {
        laic_error("preprocess: give exactly one of --images, --list, --image "
                   "---> HINT: see 'laic preprocess --help'");
        return cli_fail(2);
    }
    if (cli_require(opts, n, "--out")) return cli_fail(2);
    long S;
    if (cli_get_long(opts, n, "--size", &S)) return cli_fail(2);
    if (S < 1 || S > 4096) {
        laic_error("preprocess: --size %ld out of range [1, 4096]", S);
        return cli_fail(2);
    }
    int as_u8 = cli_flag(opts, n, "--uint8");

    char **paths = NULL;
    size_t np = 0;
    if (dir) {
        if (image_list_dir(dir, &paths, &np)) return cli_fail(1);
    } else if (list) {
        if (image_list_file(list, &paths, &np)) return cli_fail(1);
    } else {
        paths = mallocCheck(sizeof(char *));
        paths[0] = mallocCheck(strlen(one) + 1);
        strcpy(paths[0], one);
        np = 1;
    }

    size_t per = (size_t)S * (size_t)S * 3;   // values per image
    size_t esz = as_u8 ? 1 : sizeof(float);
    void *buf = malloc(np * per * esz);
    if (!buf) {
        laic_error("preprocess: out of memory for %zu images of %ldx%ld (%.1f GB) "
                   "---> HINT: split the list",
                   np, S, S, (double)(np * per * esz) / 1e9);
        image_list_free(paths, np);
        return cli_fail(1);
    }

    // First (lowest-index) failure and its message; laic_last_error is thread-local.
    size_t bad = (size_t)-1;
    char badmsg[1024] = {0};
    size_t done = 0;
    int progress = np >= PROGRESS_MIN;
    #pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < np; i++) {
        int rc;
        if (as_u8) {
            rc = image_load_crop(paths[i], (int)S, (uint8_t *)buf + i * per);
        } else {
            rc = image_load_preprocessed(paths[i], (int)S, (float *)buf + i * per);
        }
        if (rc) {
            #pragma omp critical(preprocess_err)
            if (i < bad) {
                bad = i;
                snprintf(badmsg, sizeof badmsg, "%s", laic_last_error());
            }
        }
        if (progress) {
            size_t k;
            #pragma omp atomic capture
            k = ++done;
            if (k % (np / 10) == 0 && k < np)   // ~10 lines: enough to see it move
                fprintf(stderr, "preprocess: %zu/%zu images\n", k, np);
        }
    }
    image_list_free(paths, np);
    if (bad != (size_t)-1) {
        free(buf);
        laic_error("%s", badmsg);
        return cli_fail(1);
    }
    int rc;
    if (as_u8) {
        size_t shape[4] = {np, (size_t)S, (size_t)S, 3};
        rc = npy_write(out, NPY_U8, 4, shape, buf);
    } else {
        size_t shape[4] = {np, 3, (size_t)S, (size_t)S};
        rc = npy_write(out, NPY_F32, 4, shape, buf);
    }
    free(buf);
    if (rc) return cli_fail(1);
    return 0;
}
