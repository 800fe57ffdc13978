/* Helpers shared by the message decoders (internal to proto/). */
#pragma once

#include "proto/proto.h"

/* A bit per known tag, to refuse repeated single-valued fields. */
typedef uint64_t ProtoSeen;
#define PROTO_TAG_BIT(tag) ((ProtoSeen) 1 << (tag))

int proto_tlv_int_once(const ProtoTlv *t, ProtoSeen *seen, int64_t *ret);
/* Same, and the value must lie in [min, max] (else -EINVAL). */
int proto_tlv_range_once(const ProtoTlv *t, ProtoSeen *seen, int64_t min, int64_t max, int64_t *ret);
int proto_tlv_str_once(const ProtoTlv *t, ProtoSeen *seen, char **ret);
/* Appends a string to a NULL-terminated list holding at most PROTO_MAX_ARGS entries. */
int proto_strv_push(char ***list, size_t *n, const ProtoTlv *t);
void proto_strv_free(char **list);

/* Decodes stat fields (and the entry name) into *st; tags it does not know return 0. */
int proto_stat_field(const ProtoTlv *t, ProtoSeen *seen, ProtoStat *st);
void proto_stat_done(ProtoStat *st);

/* Exit fields (EVENT EXIT and PROCS_LIST entries); tags it does not know return 0. */
int proto_exit_field(const ProtoTlv *t, ProtoSeen *seen, ProtoExit *ex);
/* Exactly one of exit_code and signal, and the usage fields: 0 or -EBADMSG. */
int proto_exit_check(ProtoSeen seen);

/* One PROC field of a PROCS_LIST answer into *p (which it first clears). */
int proto_proc_decode(const ProtoTlv *t, ProtoProc *p);
void proto_proc_done(ProtoProc *p);
