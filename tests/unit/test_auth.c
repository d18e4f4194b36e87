/* The handshake (proto/auth.c) and the secret file (common/secret.c). The
 * expected MACs were computed with Python's hmac module, an implementation
 * independent of libsodium's:
 *   hmac.new(b"k3y", b"clsnap-auth-client" + ns + nc, sha256)
 * with ns = bytes 1..32 and nc = bytes 33..64.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"
#include "error.h"
#include "secret.h"

static const char client_mac_hex[] =
    "168ef228a61dc9938a0405ee224f193fc29e9c8153a26ae912af9d90f211ad30";
static const char server_mac_hex[] =
    "4aac9930949979e3c815963afee17780cd376d0f4fe8cf7042c1d8f4555d1df6";

static void unhex(const char *h, uint8_t *out) {
  size_t i;
  for (i = 0; i < 32; i++) {
    unsigned v;
    sscanf(h + 2 * i, "%2x", &v);
    out[i] = (uint8_t)v;
  }
}

static cl_secret_t key_of(const char *s) {
  cl_secret_t k;
  k.bytes = (uint8_t *)s;
  k.len = strlen(s);
  return k;
}

/* Both sides with the right secret, MACs as Python computes them; every
 * way of not knowing it is refused. */
static void test_handshake(void) {
  uint8_t ns[CL_AUTH_NONCE], nc[CL_AUTH_NONCE], want[CL_AUTH_MAC];
  cl_secret_t k = key_of("k3y"), wrong = key_of("k3z"), none = {NULL, 0};
  cl_msg_t ch, auth, ok, auth2, ok2;
  char why[256];
  int i;
  for (i = 0; i < CL_AUTH_NONCE; i++) {
    ns[i] = (uint8_t)(1 + i);
    nc[i] = (uint8_t)(33 + i);
  }
  cl_auth_challenge(&ch, ns, 1);
  CHECK_EQ_INT(ch.type, CL_MSG_CHALLENGE);
  CHECK_EQ_INT(cl_auth_answer(&k, &ch, nc, &auth, why, sizeof why), 1);
  CHECK_EQ_INT(auth.type, CL_MSG_AUTH);
  unhex(client_mac_hex, want);
  CHECK(memcmp(auth.u.auth.mac, want, 32) == 0);
  CHECK(memcmp(auth.u.auth.nonce, nc, 32) == 0);
  CHECK_EQ_INT(cl_auth_check(&k, ns, &auth, &ok), 0);
  CHECK_EQ_INT(ok.type, CL_MSG_AUTH_OK);
  unhex(server_mac_hex, want);
  CHECK(memcmp(ok.u.auth_ok.mac, want, 32) == 0);
  CHECK_EQ_INT(cl_auth_verify(&k, ns, nc, &ok), 0);

  /* A wrong secret, either side. */
  CHECK_EQ_INT(cl_auth_answer(&wrong, &ch, nc, &auth2, why, sizeof why), 1);
  CHECK_EQ_INT(cl_auth_check(&k, ns, &auth2, &ok2), CL_EAUTH);
  CHECK_EQ_INT(cl_auth_check(&wrong, ns, &auth, &ok2), CL_EAUTH);
  CHECK_EQ_INT(cl_auth_verify(&wrong, ns, nc, &ok), CL_EAUTH);
  /* A recorded AUTH against a new challenge: refused. */
  ns[0] ^= 1;
  CHECK_EQ_INT(cl_auth_check(&k, ns, &auth, &ok2), CL_EAUTH);
  ns[0] ^= 1;
  /* Tampered MACs; an AUTH_OK for other nonces. */
  auth2 = auth;
  auth2.u.auth.mac[31] ^= 0x80;
  CHECK_EQ_INT(cl_auth_check(&k, ns, &auth2, &ok2), CL_EAUTH);
  auth2 = auth;
  auth2.u.auth.nonce[5] ^= 1; /* the MAC covers the client's nonce too */
  CHECK_EQ_INT(cl_auth_check(&k, ns, &auth2, &ok2), CL_EAUTH);
  ok2 = ok;
  ok2.u.auth_ok.mac[0] ^= 1;
  CHECK_EQ_INT(cl_auth_verify(&k, ns, nc, &ok2), CL_EAUTH);
  CHECK_EQ_INT(cl_auth_verify(&k, nc, ns, &ok), CL_EAUTH);
  /* Not even an AUTH; a daemon without a secret checks nothing. */
  CHECK_EQ_INT(cl_auth_check(&k, ns, &ch, &ok2), CL_EAUTH);
  CHECK_EQ_INT(cl_auth_check(&none, ns, &auth, &ok2), CL_EAUTH);

  /* A client without a secret at a daemon that needs one. */
  CHECK_EQ_INT(cl_auth_answer(&none, &ch, nc, &auth2, why, sizeof why),
               CL_EAUTH);
  CHECK_EQ_STR(why, "authentication failed: the server requires a "
                    "secret; give --secret-file");
  /* No secret either side: nothing to prove. */
  cl_auth_challenge(&ch, ns, 0);
  CHECK_EQ_INT(cl_auth_answer(&none, &ch, nc, &auth2, why, sizeof why), 0);
  /* A client with a secret at a daemon without one: refused. */
  CHECK_EQ_INT(cl_auth_answer(&k, &ch, nc, &auth2, why, sizeof why),
               CL_EAUTH);
  CHECK_EQ_STR(why, "authentication failed: the server does not "
                    "authenticate (started without --secret-file)");
  /* Something else first. */
  CHECK_EQ_INT(cl_auth_answer(&k, &ok, nc, &auth2, why, sizeof why),
               CL_EAUTH);
  /* Fresh nonces differ. */
  cl_auth_nonce(ns);
  cl_auth_nonce(nc);
  CHECK(memcmp(ns, nc, CL_AUTH_NONCE) != 0);
}

