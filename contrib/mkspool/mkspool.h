/*
 * mkspool.h - what the parts of the spool generator share.
 *
 * mkspool.c runs the generation: options, the checks on the partitions,
 * the loop over owners, the summary.  plan.c decides what each owner
 * (a user or a shared top level) has: names, folder tree, unique ids,
 * times and how many messages each folder holds.  folder.c writes one
 * folder (message files, cyrus.index, cyrus.cache, cyrus.header) and
 * queues its mailboxes.db records.  message.c makes the messages.
 *
 * Every choice comes from the seeded streams of rng.h; no clock is read,
 * so a seed always gives the same spool.
 */
#ifndef MKSPOOL_H
#define MKSPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "guid.h"
#include "mbentry.h"
#include "mboxname.h"
#include "rng.h"

struct ids_config;
struct ids_mboxlist;

/* The newest time in any spool; a seed moves "now" back by up to a year. */
#define MKSPOOL_EPOCH	1735689600	/* 2025-01-01 00:00:00 UTC */
#define DAY		86400

/* Streams of rng.h: one per owner (its index), and these. */
#define STREAM_PLAN	0x706c616e00000000ULL
#define STREAM_CORPUS	0x636f727075730000ULL

/* An owner of folders: a user, or a shared top level. */
struct owner {
	unsigned index;
	int is_user;
	int deleted;		/* a deleted user: every folder is DELETED.* */
	char local[64];		/* localpart (real dots) or the top level */
	char domain[64];	/* "" for none */
	char userid[160];	/* "john.doe@example.com", "alice"; top level */
	char realname[64];	/* "John Doe" (users) */
	char colleague[160];	/* a user some folders are shared with, or "" */
	char prefix[160];	/* internal name of the owner's root folder */
	unsigned partition;	/* index into cfg->partitions */
	unsigned style;		/* naming style of the standard folders */
	int quota;		/* folders have the owner's root as quota root */
	int64_t born;		/* when the account was created */
	unsigned nfolders;	/* budget */
	uint64_t nmessages;	/* budget */
};

enum folder_kind {
	FK_INBOX, FK_SENT, FK_DRAFTS, FK_TRASH, FK_JUNK, FK_ARCHIVE,
	FK_LISTS, FK_LIST, FK_YEAR, FK_PLAIN, FK_SHARED,
};

#define FF_OLDHEADER	0x01	/* cyrus.header in the <= 3.4 format */
#define FF_DELETED	0x02	/* DELETED.<oldname>.<HEX>; oldname is the live name it had */
#define FF_RENAMED	0x04	/* renamed from oldname */
#define FF_STALEHDR	0x08	/* its cyrus.header still carries oldname */
#define FF_COLLEAGUE	0x10	/* shared with a colleague */
#define FF_NOPARENT	0x20	/* never a parent (deleted, Trash, ...) */
#define FF_SHOWCASE	0x40	/* one of the fixed cases of the first user */

struct folder {
	char name[IDS_MBNAME_MAX + 1];		/* internal name */
	char oldname[IDS_MBNAME_MAX + 1];	/* see FF_DELETED, FF_RENAMED */
	char uniqueid[IDS_UNIQUEID_MAX + 1];
	enum folder_kind kind;
	unsigned flags;
	unsigned depth;		/* levels below the owner's root */
	int parent;		/* index of the parent folder, -1 for the root */
	uint32_t weight;	/* share of the owner's messages */
	uint32_t nmsgs;
	uint32_t uidvalidity;
	int64_t created;
	int64_t changed;	/* deleted or renamed at */
};

struct part_stats {
	uint64_t folders;
	uint64_t messages;	/* index records */
	uint64_t files;		/* message files on disk */
	uint64_t bytes;		/* bytes of those files */
};

struct stats {
	uint64_t users, deleted_users, shared_tops, domains;
	uint64_t folders, shared_folders, deleted_folders, renamed, tombstones;
	uint64_t messages, expunged, unlinked, links, attachments;
	uint64_t files, bytes, largest;
	uint64_t old_headers, ids_uuid, ids_24, ids_16;
	struct part_stats *part;	/* per partition, cfg order */
};

/* --- message.c --------------------------------------------------- */

#define MSG_MAXIOV 16

struct msggen;

/* What a folder asks of its next message. */
struct msgspec {
	const struct owner *owner;
	enum folder_kind kind;
	const char *list;	/* mailing list name of FK_LIST folders, or NULL */
	int64_t internaldate;
	int attachment;		/* 1: force one; 0: by chance */
};

/* A message: its bytes are the iovecs (valid until the next make). */
struct msg {
	struct iovec iov[MSG_MAXIOV];
	int niov;
	uint64_t size;
	uint32_t header_size;
	int64_t sentdate;	/* the Date header's day, 00:00 UTC */
	int attachment;
	uint8_t guid[IDS_GUID_LEN];
};

int msggen_new(uint64_t seed, struct msggen **mgp);
void msggen_free(struct msggen *mg);
/* Makes one message and its SHA-1.  Returns 0 or negative. */
int msggen_make(struct msggen *mg, struct rng *r, const struct msgspec *spec,
    struct msg *m);

/* --- plan.c ------------------------------------------------------ */

struct plan;

struct plan_opts {
	uint64_t seed;
	unsigned users;
	unsigned folders;
	uint64_t messages;
};

/* Splits the totals over owners.  Returns 0 or negative. */
int plan_new(const struct ids_config *cfg, const struct plan_opts *o,
    struct plan **pp);
void plan_free(struct plan *p);
unsigned plan_owners(const struct plan *p);
int64_t plan_now(const struct plan *p);

/*
 * Fills *o for owner i and its folders into *fp (a growing array owned
 * by the plan, valid until the next call), parents before children.
 * r is left seeded for that owner's messages.
 */
int plan_owner(struct plan *p, unsigned i, struct owner *o,
    struct folder **fp, size_t *np, struct rng *r);

/* --- folder.c ---------------------------------------------------- */

struct spool {
	const struct ids_config *cfg;
	struct ids_mboxlist *mbl;
	struct msggen *mg;
	int64_t now;
	int force;		/* overwrite files already there */
	struct stats st;
	struct ids_mbentry *batch;	/* mailboxes.db records not yet written */
	size_t nbatch, abatch;
	unsigned char *ibuf;	/* the cyrus.index image */
	size_t ibufsize;
	int forced;		/* FORCE_* cases already written */
	unsigned linkowner;	/* whose file linksrc is */
	char linksrc[4096];	/* the owner's last message file, for copies */
	struct msg linkmsg;	/* and its record fields (no iovecs) */
};

#define FORCE_EXPUNGED	0x1
#define FORCE_UNLINKED	0x2
#define FORCE_ATTACH	0x4
#define FORCE_LINK	0x8

/* Writes folder f of owner o and queues its records.  0 or negative. */
int folder_write(struct spool *sp, const struct owner *o, const struct folder *f,
    struct rng *r);
/* Writes the queued records to mailboxes.db in one transaction. */
int spool_flush(struct spool *sp);
/* mkdir -p of path (mode 0750); path is restored.  0 or -errno. */
int mkdir_p(char *path);

#endif
