/* See secret.h. */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

int cl_secret_load(const char *path, cl_secret_t *out, char *err,
                   size_t errsize) {
  uint8_t buf[CL_SECRET_MAX + 2];
  struct stat st;
  size_t len = 0;
  ssize_t n;
  int fd;
  memset(out, 0, sizeof *out);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errsize, "cannot read secret file %s: %s", path,
             strerror(errno));
    return CL_EINVAL;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errsize, "secret file %s is not a regular file", path);
    close(fd);
    return CL_EINVAL;
  }
  if ((st.st_mode & 077) != 0) {
    snprintf(err, errsize, "secret file %s has mode %04o: group or others "
             "may use it; make it private with: chmod 600 %s", path,
             (unsigned)(st.st_mode & 07777), path);
    close(fd);
    return CL_EINVAL;
  }
  while (len < sizeof buf &&
         (n = read(fd, buf + len, sizeof buf - len)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      snprintf(err, errsize, "cannot read secret file %s: %s", path,
               strerror(errno));
      close(fd);
      return CL_EINVAL;
    }
    len += (size_t)n;
  }
  close(fd);
  if (len > 0 && buf[len - 1] == '\n')
    len--;
  if (len == 0 || len > CL_SECRET_MAX) {
    snprintf(err, errsize, "secret file %s is %s (1 to %d bytes, one "
             "trailing newline not counted)", path,
             len == 0 ? "empty" : "too long", CL_SECRET_MAX);
    explicit_bzero(buf, sizeof buf);
    return CL_EINVAL;
  }
  out->bytes = malloc(len);
  if (out->bytes == NULL) {
    explicit_bzero(buf, sizeof buf);
    return CL_ENOMEM;
  }
  memcpy(out->bytes, buf, len);
  out->len = len;
  explicit_bzero(buf, sizeof buf);
  return 0;
}

void cl_secret_free(cl_secret_t *s) {
  if (s == NULL)
    return;
  if (s->bytes != NULL) {
    explicit_bzero(s->bytes, s->len);
    free(s->bytes);
  }
  s->bytes = NULL;
  s->len = 0;
}
