/*
 * fsutil.h - the one durable-write helper and the one safe directory
 * walk of the library.
 *
 * All paths handed to these functions are relative to a directory file
 * descriptor, and every component is opened with O_NOFOLLOW: a symlink
 * anywhere below the root is refused with IDS_EUNSAFE, never followed.
 * Every mutating call is preceded by a failpoint (failpoint.h) named
 * "fs.<call>".
 */
#ifndef IDS_FSUTIL_H
#define IDS_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IDS_OPEN_CREATE 0x1	/* create missing directories (mode 0750) */

/*
 * Opens the directory at relpath below rootfd (relpath may be "" or
 * "."), one component at a time, refusing symlinks and non-directories
 * (IDS_EUNSAFE) and ".." components (IDS_EINVAL).  With IDS_OPEN_CREATE,
 * missing components are created and each new entry is made durable by
 * an fsync of its parent.  Stores an O_DIRECTORY fd in *fdp.
 * Returns 0 or a negative code.
 */
int ids_opendir_beneath(int rootfd, const char *relpath, int flags, int *fdp);

/*
 * Opens the regular file name in dirfd for reading, never following a
 * symlink and never blocking on a FIFO or a device (O_NONBLOCK, then
 * fstat): a symlink or anything but a regular file is refused with
 * IDS_EUNSAFE.  Stores the fd in *fdp and, when stp is not NULL, its
 * stat in *stp.  Returns 0 or a negative code.
 */
struct stat;
int ids_open_regular(int dirfd, const char *name, struct stat *stp, int *fdp);

/* Opens the absolute directory path (no symlink refused above it). */
int ids_opendir_abs(const char *path, int *fdp);

/*
 * Calls fn(rock, name, ino, type) for every entry of the directory dirfd
 * but "." and "..", from its start, straight from getdents64(2): no
 * DIR stream, no dup, no stat.  type is a DT_ value, DT_UNKNOWN where
 * the file system does not tell.  The fd's offset is rewound first and
 * left at the end.  Stops at fn's first non-zero return and returns
 * it; 0 at the end (a directory removed while open has no entries),
 * or -errno when the directory cannot be read.
 */
typedef int (*ids_dirent_fn)(void *rock, const char *name, ino_t ino,
    unsigned char type);
int ids_dir_each(int dirfd, ids_dirent_fn fn, void *rock);
/*
 * The same for a directory just opened and not read yet (its offset is
 * at the start): no rewind, one lseek(2) fewer.
 */
int ids_dir_each_fresh(int dirfd, ids_dirent_fn fn, void *rock);

/*
 * A directory's names with their inode numbers and types, sorted by
 * name: one read of the directory answers "is name there, and is it
 * inode ino?" for all of its entries, instead of a stat each.
 */
struct ids_dirlist_ent {
	size_t name;		/* offset in names */
	ino_t ino;
	unsigned char type;
};
struct ids_dirlist {
	struct ids_dirlist_ent *ent;
	size_t n, cap;
	char *names;
	size_t len, size;
	int complete;		/* 0: the directory had more than max entries */
};

/*
 * Reads dirfd into *dl (up to max entries; beyond, dl->complete is 0 and
 * a name not found may still be there).  Returns 0 or negative; call
 * ids_dirlist_free() in either case.
 */
int ids_dirlist_read(int dirfd, size_t max, struct ids_dirlist *dl);
/* The same for a directory just opened and not read yet (ids_dir_each_fresh). */
int ids_dirlist_read_fresh(int dirfd, size_t max, struct ids_dirlist *dl);
/* Sorts a list made or extended with ids_dirlist_add, for ids_dirlist_find. */
void ids_dirlist_sort(struct ids_dirlist *dl);
/* Appends an entry (the list is sorted by ids_dirlist_read only). */
int ids_dirlist_add(struct ids_dirlist *dl, const char *name, ino_t ino,
    unsigned char type);
/* The entry name, or NULL. */
const struct ids_dirlist_ent *ids_dirlist_find(const struct ids_dirlist *dl,
    const char *name);
void ids_dirlist_free(struct ids_dirlist *dl);

/* fsync(dirfd); a failure is final (never retried). Returns 0 or -errno. */
int ids_fsync_dir(int dirfd);

/*
 * Group commit.  While on (per thread), ids_fsync_dir() and the fsyncs
 * of ids_write_durable() are skipped; the caller makes everything
 * durable at one ordering point with ids_fs_sync() (syncfs(2) of the
 * file system holding fd), before it commits what depends on it.  Used
 * by batch migration to share one flush among many folders.
 */
