/* Streamed file transfers through a sandbox's agent, with the protocol's flow control,
 * plus the mapping of the agent's errnos to client-facing errors. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic/error.h"
#include "daemon/agentc.h"

/* Turns an agent errno for `path` into a ForgeError (path_not_found, is_a_directory, ...). */
int files_error(ForgeError *err, int errnum, const char *path);

/* ---- writing: FILE_WRITE ---- */

typedef struct FileWriter FileWriter;
typedef struct FileWriterOps {
        /* More bytes may be written (credit arrived). */
        void (*on_writable)(void *userdata);
        /* The transfer ended: status 0 with the file's size, or -errno (err filled). */
        void (*on_done)(void *userdata, int status, int64_t size, const ForgeError *err);
} FileWriterOps;

int file_writer_start(AgentConn *c, const char *path, bool parents, const FileWriterOps *ops, void *userdata,
                      FileWriter **ret);
/* How many bytes the agent accepts right now. */
size_t file_writer_window(const FileWriter *w);
/* Sends at most file_writer_window() bytes; returns how many were taken. */
size_t file_writer_write(FileWriter *w, const void *data, size_t len);
/* No more data: the agent renames the file into place and on_done runs. */
int file_writer_finish(FileWriter *w);
/* The source went away: no more callbacks; the agent drops the temporary file. */
void file_writer_abort(FileWriter *w);

/* Writes a whole in-memory buffer (copied), as credit allows; on_done runs at the end. */
int file_write_buffer(AgentConn *c, const char *path, const void *data, size_t len,
                      void (*on_done)(void *userdata, int status, int64_t size, const ForgeError *err),
                      void *userdata);

/* ---- reading: FILE_READ ---- */

typedef struct FileReader FileReader;
typedef struct FileReaderOps {
        /* The file is open (status 0, its size) or could not be (-errno, err filled). */
        void (*on_open)(void *userdata, int status, int64_t size, const ForgeError *err);
        /* Bytes arrived; call file_reader_consumed() when they have been passed on. */
        void (*on_data)(void *userdata, const uint8_t *data, size_t len);
        /* The end: 0 after the last byte, or -errno if the transfer broke. */
        void (*on_end)(void *userdata, int status);
} FileReaderOps;

int file_reader_start(AgentConn *c, const char *path, int64_t max_size, const FileReaderOps *ops,
                      void *userdata, FileReader **ret);
void file_reader_consumed(FileReader *r, size_t len);
/* The reader went away: no more callbacks. */
void file_reader_abort(FileReader *r);
