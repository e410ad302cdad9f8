/*
 * config.c - reading imapd.conf (see config.h).
 *
 * The syntax follows Cyrus's own reader: leading white space is
 * skipped, a line whose first other character is '#' is a comment, a
 * key is [A-Za-z0-9_-]+ (folded to lower case) followed by ':', and
 * the value is the rest of the line with white space trimmed at both
 * ends.  An empty value, a line without a key, and a second setting of
 * a key idspool understands are errors, as they are for Cyrus.  Keys
 * idspool does not understand are kept in file order for
 * ids_config_get() and otherwise ignored.
 *
 * The file is first split into entries, then the known keys are
 * applied, then the whole is checked (configdirectory and a partition
 * present, defaultpartition and every metapartition naming a
 * partition).  Every failure is IDS_ECONFIG with "FILE:LINE: reason".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"

#define CONFIG_MAX_SIZE (16u << 20)	/* refuse absurd files */

static const char *const meta_files[IDS_META_NKINDS] = {
	"cyrus.header", "cyrus.index", "cyrus.cache", "cyrus.expunge",
	"cyrus.squat", "cyrus.annotations", "cyrus.dav", "cyrus.archivecache",
};

/* The words of metapartition_files, in enum order. */
static const char *const meta_words[IDS_META_NKINDS] = {
	"header", "index", "cache", "expunge",
	"squat", "annotations", "dav", "archivecache",
};

const char *
ids_metafile_name(enum ids_metafile kind)
{
	if ((int)kind < 0 || kind >= IDS_META_NKINDS)
		return NULL;
	return meta_files[kind];
}

