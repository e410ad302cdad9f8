/*
 * guid.h - message GUIDs: the SHA-1 of a message file's bytes, as
 * Cyrus stores it raw in every cyrus.index record (formats.md section 8)
 * and as replication asks for it (RESERVE / MISSING (GUID ...)).
 *
 * The digest comes from OpenSSL's EVP interface.
 */
#ifndef IDS_GUID_H
#define IDS_GUID_H

#include <stddef.h>
#include <stdint.h>

#define IDS_GUID_LEN	20
#define IDS_GUID_HEXLEN	40

/* SHA-1 of len bytes at buf.  Returns 0, -ENOMEM or -EIO (libcrypto failed). */
int ids_guid_buf(const void *buf, size_t len, uint8_t out[IDS_GUID_LEN]);

/*
 * SHA-1 of everything fd yields from its current offset to end of file
 * (read in blocks, restarting on EINTR).  Returns 0, -errno, -ENOMEM or -EIO.
 */
int ids_guid_fd(int fd, uint8_t out[IDS_GUID_LEN]);

/*
 * SHA-1 of the regular file name in dirfd, opened with O_NOFOLLOW
 * (a symlink or anything but a regular file is IDS_EUNSAFE).
 */
int ids_guid_file(int dirfd, const char *name, uint8_t out[IDS_GUID_LEN]);

/* Lower-case hex, NUL-terminated: Cyrus's message_guid_encode() spelling. */
void ids_guid_hex(const uint8_t guid[IDS_GUID_LEN], char out[IDS_GUID_HEXLEN + 1]);

/* 1 if every byte is zero (Cyrus's "no GUID"), else 0. */
int ids_guid_is_null(const uint8_t guid[IDS_GUID_LEN]);

#endif
