/* See auth.h. */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "error.h"

static const char label_client[] = "clsnap-auth-client";
static const char label_server[] = "clsnap-auth-server";

/* HMAC-SHA-256(key, label || a || b). */
static void mac(const cl_secret_t *key, const char *label,
                const uint8_t a[CL_AUTH_NONCE], const uint8_t b[CL_AUTH_NONCE],
                uint8_t out[CL_AUTH_MAC]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key->bytes, key->len);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)label,
                                strlen(label));
  crypto_auth_hmacsha256_update(&st, a, CL_AUTH_NONCE);
  crypto_auth_hmacsha256_update(&st, b, CL_AUTH_NONCE);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

void cl_auth_challenge(cl_msg_t *out, const uint8_t nonce[CL_AUTH_NONCE],
                       int required) {
  memset(out, 0, sizeof *out);
  out->type = CL_MSG_CHALLENGE;
  memcpy(out->u.challenge.nonce, nonce, CL_AUTH_NONCE);
  out->u.challenge.required = required ? 1 : 0;
}

int cl_auth_check(const cl_secret_t *key, const uint8_t nonce_s[CL_AUTH_NONCE],
                  const cl_msg_t *auth, cl_msg_t *ok) {
  uint8_t want[CL_AUTH_MAC];
  int same;
  if (key == NULL || key->len == 0 || auth->type != CL_MSG_AUTH)
    return CL_EAUTH;
  mac(key, label_client, nonce_s, auth->u.auth.nonce, want);
  same = crypto_verify_32(want, auth->u.auth.mac) == 0;
  sodium_memzero(want, sizeof want);
  if (!same)
    return CL_EAUTH;
  memset(ok, 0, sizeof *ok);
  ok->type = CL_MSG_AUTH_OK;
  mac(key, label_server, auth->u.auth.nonce, nonce_s, ok->u.auth_ok.mac);
  return 0;
}

int cl_auth_answer(const cl_secret_t *key, const cl_msg_t *ch,
                   const uint8_t nonce_c[CL_AUTH_NONCE], cl_msg_t *auth,
                   char *why, size_t whysz) {
  int have = key != NULL && key->len > 0;
  if (ch->type != CL_MSG_CHALLENGE) {
    snprintf(why, whysz, "expected CHALLENGE, got %s (not a clsnapd of "
             "this version?)", cl_msg_type_name(ch->type));
    return CL_EAUTH;
  }
  if (ch->u.challenge.required && !have) {
    snprintf(why, whysz, "authentication failed: the server requires a "
             "secret; give --secret-file");
    return CL_EAUTH;
  }
  if (!ch->u.challenge.required && have) {
    snprintf(why, whysz, "authentication failed: the server does not "
             "authenticate (started without --secret-file)");
    return CL_EAUTH;
  }
  if (!have)
    return 0;
  memset(auth, 0, sizeof *auth);
  auth->type = CL_MSG_AUTH;
  memcpy(auth->u.auth.nonce, nonce_c, CL_AUTH_NONCE);
  mac(key, label_client, ch->u.challenge.nonce, nonce_c, auth->u.auth.mac);
  return 1;
}

int cl_auth_verify(const cl_secret_t *key, const uint8_t nonce_s[CL_AUTH_NONCE],
                   const uint8_t nonce_c[CL_AUTH_NONCE], const cl_msg_t *ok) {
  uint8_t want[CL_AUTH_MAC];
  int same;
  if (key == NULL || key->len == 0 || ok->type != CL_MSG_AUTH_OK)
    return CL_EAUTH;
  mac(key, label_server, nonce_c, nonce_s, want);
  same = crypto_verify_32(want, ok->u.auth_ok.mac) == 0;
  sodium_memzero(want, sizeof want);
  return same ? 0 : CL_EAUTH;
}

int cl_auth_init(void) {
  /* sodium_init returns 1 when already initialised. */
  return sodium_init() < 0 ? CL_EIO : 0;
}

void cl_auth_nonce(uint8_t nonce[CL_AUTH_NONCE]) {
  randombytes_buf(nonce, CL_AUTH_NONCE);
}