int
ids_metafile_kind(const char *filename)
{
	int i;

	for (i = 0; i < IDS_META_NKINDS; i++)
		if (strcmp(filename, meta_files[i]) == 0)
			return i;
	return -1;
}

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int
is_keychar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int
ids_config_bool(const char *value, int *out)
{
	static const char *const on[] = { "1", "yes", "on", "true", "t" };
	static const char *const off[] = { "0", "no", "off", "false", "f" };
	size_t i;

	for (i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (strcasecmp(value, on[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(value, off[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return ids_error(IDS_EINVAL, "'%s' is not a switch value (yes/no, on/off, 1/0, true/false)",
	    value);
}

/* value as a message may show it: at most 40 bytes, controls as '?'. */
static const char *
shown_value(const char *value, char *buf, size_t size)
{
	size_t i;

	for (i = 0; value[i] != '\0' && i + 4 < size; i++)
		buf[i] = (unsigned char)value[i] < 0x20 || value[i] == 0x7f ? '?' : value[i];
	if (value[i] != '\0')
		memcpy(buf + i, "...", 3), i += 3;
	buf[i] = '\0';
	return buf;
}

static int
bad_number(const char *s, const char *kind, double min, double max)
{
	char shown[44];

	return ids_error(IDS_EINVAL, "'%s' is not %s from %.15g to %.15g",
	    shown_value(s, shown, sizeof(shown)), kind, min, max);
}

int
ids_parse_uint(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	unsigned long long v = 0;
	const char *p;
	char shown[44];

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (v > (ULLONG_MAX - (unsigned)(*p - '0')) / 10)
			break;		/* overflow: refused below */
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (p == s || *p != '\0' || v < min || v > max)
		return ids_error(IDS_EINVAL, "'%s' is not a whole number from %llu to %llu",
		    shown_value(s, shown, sizeof(shown)), min, max);
	*out = v;
	return 0;
}

int
ids_parse_real(const char *s, double min, double max, double *out)
{
	const char *p = s;
	double v;

	while (*p >= '0' && *p <= '9')
		p++;
	if (p == s)
		return bad_number(s, "a number", min, max);
	if (*p == '.' && p[1] >= '0' && p[1] <= '9')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	/* Only digits and one dot: strtod has nothing left to misread. */
	if (*p != '\0' || !isfinite(v = strtod(s, NULL)) || v < min || v > max)
		return bad_number(s, "a number", min, max);
	*out = v;
	return 0;
}

static const struct ids_config_entry *
find_entry(const struct ids_config *cfg, const char *key)
{
	size_t i;

	for (i = 0; i < cfg->nentries; i++)
		if (strcmp(cfg->entries[i].key, key) == 0)
			return &cfg->entries[i];
	return NULL;
}

/* Prefixes the detail of r with "FILE:LINE: KEY: ". */
static int
entry_error(const struct ids_config *cfg, const struct ids_config_entry *e, int r)
{
	return ids_error(IDS_ECONFIG, "%s:%u: %s: %s", cfg->file, e->line, e->key,
	    ids_errmsg(r));
}

int
ids_config_uint(const struct ids_config *cfg, const char *key,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	const struct ids_config_entry *e = find_entry(cfg, key);
	int r;

	if (e == NULL)
		return 0;
	if ((r = ids_parse_uint(e->value, min, max, out)) < 0)
		return entry_error(cfg, e, r);
	return 1;
}

int
ids_config_real(const struct ids_config *cfg, const char *key,
    double min, double max, double *out)
{
	const struct ids_config_entry *e = find_entry(cfg, key);
	int r;

	if (e == NULL)
		return 0;
	if ((r = ids_parse_real(e->value, min, max, out)) < 0)
		return entry_error(cfg, e, r);
	return 1;
}

static int
add_entry(struct ids_config *cfg, const char *key, const char *value,
    unsigned line)
{
	struct ids_config_entry *e;

	e = realloc(cfg->entries, (cfg->nentries + 1) * sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	cfg->entries = e;
	e += cfg->nentries;
	e->key = strdup(key);
	e->value = strdup(value);
	e->line = line;
	if (e->key == NULL || e->value == NULL) {
		free(e->key);
		free(e->value);
		return -ENOMEM;
	}
	cfg->nentries++;
	return 0;
}

/* Parses one NUL-terminated line (modified in place) into an entry. */
static int
parse_line(struct ids_config *cfg, char *p, unsigned line)
{
	char *key, *end;

	while (is_space((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	for (key = p; is_keychar((unsigned char)*p); p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (p == key || *p != ':')
		return ids_error(IDS_ECONFIG, "%s:%u: expected 'key: value'",
		    cfg->file, line);
	*p++ = '\0';
	while (is_space((unsigned char)*p))
		p++;
	end = p + strlen(p);
	while (end > p && is_space((unsigned char)end[-1]))
		*--end = '\0';
	if (*p == '\0')
		return ids_error(IDS_ECONFIG, "%s:%u: empty value for '%s'",
		    cfg->file, line, key);
	return add_entry(cfg, key, p, line);
}

/* Splits text into entries.  A NUL byte is refused: it would end a line early. */
static int
split_lines(struct ids_config *cfg, const char *text, size_t len)
{
	char *copy, *p, *nl;
	unsigned line = 1;
	int r = 0;

	if ((copy = malloc(len + 1)) == NULL)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	for (p = copy; r == 0 && p < copy + len; p = nl + 1, line++) {
		nl = memchr(p, '\n', (size_t)(copy + len - p));
		if (nl == NULL)
			nl = copy + len;
		*nl = '\0';
		if (strlen(p) != (size_t)(nl - p))
			r = ids_error(IDS_ECONFIG, "%s:%u: NUL byte in line",
			    cfg->file, line);
		else
			r = parse_line(cfg, p, line);
	}
	free(copy);
	return r;
}

/*
 * Checks that value is an absolute path without "." or ".." components
 * and copies it with repeated and trailing slashes removed.
 */
static int
set_path(const struct ids_config *cfg, const struct ids_config_entry *e,
    int allow_root, char **dst)
{
	const char *s = e->value, *c;
	char *out, *o;

	if (s[0] != '/')
		return ids_error(IDS_ECONFIG, "%s:%u: %s: '%s' is not an absolute path",
		    cfg->file, e->line, e->key, s);
	if ((o = out = malloc(strlen(s) + 1)) == NULL)
		return -ENOMEM;
	for (c = s; *c != '\0'; ) {
		size_t n;

		while (*c == '/')
			c++;
		n = strcspn(c, "/");
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
			free(out);
			return ids_error(IDS_ECONFIG, "%s:%u: %s: '%s' has a '.' or '..' component",
			    cfg->file, e->line, e->key, s);
		}
		if (n > 0) {
			*o++ = '/';
			memcpy(o, c, n);
			o += n;
		}
		c += n;
	}
	*o = '\0';
	if (o == out && !allow_root) {
		free(out);
		return ids_error(IDS_ECONFIG, "%s:%u: %s: the root directory cannot be a partition",
		    cfg->file, e->line, e->key);
	}
	if (o == out)
		strcpy(out, "/");
	free(*dst);
	*dst = out;
	return 0;
}

static int
set_string(const struct ids_config_entry *e, char **dst)
{
	char *s = strdup(e->value);

	if (s == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int
set_bool(const struct ids_config *cfg, const struct ids_config_entry *e,
    int *dst)
{
	if (ids_config_bool(e->value, dst) < 0)
		return ids_error(IDS_ECONFIG, "%s:%u: %s: '%s' is not a switch value",
		    cfg->file, e->line, e->key, e->value);
	return 0;
}

static int
set_virtdomains(struct ids_config *cfg, const struct ids_config_entry *e)
{
	int b;

	if (strcasecmp(e->value, "userid") == 0)
		cfg->virtdomains = IDS_VIRTDOMAINS_USERID;
	else if (ids_config_bool(e->value, &b) == 0)
		cfg->virtdomains = b ? IDS_VIRTDOMAINS_ON : IDS_VIRTDOMAINS_OFF;
	else
		return ids_error(IDS_ECONFIG, "%s:%u: virtdomains: '%s' is not off, userid or on",
		    cfg->file, e->line, e->value);
	return 0;
}

/* "header index cache ..."; "lock" is a Cyrus kind idspool has no file for. */
static int
set_metafiles(struct ids_config *cfg, const struct ids_config_entry *e)
{
	const char *p = e->value;
	unsigned bits = 0;
	size_t n;
	int i;

	for (; *p != '\0'; p += n) {
		while (is_space((unsigned char)*p))
			p++;
		if ((n = strcspn(p, " \t")) == 0)
			break;
		for (i = 0; i < IDS_META_NKINDS; i++)
			if (strlen(meta_words[i]) == n && strncmp(p, meta_words[i], n) == 0)
				break;
		if (i < IDS_META_NKINDS)
			bits |= 1u << i;
		else if (!(n == 4 && strncmp(p, "lock", 4) == 0))
			return ids_error(IDS_ECONFIG, "%s:%u: metapartition_files: unknown kind '%.*s'",
			    cfg->file, e->line, (int)n, p);
	}
	cfg->metapartition_files = bits;
	return 0;
}

static int
add_partition(struct ids_config *cfg, const struct ids_config_entry *e)
{
	struct ids_partition *p;
	const char *name = e->key + strlen("partition-");

	if (*name == '\0')
		return ids_error(IDS_ECONFIG, "%s:%u: partition without a name",
		    cfg->file, e->line);
	p = realloc(cfg->partitions, (cfg->npartitions + 1) * sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	cfg->partitions = p;
	p += cfg->npartitions;
	memset(p, 0, sizeof(*p));
	if ((p->name = strdup(name)) == NULL)
		return -ENOMEM;
	cfg->npartitions++;
	return set_path(cfg, e, 0, &p->path);
}

static int
set_metapartition(struct ids_config *cfg, const struct ids_config_entry *e)
{
	const char *name = e->key + strlen("metapartition-");
	size_t i;

	for (i = 0; i < cfg->npartitions; i++)
		if (strcmp(cfg->partitions[i].name, name) == 0)
			return set_path(cfg, e, 0, &cfg->partitions[i].metapath);
	return ids_error(IDS_ECONFIG, "%s:%u: %s: there is no partition-%s",
	    cfg->file, e->line, e->key, name);
}

/* A size in bytes with an optional K, M, G or T suffix, from 64K to 1T. */
static int
set_mapsize(struct ids_config *cfg, const struct ids_config_entry *e)
{
	static const char units[] = "KMGT";
	const char *u;
	char digits[32];
	size_t n = strlen(e->value);
	unsigned long long v;
	int r, shift = 0;

	if (n > 0 && n < sizeof(digits) &&
	    (u = strchr(units, e->value[n - 1] & ~0x20)) != NULL && *u != '\0') {
		shift = 10 * (int)(u - units + 1);
		n--;
	}
	if (n >= sizeof(digits))
		n = sizeof(digits) - 1;	/* too long for any size: refused below */
	memcpy(digits, e->value, n);
	digits[n] = '\0';
	if ((r = ids_parse_uint(digits, 0, (1ULL << 40) >> shift, &v)) < 0 ||
	    (v << shift) < 65536)
		return ids_error(IDS_ECONFIG, "%s:%u: %s: '%s' is not a size from 64K to 1T",
		    cfg->file, e->line, e->key, e->value);
	cfg->mboxlist_mapsize = v << shift;
	return 0;
}

static int
is_prefixed(const char *key, const char *prefix)
{
	return strncmp(key, prefix, strlen(prefix)) == 0;
}

/* Applies one entry if idspool knows its key; 1 if known, 0 if not, or < 0. */
static int
apply_scalar(struct ids_config *cfg, const struct ids_config_entry *e)
{
	const char *k = e->key;
	int r;

	if (strcmp(k, "configdirectory") == 0)
		r = set_path(cfg, e, 1, &cfg->configdirectory);
	else if (strcmp(k, "defaultpartition") == 0)
		r = set_string(e, &cfg->defaultpartition);
	else if (strcmp(k, "defaultdomain") == 0)
		r = set_string(e, &cfg->defaultdomain);
	else if (strcmp(k, "hashimapspool") == 0)
		r = set_bool(cfg, e, &cfg->hashimapspool);
	else if (strcmp(k, "fulldirhash") == 0)
		r = set_bool(cfg, e, &cfg->fulldirhash);
	else if (strcmp(k, "unixhierarchysep") == 0)
		r = set_bool(cfg, e, &cfg->unixhierarchysep);
	else if (strcmp(k, "virtdomains") == 0)
		r = set_virtdomains(cfg, e);
	else if (strcmp(k, "metapartition_files") == 0)
		r = set_metafiles(cfg, e);
	else if (strcmp(k, "mboxlist_mapsize") == 0)
		r = set_mapsize(cfg, e);
	else if (is_prefixed(k, "partition-"))
		r = add_partition(cfg, e);
	else
		return 0;
	return r < 0 ? r : 1;
}

/*
 * Switches that idspool reads where it needs them (ids_config_switch),
 * not into struct ids_config: their values are checked here, at load,
 * as Cyrus checks a switch.  A value that is no switch is an error, never
 * "off" (sync_log: maybe would leave rolling replication without its
 * journal, silently).
 */
static const char *const switch_keys[] = {
	"sync_log", "sync_log_chain", "sieveusehomedir",
};

/* Numbers read where they are needed (ids_config_uint), checked at load too. */
static const struct {
	const char *key;
	unsigned long long max;
} number_keys[] = {
	{ "mailbox_default_options", UINT32_MAX },
};

static int
is_known(const char *key)
{
	static const char *const known[] = {
		"configdirectory", "defaultpartition", "defaultdomain",
		"hashimapspool", "fulldirhash", "unixhierarchysep",
		"virtdomains", "metapartition_files", "mboxlist_mapsize",
		"cyrus_user", "cyrus_group", "delete_mode", "syslog_prefix",
	};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(key, known[i]) == 0)
			return 1;
	for (i = 0; i < sizeof(switch_keys) / sizeof(switch_keys[0]); i++)
		if (strcmp(key, switch_keys[i]) == 0)
			return 1;
	for (i = 0; i < sizeof(number_keys) / sizeof(number_keys[0]); i++)
		if (strcmp(key, number_keys[i].key) == 0)
			return 1;
	return is_prefixed(key, "partition-") || is_prefixed(key, "metapartition-") ||
	    is_prefixed(key, "relocated_");
}

/* A known key set twice is an error naming both lines. */
static int
check_duplicates(const struct ids_config *cfg)
{
	size_t i, j;

	for (i = 1; i < cfg->nentries; i++) {
		if (!is_known(cfg->entries[i].key))
			continue;
		for (j = 0; j < i; j++)
			if (strcmp(cfg->entries[i].key, cfg->entries[j].key) == 0)
				return ids_error(IDS_ECONFIG, "%s:%u: '%s' already set on line %u",
				    cfg->file, cfg->entries[i].line, cfg->entries[i].key,
				    cfg->entries[j].line);
	}
	return 0;
}

static int
check_values(const struct ids_config *cfg)
{
	const struct ids_config_entry *e;
	unsigned long long v;
	size_t i, k;
	int on, r;

	for (i = 0; i < cfg->nentries; i++) {
		e = &cfg->entries[i];
		for (k = 0; k < sizeof(switch_keys) / sizeof(switch_keys[0]); k++)
			if (strcmp(e->key, switch_keys[k]) == 0 && ids_config_bool(e->value, &on) < 0)
				return ids_error(IDS_ECONFIG, "%s:%u: %s: '%s' is not a switch value",
				    cfg->file, e->line, e->key, e->value);
		for (k = 0; k < sizeof(number_keys) / sizeof(number_keys[0]); k++)
			if (strcmp(e->key, number_keys[k].key) == 0 &&
			    (r = ids_parse_uint(e->value, 0, number_keys[k].max, &v)) < 0)
				return entry_error(cfg, e, r);
	}
	return 0;
}

/* Partitions first, then metapartitions, which must name one of them. */
static int
apply_entries(struct ids_config *cfg)
{
	size_t i;
	int r;

	if ((r = check_duplicates(cfg)) < 0 || (r = check_values(cfg)) < 0)
		return r;
	for (i = 0; i < cfg->nentries; i++)
		if ((r = apply_scalar(cfg, &cfg->entries[i])) < 0)
			return r;
	for (i = 0; i < cfg->nentries; i++)
		if (is_prefixed(cfg->entries[i].key, "metapartition-") &&
		    (r = set_metapartition(cfg, &cfg->entries[i])) < 0)
			return r;
	return 0;
}

static int
check_config(struct ids_config *cfg)
{
	if (cfg->configdirectory == NULL)
		return ids_error(IDS_ECONFIG, "%s: configdirectory is not set", cfg->file);
	if (cfg->npartitions == 0)
		return ids_error(IDS_ECONFIG, "%s: no partition-<name> is set", cfg->file);
	if (cfg->defaultpartition == NULL &&
	    (cfg->defaultpartition = strdup("default")) == NULL)
		return -ENOMEM;
	if (ids_config_partition(cfg, NULL) == NULL)
		return ids_error(IDS_ECONFIG, "%s: defaultpartition '%s' names no partition",
		    cfg->file, cfg->defaultpartition);
	return 0;
}

int
ids_config_parse(struct ids_config *cfg, const char *text, size_t len,
    const char *file)
{
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->unixhierarchysep = 1;
	cfg->virtdomains = IDS_VIRTDOMAINS_OFF;
	if ((cfg->file = strdup(file)) == NULL)
		return -ENOMEM;
	if ((r = split_lines(cfg, text, len)) < 0 ||
	    (r = apply_entries(cfg)) < 0 ||
	    (r = check_config(cfg)) < 0) {
		ids_config_release(cfg);
		return r;
	}
	return 0;
}

/* Reads the whole of file into a malloc'd buffer. */
static int
read_all(const char *file, char **bufp, size_t *lenp)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd, r = 0;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		return ids_error(ids_errno(), "%s: %s", file, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_SIZE) {
		r = ids_error(IDS_ECONFIG, "%s: not a regular file of sane size", file);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ids_error(ids_errno(), "%s: %s", file, strerror(errno));
			free(buf);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*bufp = buf;
	*lenp = len;
out:
	close(fd);
	return r;
}

int
ids_config_load(struct ids_config *cfg, const char *file)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if ((r = read_all(file, &text, &len)) < 0)
		return r;
	r = ids_config_parse(cfg, text, len, file);
	free(text);
	return r;
}

void
ids_config_release(struct ids_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->npartitions; i++) {
		free(cfg->partitions[i].name);
		free(cfg->partitions[i].path);
		free(cfg->partitions[i].metapath);
	}
	for (i = 0; i < cfg->nentries; i++) {
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
	}
	free(cfg->partitions);
	free(cfg->entries);
	free(cfg->file);
	free(cfg->configdirectory);
	free(cfg->defaultpartition);
	free(cfg->defaultdomain);
	memset(cfg, 0, sizeof(*cfg));
}

const struct ids_partition *
ids_config_partition(const struct ids_config *cfg, const char *name)
{
	size_t i;

	if (name == NULL)
		name = cfg->defaultpartition;
	if (name == NULL)
		return NULL;
	for (i = 0; i < cfg->npartitions; i++)
		if (strcmp(cfg->partitions[i].name, name) == 0)
			return &cfg->partitions[i];
	return NULL;
}

const char *
ids_config_get(const struct ids_config *cfg, const char *key)
{
	size_t i;

	for (i = 0; i < cfg->nentries; i++)
		if (strcmp(cfg->entries[i].key, key) == 0)
			return cfg->entries[i].value;
	return NULL;
}

int
ids_config_switch(const struct ids_config *cfg, const char *key)
{
	const char *v = ids_config_get(cfg, key);
	int on = 0;

	return v != NULL && ids_config_bool(v, &on) == 0 && on;
}
