/*
 * sync_int.h - shared by the files of src/lib/sync/ only.
 */
#ifndef IDS_SYNC_INT_H
#define IDS_SYNC_INT_H

#include <stddef.h>
#include <stdint.h>

/* Block size of file literal copies and hashes. */
#define SYNC_BLOCK	65536

/* Annotations Cyrus keeps in the index record rather than in its annotation db. */
#define SYNC_ANNOT_NS	"/vendor/cmu/cyrus-imapd/"

#endif
