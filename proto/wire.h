/* The clsnap wire protocol: every message is one msgpack array
 * `[type, fields...]`; frames are self-delimiting, so a TCP stream is just
 * frames back to back. This module turns cl_msg_t structs into bytes and a
 * byte stream back into structs. Pure: no sockets, no logging.
 *
 * Who may call: the daemon's transport and control layers, the coordinator's
 * cluster backend (coordinator/backend/cluster.c), tests and fuzzers.
 *
 * Ownership: a decoded message may own heap arrays (configure peers, reply
 * lists, local states, status); release them with cl_msg_free(), which is
 * also safe on messages that own nothing. Encoding never takes ownership.
 *
 * Field layouts (all integers msgpack ints, ids and text msgpack str):
 *   handshake (every connection; the daemon speaks first)
 *     CHALLENGE  [5, nonce, required]       daemon -> client: nonce: 32
 *                                           fresh random bytes (bin);
 *                                           required: the client must
 *                                           prove it knows the secret
 *     AUTH       [6, nonce, mac]            client -> daemon: its own nonce
 *                                           and HMAC-SHA-256(secret,
 *                                           "clsnap-auth-client" || the
 *                                           daemon's nonce || its nonce)
 *     AUTH_OK    [7, mac]                   daemon -> client: HMAC(secret,
 *                                           "clsnap-auth-server" || the
 *                                           client's nonce || the daemon's)
 *   peer channel (opened by the sender; HELLO the first frame after the
 *   handshake)
 *     HELLO      [1, from, to, config_id, incarnation, epoch]
 *                                           config_id: the sender's
 *                                           CONFIGURE config_id;
 *                                           incarnation: the sending
 *                                           process's channel epoch (a
 *                                           reconnect repeats it);
 *                                           epoch: the sender's restore
 *                                           epoch (0 before any restore)
 *     WELCOME    [4, from, received]        receiver -> sender, once per
 *                                           connection: HELLO accepted;
 *                                           received: frames it has had on
 *                                           this channel, all connections
 *                                           (a refusal is an ERROR
 *                                           [31, 0, code, text], then close)
 *     TOKEN      [2, seq, n]                 seq >= 1, n >= 1
 *     MARKER     [3, snapshot_id]
 *     ACK        [8, received]              receiver -> sender: frames had
 *                                           on this channel (cumulative)
 *   Frames on a channel (TOKEN and MARKER) are numbered 1, 2, 3 ... by
 *   their position, across reconnections; the number is implicit.
 *   control requests (coordinator -> daemon; CLIENT must be the first frame)
 *     CLIENT     [10, name]
 *     CONFIGURE  [11, req, self, tokens, rank, nservers, lockstep, jitter_ms,
 *                 seed, [[peer, addr]...outbound], [peer...inbound],
 *                 config_id]               config_id: names the topology;
 *                                           peers must agree on it
 *     CONNECT    [12, req]                  open outbound channels; the reply
 *                                           comes when all are connected
 *     SEND       [13, req, dest, n]
 *     SNAPSHOT   [14, req, snapshot_id|nil] nil: the daemon picks an id
 *     COLLECT    [15, req, snapshot_id, release]
 *     STATUS     [16, req]
 *     DELIVER    [17, req, src]             lockstep: handle the next message
 *                                           held from src (waits for it)
 *     SHUTDOWN   [18, req]
 *     CIRCULATE  [19, req, on]              load mode: forward held tokens
 *     WATCH      [21, req, first, count]    push the local states of
 *                                           snapshots first..first+count-1 to
 *                                           this connection (LOCAL_STATE)
 *     NEXT_ID    [22, req]                  reserve a fresh snapshot id here
 *     DROP       [23, req, snapshot_id, started]
 *                                           give snapshot_id up here: a kept
 *                                           state is released, one in
 *                                           progress stops recording, and
 *                                           its later markers pass on but
 *                                           never restart it; started 0 (it
 *                                           was never started): an id not
 *                                           seen here is not remembered
 *     FREEZE     [24, req, epoch]           restore, step 1: take epoch, send
 *                                           nothing, close every channel
 *                                           connection (docs/RESTORE.md)
 *     RESTORE    [25, req, epoch, paused, local_state]
 *                                           step 2: tokens and channel
 *                                           counts from local_state, its
 *                                           recorded runs held at this
 *                                           receiver as its channels' next
 *                                           messages
 *     RESUME     [26, req]                  step 3: handle them, carry on
 *     PEEK       [27, req]                  frozen: the current state as a
 *                                           STATE (held messages as runs)
 *     TRACE      [28, req, on, max_events]  on: start a new trace with room
 *                                           for max_events (0: default);
 *                                           off: stop (docs/TRACE.md)
 *     TRACE_READ [29, req, first, max]      up to max events from index
 *                                           first, as a TRACE_R
 *   replies and notifications (daemon -> coordinator)
 *     OK         [30, req, snapshot_id, [[dest, kind, value, seq]...sent],
 *                 delivered_kind, delivered_value]
 *     ERROR      [31, req, code, text]
 *     STATE      [32, req, local_state]
 *     STATUS_R   [33, req, status]
 *     TRACE_R    [34, req, on, next, [event...]]
 *                                           next: the index the next event
 *                                           will get; event = [i, ev, peer
 *                                           (nil: none), seq, n, snap,
 *                                           [snapshot_id...recorded],
 *                                           tokens, t_us]; ev: CL_TEV_*;
 *                                           DROPPED: n is the count
 *     COMPLETE   [40, snapshot_id, server]  notification: local snapshot done
 *     NOTICE     [41, peer, text]           notification: e.g. lost channel
 *     LOCAL_STATE [42, local_state]         notification to a connection
 *                                           that watches the snapshot: the
 *                                           completed state, released here
 *   local_state = [snapshot_id, server, tokens, initial_tokens,
 *                  [[src, seq, count, n]...recorded runs, arrival order],
 *                  [[dest, sent]...], [[src, received]...]]
 *   status = [self, tokens, initial_tokens, lockstep, configured,
 *             [[dest, sent, connected, queued_bytes]...],
 *             [[src, received, connected, held]...],
 *             [snapshot_id...in progress], [snapshot_id...completed, kept],
 *             config_id, epoch, frozen, paused, discarded, restored_id]
 */
