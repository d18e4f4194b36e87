/* Error codes shared by every clsnap module.
 *
 * Library functions return 0 (or a count) on success and a negative CL_E*
 * code on failure, in the style of libuv. One X-macro generates the enum,
 * the names and the messages, so they cannot drift apart. Library code never
 * logs; the caller decides what to say and where.
 */
#ifndef CL_ERROR_H
#define CL_ERROR_H

#define CL_ERRNO_MAP(X)                                                       \
  X(NOMEM, "out of memory")                                                   \
  X(INVAL, "invalid argument")                                                \
  X(PROTO, "malformed message")                                               \
  X(TOOBIG, "message exceeds the size cap")                                   \
  X(TYPE, "unknown message type")                                             \
  X(NOTOKENS, "not enough tokens")                                            \
  X(NOPEER, "no such neighbour")                                              \
  X(EXIST, "already exists")                                                  \
  X(NOENT, "not found")                                                       \
  X(AGAIN, "not complete yet")                                                \
  X(SEQ, "sequence number out of order")                                      \
  X(DUP, "duplicate")                                                         \
  X(STATE, "not allowed in this state")                                       \
  X(FULL, "queue full")                                                       \
  X(RANGE, "number out of range")                                             \
  X(IO, "input/output error")                                                 \
  X(TIMEOUT, "timed out")                                                     \
  X(LOST, "connection lost")                                                  \
  X(INTR, "interrupted")                                                     \
  X(AUTH, "authentication failed")

typedef enum {
  CL_OK = 0,
#define CL_ERR_ENUM(name, msg) CL_E##name,
  CL_E_FIRST_ = -1000,
  CL_ERRNO_MAP(CL_ERR_ENUM)
#undef CL_ERR_ENUM
} cl_err_t;

/* "not enough tokens" for CL_ENOTOKENS; "unknown error" for anything else. */
const char *cl_strerror(int err);
/* "ENOTOKENS" for CL_ENOTOKENS. */
const char *cl_err_name(int err);
/* The code of an ERROR message as a negative CL_E* value: daemons send the
 * negative code, the positive form is accepted too; anything else (a peer
 * that speaks another version) is CL_EIO. */
int cl_err_from_wire(long code);

#endif
