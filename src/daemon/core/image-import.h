/* Importing a rootfs tarball (what `docker export` writes; plain, gzip, xz, bzip2 or
 * zstd) as an image. libarchive reads the archive; every entry is checked here and
 * created with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | ...) relative to the new
 * root, so no name can reach outside it even if a check were missed (SECURITY.md A1-A7):
 *
 *   A1 absolute names and ".." components: refused.
 *   A2 a path through a symlink (the archive's own or any): refused.
 *   A3 a hardlink to a path outside, through a symlink, or to a non-file: refused.
 *   A4 device, FIFO and socket entries: refused.
 *   A5 modes keep only 0755 of their bits (no set-id, sticky, group/other write);
 *      owners are ignored: everything belongs to the image's root.
 *   A6 expanded bytes and entries are capped (ImageImportLimits): refused past a cap.
 *   A7 a name seen twice: the later entry replaces a file or symlink, merges into a
 *      directory; a non-directory over a directory is refused.
 * A refused archive is refused whole: the caller removes what was extracted.
 * proc/, dev/ (where sandboxes mount theirs), tmp/ and root/ are made if missing. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "basic/error.h"

#define IMAGE_IMPORT_MAX_BYTES (16ull << 30) /* expanded, and of the archive itself */
#define IMAGE_IMPORT_MAX_ENTRIES 1000000ull

typedef struct ImageImportLimits {
        uint64_t max_bytes;
        uint64_t max_entries;
} ImageImportLimits;

/* Extracts the archive open on archive_fd into root_fd (an empty directory). Blocking.
 * Errors: invalid_archive (400) naming the entry, payload_too_large (413) past a cap. */
int image_import_extract(int archive_fd, int root_fd, const ImageImportLimits *limits, ForgeError *err);

/* The runtimes found in an extracted root, as image.json's "runtimes" object: python
 * if usr/bin/python3 is there, node for usr/bin/node, sh and bash. Blocking. */
json_t *image_import_runtimes(int root_fd);