#ifndef CL_WIRE_H
#define CL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "util.h"

typedef enum {
  CL_MSG_HELLO = 1,
  CL_MSG_TOKEN = 2,
  CL_MSG_MARKER = 3,
  CL_MSG_WELCOME = 4,
  CL_MSG_CHALLENGE = 5,
  CL_MSG_AUTH = 6,
  CL_MSG_AUTH_OK = 7,
  CL_MSG_ACK = 8,
  CL_MSG_CLIENT = 10,
  CL_MSG_CONFIGURE = 11,
  CL_MSG_CONNECT = 12,
  CL_MSG_SEND = 13,
  CL_MSG_SNAPSHOT = 14,
  CL_MSG_COLLECT = 15,
  CL_MSG_STATUS = 16,
  CL_MSG_DELIVER = 17,
  CL_MSG_SHUTDOWN = 18,
  CL_MSG_CIRCULATE = 19,
  CL_MSG_WATCH = 21,
  CL_MSG_NEXT_ID = 22,
  CL_MSG_DROP = 23,
  CL_MSG_FREEZE = 24,
  CL_MSG_RESTORE = 25,
  CL_MSG_RESUME = 26,
  CL_MSG_PEEK = 27,
  CL_MSG_TRACE = 28,
  CL_MSG_TRACE_READ = 29,
  CL_MSG_OK = 30,
  CL_MSG_ERROR = 31,
  CL_MSG_STATE = 32,
  CL_MSG_STATUS_R = 33,
  CL_MSG_TRACE_R = 34,
  CL_MSG_COMPLETE = 40,
  CL_MSG_NOTICE = 41,
  CL_MSG_LOCAL_STATE = 42
} cl_msg_type_t;