void ids_fs_defer_sync(int on);
int ids_fs_sync(int fd);
/* Nonzero while fsyncs are deferred: a directory need not be opened to fsync it. */
int ids_fs_deferred(void);
/* fsync(fd) of a file, or nothing while deferred.  Returns 0 or -errno. */
int ids_fsync_file(int fd);

/*
 * Durably replaces (or creates) the file name in dirfd with len bytes
 * of buf: writes name.NEW with O_EXCL (removing a stale one left by a
 * crash), fsyncs it, renames it over name and fsyncs the directory.
 * The old inode of name is never written to, so a name shared by hard
 * links elsewhere keeps its old content there.  Returns 0 or negative.
 */
int ids_write_durable(int dirfd, const char *name, const void *buf,
    size_t len, mode_t mode);

/*
 * ids_write_durable() for a file too large to hold in memory: begin
 * creates name.NEW (O_EXCL, a stale one removed; failpoint fs.create),
 * write stores bytes at an offset (fs.write; d->fd is open read-write
 * for reading them back), commit fsyncs, renames over name and fsyncs
 * the directory (fs.fsync, fs.rename), abort closes and removes
 * name.NEW (fs.unlink_tmp).  After a failed commit, call abort.
 */
struct ids_durable {
	int dirfd, fd;
	uint64_t off;		/* bytes written: the end of the highest write */
	char name[256], tmp[264];
};
int ids_durable_begin(int dirfd, const char *name, mode_t mode, struct ids_durable *d);
int ids_durable_write(struct ids_durable *d, const void *buf, size_t len, uint64_t off);
int ids_durable_commit(struct ids_durable *d);
void ids_durable_abort(struct ids_durable *d);

/*
 * Creates the file name in dirfd with len bytes of buf, fsyncs it and
 * the directory (both deferred under ids_fs_defer_sync).  No temporary
 * name and no rename: for a file in a directory that nothing reads
 * before the caller's next commit point, whose undo removes a partial
 * file.  A failure removes what it made.  Where name is already there,
 * it is replaced as ids_write_durable() does.
 */
int ids_write_new(int dirfd, const char *name, const void *buf, size_t len,
    mode_t mode);

/* Writes all len bytes (restarting on EINTR). Returns 0 or -errno. */
int ids_write_all(int fd, const void *buf, size_t len);

/*
 * Reads the regular file name in dirfd (O_NOFOLLOW; anything but a
 * regular file is IDS_EUNSAFE) into a malloc'd buffer, NUL-terminated
 * past *lenp bytes.  Files over max bytes are IDS_ETOOLONG.
 * Returns 0 or negative; on success the caller frees *bufp.
 */
int ids_read_file(int dirfd, const char *name, size_t max, char **bufp,
    size_t *lenp);

/*
 * 1 if name in afd and name in bfd are the same file (one inode) or
 * hold the same bytes (same size and SHA-1), 0 if not, negative on
 * error (a missing name is -ENOENT).  Symlinks are never followed.
 */
int ids_same_file(int afd, int bfd, const char *name);

/* How ids_link_or_copy() carried a file over. */
enum ids_carry {
	IDS_CARRY_LINKED,	/* a new hard link */
	IDS_CARRY_COPIED,	/* a verified copy: linking was impossible */
	IDS_CARRY_EXISTED,	/* already there: same inode or same bytes */
};

/*
 * Gives the regular file name in sfd a name in dfd: a hard link, or
 * where the kernel refuses one (EXDEV across mounts, EMLINK at the link
 * limit, EPERM under fs.protected_hardlinks) a copy written to
 * name.NEW, fsynced, verified by SHA-1 against the source and linked
 * into place.  An existing name is accepted when it is the same file
 * or the same bytes, else IDS_ECONFLICT.  Never overwrites anything.
 * The caller fsyncs dfd.  Stores how in *howp and adds copied bytes
 * to *bytesp.  Failpoints: fs.link, fs.copy, fs.link_copy.
 */
int ids_link_or_copy(int sfd, int dfd, const char *name, enum ids_carry *howp,
    unsigned long long *bytesp);
/* The copy half of ids_link_or_copy(), for when linking is known to fail. */
int ids_copy_only(int sfd, int dfd, const char *name, enum ids_carry *howp,
    unsigned long long *bytesp);

#endif
