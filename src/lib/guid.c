/*
 * guid.c - SHA-1 message GUIDs through OpenSSL's EVP interface (see
 * guid.h).  Files are hashed in 64 KiB blocks, so a large message never
 * has to fit in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "error.h"
#include "fsutil.h"
#include "guid.h"

/* One digest over the blocks read(): buf/len when fd < 0, else the fd. */
static int
digest(const void *buf, size_t len, int fd, uint8_t out[IDS_GUID_LEN])
{
	unsigned char block[65536];
	unsigned int olen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ssize_t n;
	int r = 0;

	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1)
		r = ids_error(-EIO, "libcrypto: SHA-1 unavailable");
	else if (fd < 0 && EVP_DigestUpdate(ctx, buf, len) != 1)
		r = ids_error(-EIO, "libcrypto: SHA-1 update failed");
	while (r == 0 && fd >= 0) {
		n = read(fd, block, sizeof(block));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else if (n == 0)
			break;
		else if (EVP_DigestUpdate(ctx, block, (size_t)n) != 1)
			r = ids_error(-EIO, "libcrypto: SHA-1 update failed");
	}
	if (r == 0 && (EVP_DigestFinal_ex(ctx, out, &olen) != 1 || olen != IDS_GUID_LEN))
		r = ids_error(-EIO, "libcrypto: SHA-1 final failed");
	EVP_MD_CTX_free(ctx);
	return r;
}

int
ids_guid_buf(const void *buf, size_t len, uint8_t out[IDS_GUID_LEN])
{
	return digest(buf, len, -1, out);
}

int
ids_guid_fd(int fd, uint8_t out[IDS_GUID_LEN])
{
	if (fd < 0)
		return -EBADF;
	return digest(NULL, 0, fd, out);
}

int
ids_guid_file(int dirfd, const char *name, uint8_t out[IDS_GUID_LEN])
{
	int fd, r;

	if ((r = ids_open_regular(dirfd, name, NULL, &fd)) < 0)
		return r;
	r = ids_guid_fd(fd, out);
	close(fd);
	return r;
}

void
ids_guid_hex(const uint8_t guid[IDS_GUID_LEN], char out[IDS_GUID_HEXLEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < IDS_GUID_LEN; i++) {
		out[2 * i] = hex[guid[i] >> 4];
		out[2 * i + 1] = hex[guid[i] & 0xf];
	}
	out[IDS_GUID_HEXLEN] = '\0';
}

int
ids_guid_is_null(const uint8_t guid[IDS_GUID_LEN])
{
	size_t i;

	for (i = 0; i < IDS_GUID_LEN; i++)
		if (guid[i])
			return 0;
	return 1;
}
