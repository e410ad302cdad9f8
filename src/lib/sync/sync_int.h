/*
 * sync_int.h - shared by the files of src/lib/sync/ only.
 */
#ifndef IDS_SYNC_INT_H
#define IDS_SYNC_INT_H

#include <stddef.h>
#include <stdint.h>

struct ids_dlist;
struct ids_dlist_file;

/* Block size of file literal copies and hashes. */
#define SYNC_BLOCK	65536

/*
 * Hashes name in dirfd and checks it is a regular file of f->size bytes
 * whose SHA-1 is f->guid: 0, IDS_ECRC (size or digest differ; the
 * detail says which) or negative.  On success *fdp, when not NULL, is
 * the file opened and rewound for the copy (the caller closes it).
 */
int sync_file_check(const struct ids_dlist_file *f, int *fdp);

/* The n-th (0-based) FILE node of dl in document order, or NULL. */
struct ids_dlist *sync_nth_file(struct ids_dlist *dl, size_t *n);

#endif