/* Types 1..CL_MSG_LAST_PEER open connections and travel on peer
 * channels; they carry no request id. */
#define CL_MSG_LAST_PEER 9

/* Control requests are the types CL_MSG_FIRST_REQUEST..CL_MSG_LAST_REQUEST
 * (CLIENT, which opens a control connection, comes before them). */
#define CL_MSG_FIRST_REQUEST CL_MSG_CONFIGURE
#define CL_MSG_LAST_REQUEST CL_MSG_TRACE_READ

/* Largest frame the decoder accepts by default; a frame whose buffered bytes
 * exceed the decoder's cap is CL_ETOOBIG. */
#define CL_WIRE_DEFAULT_CAP (1u << 20)
#define CL_TEXT_SIZE 256
/* No sensible message has more array elements than this (a local state
 * taken under full load can record ~10^5 messages); larger counts are
 * rejected before anything is allocated. */
#define CL_WIRE_MAX_ITEMS (1u << 20)
/* Bytes of a handshake nonce and of an HMAC-SHA-256. */
#define CL_AUTH_NONCE 32
#define CL_AUTH_MAC 32


typedef struct cl_peer_addr {
  char id[CL_ID_SIZE];
  char addr[CL_ADDR_SIZE];
} cl_peer_addr_t;

typedef struct cl_configure {
  char self[CL_ID_SIZE];
  int64_t tokens;
  uint32_t rank, nservers; /* position of self in the sorted server list */
  uint8_t lockstep;        /* 1: hold received messages until DELIVER */
  uint32_t jitter_ms;      /* free-running: random per-message send delay */
  uint64_t seed;           /* for the jitter generator */
  uint32_t nout;
  cl_peer_addr_t *out;     /* owned */
  uint32_t nin;
  char (*in)[CL_ID_SIZE];  /* owned */
  uint64_t config_id;      /* identifies the topology; HELLO carries it */
} cl_configure_t;

/* One message a daemon sent as a result of a command, in sending order. */
typedef struct cl_sent {
  char dest[CL_ID_SIZE];
  uint8_t kind;   /* CL_MSG_TOKEN or CL_MSG_MARKER */
  uint64_t value; /* TOKEN: n; MARKER: snapshot id */
  uint64_t seq;   /* TOKEN: channel sequence number; MARKER: 0 */
} cl_sent_t;

/* A run of recorded messages: `count` >= 1 token messages from src that
 * arrived one after another, seqs seq .. seq + count - 1, n tokens each. */
typedef struct cl_recorded {
  char src[CL_ID_SIZE];
  uint64_t seq;
  uint64_t count;
  int64_t n;
} cl_recorded_t;

typedef struct cl_chan_count {
  char peer[CL_ID_SIZE];
  uint64_t count;
} cl_chan_count_t;

/* A server's recorded state for one snapshot, as collected. */
typedef struct cl_local_state {
  uint64_t snapshot_id;
  char server[CL_ID_SIZE];
  int64_t tokens;          /* tokens held when the state was recorded */
  int64_t initial_tokens;  /* tokens configured at start */
  uint32_t nrecorded;      /* runs */
  cl_recorded_t *recorded; /* owned; runs in arrival order */
  uint32_t nsent;
  cl_chan_count_t *sent;   /* owned; per outbound channel, token messages
                              sent before recording */
  uint32_t nrecv;
  cl_chan_count_t *recv;   /* owned; per inbound channel, token messages
                              received before recording */
} cl_local_state_t;

typedef struct cl_out_status {
  char peer[CL_ID_SIZE];
  uint64_t sent;
  uint8_t connected;
  uint64_t queued_bytes;
} cl_out_status_t;