/* Write a file with mode and contents; returns its path. */
static const char *file_with(const char *dir, const char *name, int mode,
                             const char *data, size_t len) {
  static char path[512];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f != NULL) {
    fwrite(data, 1, len, f);
    fclose(f);
  }
  chmod(path, (mode_t)mode);
  return path;
}

static void test_secret_file(void) {
  char dir[] = "/tmp/clsnap-secret.XXXXXX", err[512], expect[700];
  char big[CL_SECRET_MAX + 2];
  cl_secret_t s;
  const char *p;
  CHECK(mkdtemp(dir) != NULL);
  p = file_with(dir, "ok", 0600, "abc\n", 4);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), 0);
  CHECK_EQ_INT(s.len, 3);
  CHECK(s.bytes != NULL && memcmp(s.bytes, "abc", 3) == 0);
  cl_secret_free(&s);
  CHECK(s.bytes == NULL && s.len == 0);
  /* Only one newline is stripped; other bytes are the secret's. */
  p = file_with(dir, "two", 0400, "a\0b\n\n", 5);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), 0);
  CHECK_EQ_INT(s.len, 4);
  CHECK(s.bytes != NULL && memcmp(s.bytes, "a\0b\n", 4) == 0);
  cl_secret_free(&s);
  /* Group or others may read it: refused, saying how to fix it. */
  p = file_with(dir, "open", 0640, "abc", 3);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), CL_EINVAL);
  snprintf(expect, sizeof expect, "secret file %s has mode 0640: group or "
           "others may use it; make it private with: chmod 600 %s", p, p);
  CHECK_EQ_STR(err, expect);
  p = file_with(dir, "x", 0601, "abc", 3);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), CL_EINVAL);
  /* Empty, only a newline, too long, missing, a directory. */
  p = file_with(dir, "empty", 0600, "", 0);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), CL_EINVAL);
  CHECK(strstr(err, "is empty") != NULL);
  p = file_with(dir, "nl", 0600, "\n", 1);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), CL_EINVAL);
  memset(big, 'x', sizeof big);
  p = file_with(dir, "big", 0600, big, CL_SECRET_MAX + 1);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), CL_EINVAL);
  CHECK(strstr(err, "is too long") != NULL);
  p = file_with(dir, "max", 0600, big, CL_SECRET_MAX);
  CHECK_EQ_INT(cl_secret_load(p, &s, err, sizeof err), 0);
  CHECK_EQ_INT(s.len, CL_SECRET_MAX);
  cl_secret_free(&s);
  snprintf(expect, sizeof expect, "%s/none", dir);
  CHECK_EQ_INT(cl_secret_load(expect, &s, err, sizeof err), CL_EINVAL);
  CHECK(strstr(err, "No such file") != NULL);
  CHECK_EQ_INT(cl_secret_load(dir, &s, err, sizeof err), CL_EINVAL);
  CHECK(strstr(err, "not a regular file") != NULL);
  /* Clean up. */
  {
    const char *names[] = {"ok", "two", "open", "x", "empty", "nl", "big",
                           "max"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
      snprintf(expect, sizeof expect, "%s/%s", dir, names[i]);
      unlink(expect);
    }
    rmdir(dir);
  }
}

int main(void) {
  CHECK_EQ_INT(cl_auth_init(), 0);
  test_handshake();
  test_secret_file();
  return check_done("auth");
}
