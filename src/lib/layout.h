/*
 * layout.h - where a folder lives: the path resolver for both spool
 * layouts, and its reverse (spool-layout.md, "Layouts").
 *
 *   legacy    Cyrus's name-based paths (mboxname_hash):
 *             <root>[/domain/[H/]<domain>][/H]/user/<local>/<box>/...
 *             with '.' inside a level written '^'; a child folder lies
 *             inside its parent's directory.
 *   uniqueid  <root>[/H]/user/<localpart[@domain]>/<uniqueid>
 *             <root>[/H]/<top[@domain]>/<uniqueid>
 *             flat: every folder of an owner is a sibling of the others.
 *
 * H is dir_hash (ids_dir_hash) when hashimapspool is on.  <root> is the
 * folder's partition, or its metapartition for the meta files listed in
 * metapartition_files; the path below the root is the same for both.
 *
 * Callers describe a folder with a struct ids_location and never look
 * at the layout themselves.  Every component written is checked (never
 * empty, ".", "..", or holding '/' or a control byte), so no input can
 * produce a path outside the root: such input is IDS_EBADNAME (names) or
 * IDS_EBADID (unique ids).  Functions that write a path return its
 * length, IDS_ETOOLONG when it does not fit in size bytes, IDS_EPARTITION
 * for an unknown partition.  Nothing here allocates or touches the disk.
 */
#ifndef IDS_LAYOUT_H
#define IDS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mboxname.h"

struct ids_mbentry;

enum ids_layout {
	IDS_LAYOUT_LEGACY,
	IDS_LAYOUT_UNIQUEID,
};
#define IDS_LAYOUT_COUNT 2

/* "legacy" or "uniqueid"; NULL for an invalid value. */
const char *ids_layout_name(enum ids_layout layout);
/* The inverse; IDS_EINVAL (with detail) for anything else. */
int ids_layout_parse(const char *s, enum ids_layout *out);

/* A folder, as the resolver needs it.  The strings are borrowed. */
struct ids_location {
	const struct ids_mbname *name;
	const char *uniqueid;	/* needed by the uniqueid layout only */
	const char *partition;	/* NULL = the default partition */
	enum ids_layout layout;
};

/*
 * Fills *loc (and *mb, which loc->name then points to) from a
 * mailboxes.db entry: its internal name, uniqueid, partition, and the
 * layout its mbtype says ('l' flag: legacy).  loc borrows e's strings.
 * IDS_ENOTFOUND for a tombstone (it has no folder), IDS_EBADNAME.
 */
int ids_location_from_entry(const struct ids_mbentry *e, struct ids_mbname *mb,
    struct ids_location *loc);

/* Cyrus's dir_hash_c: the one-character hash directory for name. */
char ids_dir_hash(const char *name, int fulldirhash);

/* The folder's directory relative to the (meta)partition root. */
int ids_path_reldir(const struct ids_config *cfg, const struct ids_location *loc,
    char *buf, size_t size);
/* The absolute data directory: the partition root + reldir. */
int ids_path_datadir(const struct ids_config *cfg, const struct ids_location *loc,
    char *buf, size_t size);
/*
 * The absolute directory holding meta files of kind: under the
 * metapartition root when one is configured for the partition and kind
 * is in metapartition_files, else the data directory.  IDS_EINVAL for a
 * bad kind.
 */
int ids_path_metadir(const struct ids_config *cfg, const struct ids_location *loc,
    enum ids_metafile kind, char *buf, size_t size);
/* The meta file itself: metadir + "/cyrus.<kind>". */
int ids_path_metafile(const struct ids_config *cfg, const struct ids_location *loc,
    enum ids_metafile kind, char *buf, size_t size);
/* A message file: datadir + "/<uid>." (uid 0 is IDS_EINVAL). */
int ids_path_message(const struct ids_config *cfg, const struct ids_location *loc,
    uint32_t uid, char *buf, size_t size);

/* What ids_path_reverse() found a path to name. */
enum ids_pathkind {
	IDS_PATH_SLOT,		/* a directory above the folders: the root, a
				   hash directory, domain/..., user/ */
	IDS_PATH_FOLDER,	/* a folder's directory */
	IDS_PATH_MESSAGE,	/* a message file "<uid>." in a folder */
	IDS_PATH_META,		/* a meta file "cyrus.*" in a folder */
	IDS_PATH_OTHER,		/* any other file name in a folder */
};

struct ids_pathinfo {
	const struct ids_partition *partition;
	int metaroot;		/* the path lies under the metapartition root */
	enum ids_layout layout;
	enum ids_pathkind kind;
	/* legacy layout (kind != SLOT): the mailbox */
	struct ids_mbname name;
	/* uniqueid layout: the owner directory and the folder's id */
	int is_user;		/* the owner is a user (else a shared top level) */
	char owner[IDS_MBNAME_MAX + 1];	/* "john.doe@example.com", "news" */
	char uniqueid[IDS_UNIQUEID_MAX + 1];
	/* MESSAGE, META, OTHER */
	char file[256];		/* the file's name */
	uint32_t uid;		/* MESSAGE */
	enum ids_metafile metakind;	/* META */
};

/*
 * Which folder (or which slot above the folders) an absolute path lies
 * in.  The path is read lexically (nothing is opened) and must be
 * normalised: no "." or ".." components (IDS_EINVAL).  The root is the
 * longest partition or metapartition root it lies under
 * (IDS_EPARTITION if none).
 *
 * The uniqueid reading is tried first: it applies when a valid unique
 * id sits where the layout puts one, nothing but one file name follows
 * it, and the hash directory and owner are exactly what the forward
 * resolver would write.  Otherwise the legacy reading applies, again
 * only if resolving the mailbox found gives back the same directory
 * (hash letters included).  A legacy folder whose name has the exact
 * shape of a unique id therefore reads as a uniqueid folder: callers
 * holding mailboxes.db check the id there and fall back to
 * ids_path_reverse_layout(..., IDS_LAYOUT_LEGACY, ...).
 * IDS_ENOTFOUND (with detail) when neither reading fits.
 */
int ids_path_reverse(const struct ids_config *cfg, const char *path,
    struct ids_pathinfo *out);
/* The same, reading the path in the given layout only. */
int ids_path_reverse_layout(const struct ids_config *cfg, const char *path,
    enum ids_layout layout, struct ids_pathinfo *out);

#endif