typedef struct cl_in_status {
  char peer[CL_ID_SIZE];
  uint64_t received;
  uint8_t connected;
  uint64_t held; /* lockstep: messages waiting for DELIVER */
} cl_in_status_t;

typedef struct cl_status {
  char self[CL_ID_SIZE];
  int64_t tokens;
  int64_t initial_tokens;
  uint8_t lockstep;
  uint8_t configured;
  uint32_t nout;
  cl_out_status_t *out; /* owned */
  uint32_t nin;
  cl_in_status_t *in;   /* owned */
  uint32_t nactive;
  uint64_t *active;     /* owned; snapshots in progress */
  uint32_t ndone;
  uint64_t *done;       /* owned; completed snapshots still kept */
  uint64_t config_id;   /* of the CONFIGURE (0 before) */
  uint64_t epoch;       /* restore epoch (0: never restored) */
  uint8_t frozen;       /* between FREEZE and RESUME */
  uint8_t paused;       /* restored with paused, not resumed yet */
  uint64_t discarded;   /* HELLOs of older epochs refused */
  uint64_t restored_id; /* the snapshot last restored (RESTORE's state) */
} cl_status_t;

/* Trace event kinds (docs/TRACE.md), as TRACE_R carries them. */
typedef enum {
  CL_TEV_SEND = 1,
  CL_TEV_RECV,
  CL_TEV_MARKER_SEND,
  CL_TEV_MARKER_RECV,
  CL_TEV_RECORD,
  CL_TEV_DONE,
  CL_TEV_DROPPED
} cl_tev_t;

/* Most events one TRACE_R carries (a reader asks again for the rest). */
#define CL_TRACE_READ_MAX 4096

/* One trace event as read from a server. */
typedef struct cl_trace_event {
  uint64_t i;
  uint8_t ev;            /* cl_tev_t */
  char peer[CL_ID_SIZE]; /* "" when none */
  uint64_t seq;
  int64_t n;             /* send, recv: tokens; dropped: events missing */
  uint64_t snap;
  int64_t tokens;
  uint64_t t_us;
  uint32_t nrecorded;
  uint64_t *recorded;    /* owned */
} cl_trace_event_t;

typedef struct cl_msg {
  uint8_t type; /* cl_msg_type_t */
  uint64_t req; /* control requests and their replies */
  union {
    struct {
      char from[CL_ID_SIZE], to[CL_ID_SIZE];
      uint64_t config_id;
      uint64_t incarnation;
      uint64_t epoch;
    } hello;
    struct { uint64_t seq; int64_t n; } token;
    struct { uint64_t snapshot_id; } marker;
    struct { char from[CL_ID_SIZE]; uint64_t received; } welcome;
    struct { uint64_t received; } ack;
    struct {
      uint8_t nonce[CL_AUTH_NONCE];
      uint8_t required;
    } challenge;
    struct {
      uint8_t nonce[CL_AUTH_NONCE];
      uint8_t mac[CL_AUTH_MAC];
    } auth;
    struct { uint8_t mac[CL_AUTH_MAC]; } auth_ok;
    struct { char name[CL_ID_SIZE]; } client;
    cl_configure_t configure;
    struct { char dest[CL_ID_SIZE]; int64_t n; } send;
    struct { uint8_t has_id; uint64_t snapshot_id; } snapshot;
    struct { uint64_t snapshot_id; uint8_t release; } collect;
    struct { char src[CL_ID_SIZE]; } deliver;
    struct { uint8_t on; } circulate;
    struct { uint64_t first, count; } watch;
    struct { uint64_t snapshot_id; uint8_t started; } drop;
    struct { uint64_t epoch; } freeze;
    struct { uint8_t on; uint64_t max_events; } trace;
    struct { uint64_t first, max; } trace_read;
    struct {
      uint8_t on;
      uint64_t next;
      uint32_t nevents;
      cl_trace_event_t *events; /* owned */
    } trace_r;
    struct {
      uint64_t epoch;
      uint8_t paused;
      cl_local_state_t state; /* owned */
    } restore;
    struct {
      uint64_t snapshot_id;   /* SNAPSHOT: the id started; else 0 */
      uint32_t nsent;
      cl_sent_t *sent;        /* owned */
      uint8_t delivered_kind; /* DELIVER: CL_MSG_TOKEN or _MARKER; else 0 */
      uint64_t delivered_value;
    } ok;
    struct { int32_t code; char text[CL_TEXT_SIZE]; } error;
    cl_local_state_t state; /* STATE and LOCAL_STATE */
    cl_status_t status;
    struct { uint64_t snapshot_id; char server[CL_ID_SIZE]; } complete;
    struct { char peer[CL_ID_SIZE]; char text[CL_TEXT_SIZE]; } notice;
  } u;
} cl_msg_t;

