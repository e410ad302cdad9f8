/*
 * config.h - the imapd.conf keys idspool reads.
 *
 * The file has Cyrus's syntax: "key: value" lines, '#' comments, blank
 * lines.  Unknown keys are kept (ids_config_get) but otherwise ignored:
 * real imapd.conf files carry hundreds.  Malformed lines, relative
 * paths, and missing required keys (configdirectory, at least one
 * partition-<name>) are IDS_ECONFIG with "FILE:LINE: reason" (or
 * "FILE: reason") as the detail (ids_errmsg).
 *
 *	struct ids_config cfg;
 *	if ((r = ids_config_load(&cfg, "/etc/imapd.conf")) < 0)
 *		... ids_errmsg(r) ...
 *	...
 *	ids_config_release(&cfg);
 */
#ifndef IDS_CONFIG_H
#define IDS_CONFIG_H

#include <stddef.h>

/* The per-folder meta files, as named by metapartition_files. */
enum ids_metafile {
	IDS_META_HEADER,	/* cyrus.header */
	IDS_META_INDEX,		/* cyrus.index */
	IDS_META_CACHE,		/* cyrus.cache */
	IDS_META_EXPUNGE,	/* cyrus.expunge */
	IDS_META_SQUAT,		/* cyrus.squat */
	IDS_META_ANNOTATIONS,	/* cyrus.annotations */
	IDS_META_DAV,		/* cyrus.dav */
	IDS_META_ARCHIVECACHE,	/* cyrus.archivecache */
	IDS_META_NKINDS
};

/* "cyrus.header" etc. for a kind; NULL for an invalid kind. */
const char *ids_metafile_name(enum ids_metafile kind);
/* The kind of a file name ("cyrus.index"), or -1 if it is not a meta file. */
int ids_metafile_kind(const char *filename);

struct ids_partition {
	char *name;		/* "default" for partition-default */
	char *path;		/* absolute, no trailing slash */
	char *metapath;		/* metapartition-<name>, or NULL */
};

enum ids_virtdomains {
	IDS_VIRTDOMAINS_OFF,
	IDS_VIRTDOMAINS_USERID,
	IDS_VIRTDOMAINS_ON,
};

struct ids_config_entry {
	char *key;
	char *value;
	unsigned line;
};

struct ids_config {
	char *file;			/* the file read */
	char *configdirectory;		/* required, absolute */
	struct ids_partition *partitions;	/* in file order */
	size_t npartitions;		/* at least 1 */
	char *defaultpartition;		/* default "default"; must name a partition */
	unsigned metapartition_files;	/* bit (1u << kind) per meta kind on the metapartition */
	int hashimapspool;		/* default 0 */
	int fulldirhash;		/* default 0 */
	int unixhierarchysep;		/* default 1 */
	enum ids_virtdomains virtdomains;	/* default off */
	char *defaultdomain;		/* or NULL */
	unsigned long long mboxlist_mapsize;	/* bytes; 0: not set */
	struct ids_config_entry *entries;	/* every key in the file */
	size_t nentries;
};

/*
 * Reads and checks file.  On failure nothing needs releasing; a file
 * that cannot be read is -errno (detail "FILE: reason"), a bad one
 * IDS_ECONFIG.  Known keys set twice, bad switch values, relative or
 * "."/".." paths, a metapartition or defaultpartition naming no
 * partition, and an unknown metapartition_files kind are errors.
 */
int ids_config_load(struct ids_config *cfg, const char *file);

/* As ids_config_load, from text already in memory (file names errors). */
int ids_config_parse(struct ids_config *cfg, const char *text, size_t len,
    const char *file);

void ids_config_release(struct ids_config *cfg);

/* The partition called name (NULL: the default partition), or NULL. */
const struct ids_partition *ids_config_partition(const struct ids_config *cfg,
    const char *name);

/* The raw value of key, or NULL when the file does not set it. */
const char *ids_config_get(const struct ids_config *cfg, const char *key);

/* Parses a Cyrus switch value (1/0, yes/no, on/off, true/false, t/f). */
int ids_config_bool(const char *value, int *out);

/*
 * 1 when key is set to an "on" switch value, 0 when it is off or not set.
 * The switches idspool reads this way (sync_log, sync_log_chain,
 * sieveusehomedir) are checked when the file is loaded: a value that is
 * no switch fails the load.
 */
int ids_config_switch(const struct ids_config *cfg, const char *key);

/*
 * The one checked number parser, for options and configuration values.
 * A whole number is decimal digits only: no sign, spaces, base prefix
 * or exponent; a value that overflows, or lies outside [min, max], is
 * refused, never clamped.  ids_parse_real also takes one '.' followed by
 * digits.  Failure is IDS_EINVAL with the detail
 * "'VALUE' is not a whole number from MIN to MAX" (or "a number").
 */
int ids_parse_uint(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out);
int ids_parse_real(const char *s, double min, double max, double *out);

/*
 * A number set by key in cfg: 1 and *out when set and in range, 0 when
 * the file does not set key, IDS_EINVAL with "FILE:LINE: KEY: 'VALUE'
 * is not ..." otherwise.
 */
int ids_config_uint(const struct ids_config *cfg, const char *key,
    unsigned long long min, unsigned long long max, unsigned long long *out);
int ids_config_real(const struct ids_config *cfg, const char *key,
    double min, double max, double *out);

#endif
