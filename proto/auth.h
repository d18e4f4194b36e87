/* The handshake that opens every connection to a daemon, with no I/O: the
 * daemon sends CHALLENGE (a fresh nonce; whether a secret is required);
 * a client that must prove it knows the secret answers AUTH (its own
 * nonce and an HMAC-SHA-256 over both), and the daemon proves it too
 * (AUTH_OK, an HMAC over both in the other order, under another label).
 * Then the client says HELLO or CLIENT as without a secret. A recorded
 * AUTH is worthless: the daemon's nonce is new on every connection. The
 * HMAC is libsodium's (crypto_auth_hmacsha256); nonces come from the
 * caller (randombytes_buf), so that tests can choose them.
 *
 * Who calls: daemon/server.c (accepted connections), daemon/peer.c
 * (outbound channels), coordinator/backend/cluster.c (control
 * connections). Traffic after the handshake is neither encrypted nor
 * authenticated (docs/RELIABILITY.md).
 */
#ifndef CL_AUTH_H
#define CL_AUTH_H

#include <stdint.h>

#include "secret.h"
#include "wire.h"

/* Daemon: the CHALLENGE for a new connection. */
void cl_auth_challenge(cl_msg_t *out, const uint8_t nonce[CL_AUTH_NONCE],
                       int required);

/* Daemon with a secret: check a client's AUTH against the nonce this
 * connection was challenged with. 0 and *ok (the AUTH_OK to send), or
 * CL_EAUTH (wrong MAC: the client does not know the secret). */
int cl_auth_check(const cl_secret_t *key, const uint8_t nonce_s[CL_AUTH_NONCE],
                  const cl_msg_t *auth, cl_msg_t *ok);

/* Client: the answer to CHALLENGE `ch` for a client with `key` (len 0:
 * none) and a fresh nonce_c. Returns 1 with *auth to send (then wait for
 * AUTH_OK and cl_auth_verify it), 0 when no proof is asked (go on with
 * HELLO or CLIENT), or CL_EAUTH with why: the daemon asks for a secret
 * and the client has none, or the client has one and the daemon does not
 * ask (it would then be an unauthenticated daemon: refused, since the
 * client wants to know whom it talks to). */
int cl_auth_answer(const cl_secret_t *key, const cl_msg_t *ch,
                   const uint8_t nonce_c[CL_AUTH_NONCE], cl_msg_t *auth,
                   char *why, size_t whysz);

/* Client: check the daemon's AUTH_OK. 0, or CL_EAUTH (the daemon does not
 * know the secret). */
int cl_auth_verify(const cl_secret_t *key, const uint8_t nonce_s[CL_AUTH_NONCE],
                   const uint8_t nonce_c[CL_AUTH_NONCE], const cl_msg_t *ok);

/* Initialise libsodium. Called once by each program's main (clsnapd,
 * clsnap, the unit test) before any other cl_auth_ function, as libsodium
 * requires; further calls do nothing. 0, or CL_EIO when libsodium
 * cannot start (no random source): the program must not go on. */
int cl_auth_init(void);

/* Fresh random bytes for a nonce (libsodium's randombytes_buf), after
 * cl_auth_init. */
void cl_auth_nonce(uint8_t nonce[CL_AUTH_NONCE]);

#endif
