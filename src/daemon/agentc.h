/* Client side of the agent protocol (docs/agent-protocol.md) over a libuv stream:
 * request/response matching by id, per-channel callbacks for process and file streams.
 *
 * Callbacks: a request's reply callback runs exactly once (with status -ECONNRESET if the
 * connection drops first), so its userdata must stay alive until then. A channel's
 * callbacks run until agentc_channel_close(), or on_lost when the connection drops.
 *
 * The silence rule: while a request waits for its reply, the agent must send something
 * (any frame: a reply, output, credit, an exit) at least every silence timeout, or the
 * connection is taken for dead (a wedged guest, a stopped agent, a lost HELLO) and
 * closed as by agentc_close(). Output after a command's spawn reply, or a download under
 * the host's credit, waits for no reply and so is never judged. A request whose reply
 * legitimately waits on the host (FILE_WRITE's, until the host sent its EOF) is taken
 * out of the rule with agentc_request_watch(); a whole connection with
 * agentc_set_watching() (a frozen sandbox cannot answer). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "basic/macros.h"
#include "proto/proto.h"

/* The silence timeout of a new connection (forged --agent-timeout-ms changes it): a
 * healthy agent answers in milliseconds, a big file's fsync and rename in seconds. */
#define AGENTC_SILENCE_TIMEOUT_MS (60 * 1000)

typedef struct AgentConn AgentConn;

typedef struct AgentChannelOps {
        void (*on_data)(void *userdata, ProtoStream stream, const uint8_t *data, size_t len);
        void (*on_eof)(void *userdata, ProtoStream stream);
        void (*on_credit)(void *userdata, ProtoStream stream, uint32_t bytes);
        void (*on_exit)(void *userdata, const ProtoExit *exit);
        void (*on_lost)(void *userdata);
} AgentChannelOps;

typedef void (*AgentReply)(void *userdata, const ProtoResponse *resp);
typedef void (*AgentClosed)(AgentConn *c, void *userdata);

/* Takes ownership of fd (a connected stream socket). */
int agentc_new(uv_loop_t *loop, int fd, const char *sandbox_id, AgentConn **ret);
AgentConn *agentc_ref(AgentConn *c);
AgentConn *agentc_unref(AgentConn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentConn *, agentc_unref);

bool agentc_is_open(const AgentConn *c);
/* A number no other connection of this forged has had (0 for NULL). */
uint64_t agentc_serial(const AgentConn *c);
/* Runs once when the connection ends (either side). */
void agentc_on_closed(AgentConn *c, AgentClosed cb, void *userdata);
/* Ends the connection: pending replies get -ECONNRESET, channels on_lost. */
void agentc_close(AgentConn *c);
/* The silence rule's timeout in ms (0: AGENTC_SILENCE_TIMEOUT_MS). */
void agentc_set_silence_timeout(AgentConn *c, uint64_t ms);
/* Whether the silence rule applies to c at all (true for a new connection); c may be NULL. */
void agentc_set_watching(AgentConn *c, bool watching);

uint32_t agentc_channel_open(AgentConn *c, const AgentChannelOps *ops, void *userdata);
void agentc_channel_close(AgentConn *c, uint32_t channel);

/* Starts a request frame in b and returns its id; add TLVs, then agentc_request_send(). */
uint32_t agentc_request_begin(AgentConn *c, ProtoBuf *b, ProtoOp op);
/* Sends the frame (consuming b) and arranges for reply to run once. 0 or -errno; on
 * error reply does not run. */
int agentc_request_send(AgentConn *c, ProtoBuf *b, AgentReply reply, void *userdata);
/* Whether the wait for req_id's reply counts toward the silence rule (it does from
 * agentc_request_send() on). No-op once the reply came. */
void agentc_request_watch(AgentConn *c, uint32_t req_id, bool watched);

int agentc_send_data(AgentConn *c, uint32_t channel, ProtoStream stream, const void *data, size_t len);
int agentc_send_eof(AgentConn *c, uint32_t channel, ProtoStream stream);
int agentc_send_credit(AgentConn *c, uint32_t channel, ProtoStream stream, uint32_t bytes);
/* Bytes written to the socket's queue but not yet sent. */
size_t agentc_pending(const AgentConn *c);
