/* Corpus replay for the fuzz targets in the normal build: a main() that
 * hands every file it is given to the target's LLVMFuzzerTestOneInput, as
 * libFuzzer does when it runs a corpus without fuzzing. Linked with one
 * fuzz_*.c per executable (fuzz/meson.build), with any compiler, so the
 * seeds run in every `meson test` and under the sanitizers of an ASan
 * build. A target that finds a bug abort()s, and so fails the test.
 *
 *   replay_<target> PATH...   each PATH a file, or a directory whose
 *                             regular files are replayed in name order
 *
 * Exits 0 if at least one file was replayed, 1 on a usage or read error or
 * when no file was found at all: a wrong or empty corpus path must not look
 * like a passing corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole regular file into a buffer of exactly its size (so that
 * ASan sees a read past the end, as under libFuzzer). Returns 0, or -1
 * with errno. */
static int read_file(const char *path, uint8_t **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  uint8_t *buf = NULL;
  size_t n;
  if (f == NULL)
    return -1;
  if (fstat(fileno(f), &st) < 0)
    goto fail;
  n = (size_t)st.st_size;
  /* malloc(0) may return NULL: keep one byte. */
  if ((buf = malloc(n ? n : 1)) == NULL)
    goto fail;
  if (fread(buf, 1, n, f) != n) {
    errno = EIO;
    goto fail;
  }
  fclose(f);
  *data = buf;
  *size = n;
  return 0;
fail:
  n = (size_t)errno; /* free and fclose may change it */
  free(buf);
  fclose(f);
  errno = (int)n;
  return -1;
}

/* Replay one file. Returns 0 or -1 (reported). */
static int replay_file(const char *path) {
  uint8_t *data;
  size_t size;
  int rc;
  if (read_file(path, &data, &size) < 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  /* Named before the call, so an abort in the target says which input. */
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
  rc = LLVMFuzzerTestOneInput(data, size);
  free(data);
  /* libFuzzer allows 0 and -1 (keep out of the corpus); nothing else. */
  if (rc != 0 && rc != -1) {
    fprintf(stderr, "replay: %s: target returned %d\n", path, rc);
    return -1;
  }
  return 0;
}

/* Replay a file or every regular file of a directory, in name order.
 * Adds the files replayed to *count. Returns 0 or -1 (reported). */
static int replay_path(const char *path, size_t *count) {
  struct dirent **names;
  struct stat st;
  int n, i, err = 0;
  if (stat(path, &st) < 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (replay_file(path) < 0)
      return -1;
    (*count)++;
    return 0;
  }
  n = scandir(path, &names, NULL, alphasort);
  if (n < 0) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  for (i = 0; i < n; i++) {
    size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
    char *file = malloc(len);
    if (file == NULL) {
      err = -1;
    } else {
      snprintf(file, len, "%s/%s", path, names[i]->d_name);
      /* Subdirectories and dot entries are not inputs; libFuzzer skips
       * them too. */
      if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
        if (replay_file(file) < 0)
          err = -1;
        else
          (*count)++;
      }
      free(file);
    }
    free(names[i]);
  }
  free(names);
  return err;
}

int main(int argc, char **argv) {
  size_t count = 0;
  int i, err = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH...\n", argv[0]);
    return 1;
  }
  for (i = 1; i < argc; i++)
    if (replay_path(argv[i], &count) < 0)
      err = 1;
  if (count == 0) {
    fprintf(stderr, "replay: no input files found\n");
    return 1;
  }
  fprintf(stderr, "replay: %zu files, %s\n", count, err ? "FAILED" : "ok");
  return err;
}