/* Release what a message owns and zero it. Safe on any message. */
void cl_msg_free(cl_msg_t *m);

/* Name of a message type ("TOKEN"), or "UNKNOWN". */
const char *cl_msg_type_name(int type);

/* Append one encoded frame to sb. Returns 0, CL_EINVAL (invalid message:
 * bad type, invalid id) or CL_ENOMEM. */
int cl_wire_encode(const cl_msg_t *m, msgpack_sbuffer *sb);

/* Ensure sb can take n more bytes without reallocating (so appending
 * them cannot fail). 0 or CL_ENOMEM. */
int cl_sbuf_reserve(msgpack_sbuffer *sb, size_t n);

/* Fast paths for the hot peer messages: append a TOKEN or MARKER frame. */
int cl_wire_encode_token(msgpack_sbuffer *sb, uint64_t seq, int64_t n);
int cl_wire_encode_marker(msgpack_sbuffer *sb, uint64_t snapshot_id);

/* Streaming decoder over msgpack_unpacker with a cap on buffered bytes. */
typedef struct cl_wire_decoder cl_wire_decoder_t;

/* cap: maximum bytes of one frame plus what is buffered behind it. Returns
 * NULL on allocation failure. */
cl_wire_decoder_t *cl_wire_decoder_new(size_t cap);
void cl_wire_decoder_free(cl_wire_decoder_t *d);

/* Zero-copy input: get a buffer of at least `want` bytes to read into, then
 * report how many bytes were written. Returns 0, CL_ETOOBIG (buffering more
 * would exceed the cap) or CL_ENOMEM. */
int cl_wire_decoder_reserve(cl_wire_decoder_t *d, size_t want, char **buf,
                            size_t *avail);
void cl_wire_decoder_consumed(cl_wire_decoder_t *d, size_t n);

/* Copying input: reserve + memcpy + consumed. */
int cl_wire_decoder_feed(cl_wire_decoder_t *d, const char *data, size_t len);

/* Take the next complete frame. Returns 1 and fills *m (caller frees with
 * cl_msg_free), 0 when more bytes are needed, or a negative error:
 * CL_EPROTO (not msgpack, wrong shape, wrong field type, invalid id, value
 * out of range), CL_ETYPE (well-formed array with an unknown type number),
 * CL_ETOOBIG (frame larger than the cap), CL_ENOMEM. After an error the
 * decoder is unusable; close the connection. */
int cl_wire_next(cl_wire_decoder_t *d, cl_msg_t *m);

/* Bytes buffered and not yet decoded. */
size_t cl_wire_decoder_buffered(const cl_wire_decoder_t *d);

/* Bytes of input buffer the decoder has allocated: about cap + 64 at most
 * (it starts at up to 64 KiB). For tests and diagnostics. */
size_t cl_wire_decoder_allocated(const cl_wire_decoder_t *d);

#endif
