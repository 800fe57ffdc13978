/* Client side of the agent protocol (docs/agent-protocol.md) over a libuv stream:
 * request/response matching by id, per-channel callbacks for process and file streams.
 *
 * Callbacks: a request's reply callback runs exactly once (with status -ECONNRESET if the
 * connection drops first), so its userdata must stay alive until then. A channel's
 * callbacks run until agentc_channel_close(), or on_lost when the connection drops. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "basic/macros.h"
#include "proto/proto.h"

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

uint32_t agentc_channel_open(AgentConn *c, const AgentChannelOps *ops, void *userdata);
void agentc_channel_close(AgentConn *c, uint32_t channel);

/* Starts a request frame in b and returns its id; add TLVs, then agentc_request_send(). */
uint32_t agentc_request_begin(AgentConn *c, ProtoBuf *b, ProtoOp op);
/* Sends the frame (consuming b) and arranges for reply to run once. 0 or -errno; on
 * error reply does not run. */
int agentc_request_send(AgentConn *c, ProtoBuf *b, AgentReply reply, void *userdata);

int agentc_send_data(AgentConn *c, uint32_t channel, ProtoStream stream, const void *data, size_t len);
int agentc_send_eof(AgentConn *c, uint32_t channel, ProtoStream stream);
int agentc_send_credit(AgentConn *c, uint32_t channel, ProtoStream stream, uint32_t bytes);
/* Bytes written to the socket's queue but not yet sent. */
size_t agentc_pending(const AgentConn *c);
