/*
 * mboxname.c - Cyrus mailbox names in their three spellings (see
 * mboxname.h and spool-layout.md, "Mailbox names").
 *
 * Every parser works in two steps.  First the spelling is split into
 * decoded levels (a real '.' inside a level, never '^'), copied into the
 * struct's own storage; then classify() recognises the DELETED prefix
 * and hex time, the user prefix and the localpart, and checks every rule
 * once for all spellings.  A parsed name therefore always formats back
 * into all three spellings, and the three have the same length.
 *
 * Rejected because a path or a round trip would break: empty levels,
 * '/', '^' or '!' inside a level (they cannot be spelled in every
 * form), NUL, control and 8-bit bytes, "." and ".." levels, a leading
 * '.' on the parts that name directories (domain, localpart, shared top
 * level), a shared top level "user", "DELETED" or "INBOX", and DELETED
 * names without a canonical hex time.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uuid/uuid.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "mboxname.h"

#define DB_DOMAINSEP	'\x1d'	/* between domain and name in a dbname */
#define DB_HIERSEP	'\x1f'	/* between levels in a dbname */
#define DELETED_PREFIX	"DELETED"
#define ALL_LEVELS	IDS_MBNAME_ALL_LEVELS	/* DELETED user local ... hex */

/* How a spelling writes levels: its separator and its escape for '.'. */
struct spelling {
	char sep;
	char dot;	/* the byte standing for '.', or 0: '.' is literal */
};

static const struct spelling sp_internal = { '.', '^' };
static const struct spelling sp_uhs = { '/', 0 };
static const struct spelling sp_dotsep = { '.', '^' };
static const struct spelling sp_db = { DB_HIERSEP, 0 };

/*
 * Copies n bytes into mb's storage, the escape byte dot (if not 0)
 * becoming '.'; NULL when the storage is full.
 */
static const char *
store_add(struct ids_mbname *mb, size_t *used, const char *s, size_t n,
    char dot)
{
	char *d = mb->store + *used, *p;

	if (n + 1 > sizeof(mb->store) - *used)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	for (p = dot ? memchr(d, dot, n) : NULL; p != NULL;
	    p = memchr(p + 1, dot, (size_t)(d + n - p - 1)))
		*p = '.';
	*used += n + 1;
	return d;
}

/*
 * Splits s[0..len) at sp->sep into decoded levels stored in mb: the
 * spelling's escape byte becomes '.'.  check_level() later refuses the
 * bytes that some spelling could not carry.
 */
static int
split_levels(struct ids_mbname *mb, size_t *used, const char *s, size_t len,
    const struct spelling *sp, const char **lv, size_t *np)
{
	const char *end = s + len, *e;
	size_t n = 0;

	for (;;) {
		if ((e = memchr(s, sp->sep, (size_t)(end - s))) == NULL)
			e = end;
		if (n == ALL_LEVELS)
			return ids_error(IDS_ETOOLONG, "more than %d levels",
			    IDS_MBNAME_LEVELS);
		if ((lv[n++] = store_add(mb, used, s, (size_t)(e - s), sp->dot)) == NULL)
			return ids_error(IDS_ETOOLONG, "name longer than %d bytes",
			    IDS_MBNAME_MAX);
		if (e == end)
			break;
		s = e + 1;
	}
	*np = n;
	return 0;
}

/*
 * RFC 3501 5.1.3 modified UTF-7: "&-" is '&'; otherwise '&' opens
 * modified base64 (A-Za-z0-9+,) closed by '-', encoding UTF-16 units
 * that are not US-ASCII, surrogates paired, padding bits zero, and two
 * encoded runs never adjacent.
 */
static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	return c == ',' ? 63 : -1;
}

/* Checks one encoded run starting after '&'; *sp is left after the '-'. */
static int
utf7_run(const char **sp)
{
	const char *s = *sp;
	uint32_t bits = 0, u;
	int nbits = 0, units = 0, high = 0, v;

	for (; *s != '-'; s++) {
		if ((v = b64val((unsigned char)*s)) < 0)
			return *s ? -1 : -2;
		bits = (bits << 6 | (uint32_t)v) & 0xffffff;
		if ((nbits += 6) < 16)
			continue;
		nbits -= 16;
		u = (bits >> nbits) & 0xffff;
		units++;
		if (u < 0x80 || (high && (u < 0xdc00 || u > 0xdfff)) ||
		    (!high && u >= 0xdc00 && u <= 0xdfff))
			return -3;
		high = u >= 0xd800 && u <= 0xdbff;
	}
	*sp = s + 1;
	if (units == 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)) || high)
		return -3;
	return 0;
}

static int
check_utf7(const char *s, size_t level)
{
	static const char *const why[] = { "", "bad base64 character",
	    "unterminated '&' sequence", "invalid encoded character" };
	int adjacent = 0, r;

	while (*s != '\0') {
		if (*s++ != '&') {
			adjacent = 0;
			continue;
		}
		if (*s == '-') {
			s++;
			adjacent = 0;
			continue;
		}
		if (adjacent)
			return ids_error(IDS_EBADNAME, "modified UTF-7 in level %zu: "
			    "adjacent encoded sequences", level);
		if ((r = utf7_run(&s)) < 0)
			return ids_error(IDS_EBADNAME, "modified UTF-7 in level %zu: %s",
			    level, why[-r]);
		adjacent = 1;
	}
	return 0;
}

/* Cyrus's creation policy: printable bytes outside these are refused. */
static int
check_policy_chars(const char *s, size_t level)
{
	for (; *s != '\0'; s++)
		if (strchr("!\"%;<>\\`{|}", *s) != NULL)
			return ids_error(IDS_EBADNAME, "'%c' in level %zu is not allowed "
			    "in new names", *s, level);
	return 0;
}

/* Level bytes: 1 control, 2 8-bit, 3 refused ('/', '^', '!'). */
static const unsigned char level_class[256] = {
	[0x01] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['/'] = 3, ['^'] = 3, ['!'] = 3, [0x7f] = 1,
	[0x80] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* The first refused byte of s, reported. */
static int
bad_level_byte(const char *s, size_t level)
{
	const unsigned char *p = (const unsigned char *)s;

	while (level_class[*p] == 0)
		p++;
	if (level_class[*p] == 1)
		return ids_error(IDS_EBADNAME, "control byte 0x%02x in level %zu",
		    *p, level);
	if (level_class[*p] == 2)
		return ids_error(IDS_EBADNAME, "8-bit byte 0x%02x in level %zu "
		    "(names are modified UTF-7)", *p, level);
	return ids_error(IDS_EBADNAME, "'%c' inside level %zu", *p, level);
}

/* The rules every decoded level obeys (mboxname.h). */
static int
check_level(const char *s, size_t level, int flags)
{
	const unsigned char *p;
	unsigned char acc = 0;

	if (*s == '\0')
		return ids_error(IDS_EBADNAME, "empty level %zu", level);
	if (s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0')))
		return ids_error(IDS_EBADNAME, "level %zu is '%s'", level, s);
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		acc |= level_class[*p];
	if (acc != 0)
		return bad_level_byte(s, level);
	if (flags & IDS_MBNAME_STRICT)
		return check_policy_chars(s, level) < 0 ? IDS_EBADNAME :
		    check_utf7(s, level);
	return 0;
}

/* Domains are host names: [A-Za-z0-9_-] labels separated by single dots. */
static int
check_domain(const char *d, size_t len)
{
	size_t i;

	if (len == 0)
		return ids_error(IDS_EBADNAME, "empty domain");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.' && (i == 0 || i == len - 1 || d[i - 1] == '.'))
			return ids_error(IDS_EBADNAME, "empty label in domain");
		if (c == '/' && i + 1 < len)
			return ids_error(IDS_EBADNAME, "'/' in domain: the @domain "
			    "goes at the end of the name");
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return ids_error(IDS_EBADNAME, "byte 0x%02x in domain", c);
	}
	return 0;
}

/* Cyrus writes the deletion time with "%X": no leading zero, never 0. */
static int
check_hextime(const char *s)
{
	size_t n = strspn(s, "0123456789ABCDEF");

	if (n == 0 || n > 8 || s[n] != '\0' || s[0] == '0')
		return ids_error(IDS_EBADNAME, "DELETED name does not end in a hex time");
	return 0;
}

static int
check_owner_level(const char *s, const char *what)
{
	if (s[0] == '.')
		return ids_error(IDS_EBADNAME, "%s '%s' starts with '.'", what, s);
	return 0;
}

/* Splits off the DELETED prefix and hex time (count them in *n). */
static int
classify_deleted(struct ids_mbname *mb, const char ***lvp, size_t *n)
{
	const char **lv = *lvp;
	int r;

	if (strcmp(lv[0], DELETED_PREFIX) != 0)
		return 0;
	if (*n < 3)
		return ids_error(IDS_EBADNAME, "the top level DELETED is reserved "
		    "for deleted mailboxes");
	if ((r = check_hextime(lv[*n - 1])) < 0)
		return r;
	mb->deleted = lv[*n - 1];
	*lvp = lv + 1;
	*n -= 2;
	return 0;
}

/* Recognises the user prefix; shared top levels may not look like one. */
static int
classify_owner(struct ids_mbname *mb, const char **lv, size_t n)
{
	size_t skip = 0;

	if (strcmp(lv[0], "user") == 0 && n >= 2) {
		mb->localpart = lv[1];
		skip = 2;
	} else if (strcmp(lv[0], "user") == 0) {
		return ids_error(IDS_EBADNAME, "'user' needs a user name");
	} else if (strcmp(lv[0], DELETED_PREFIX) == 0) {
		return ids_error(IDS_EBADNAME, "the top level DELETED is reserved "
		    "for deleted mailboxes");
	} else if (strcasecmp(lv[0], "INBOX") == 0) {
		return ids_error(IDS_EBADNAME, "INBOX is not a shared folder: "
		    "write user/NAME");
	}
	if (n - skip > IDS_MBNAME_LEVELS)
		return ids_error(IDS_ETOOLONG, "more than %d levels", IDS_MBNAME_LEVELS);
	mb->nboxes = n - skip;
	memcpy(mb->boxes, lv + skip, mb->nboxes * sizeof(lv[0]));
	return check_owner_level(lv[skip == 2 ? 1 : 0],
	    skip == 2 ? "user name" : "top level");
}

/* Cyrus refuses these when a mailbox is created (mboxname_policycheck). */
static int
check_strict(const struct ids_mbname *mb, size_t len)
{
	const char *first = mb->localpart ? "user" : mb->boxes[0];

	if (len > IDS_MBNAME_CREATE_MAX)
		return ids_error(IDS_ETOOLONG, "name longer than %d bytes",
		    IDS_MBNAME_CREATE_MAX);
	if (first[0] == '~' || (first[0] == '$' && mb->domain == NULL))
		return ids_error(IDS_EBADNAME, "names may not start with '%c'", first[0]);
	if (mb->localpart && (strcmp(mb->localpart, "anyone") == 0 ||
	    strcmp(mb->localpart, "anonymous") == 0))
		return ids_error(IDS_EBADNAME, "'%s' is not a user", mb->localpart);
	return 0;
}

/* The internal spelling's length: the same in every spelling. */
static size_t
internal_len(const struct ids_mbname *mb, const char **lv, size_t n)
{
	size_t len = mb->domain ? strlen(mb->domain) + 1 : 0, i;

	for (i = 0; i < n; i++)
		len += strlen(lv[i]) + 1;
	return len - 1;
}

static int
classify(struct ids_mbname *mb, const char **lv, size_t n, int flags)
{
	const char **rest = lv;
	size_t i, nrest = n, len;
	int r;

	for (i = 0; i < n; i++)
		if ((r = check_level(lv[i], i + 1, 0)) < 0)
			return r;
	if ((r = classify_deleted(mb, &rest, &nrest)) < 0 ||
	    (r = classify_owner(mb, rest, nrest)) < 0)
		return r;
	if ((len = internal_len(mb, lv, n)) > IDS_MBNAME_MAX)
		return ids_error(IDS_ETOOLONG, "name longer than %d bytes",
		    IDS_MBNAME_MAX);
	if (!(flags & IDS_MBNAME_STRICT) || mb->deleted != NULL)
		return 0;	/* as Cyrus: a deleted name was valid once */
	for (i = 0; i < n; i++)
		if ((r = check_level(lv[i], i + 1, flags)) < 0)
			return r;
	return check_strict(mb, len);
}

static void
mbname_reset(struct ids_mbname *mb)
{
	mb->domain = mb->localpart = mb->deleted = NULL;
	mb->nboxes = 0;
}

/* One spelling, cut into its domain and its levels. */
struct input {
	const char *dom;	/* the domain, or NULL */
	size_t domlen;
	const char *s;		/* the levels */
	size_t len;
	const struct spelling *sp;
	const char *defdomain;	/* a domain dropped as the default one */
};

/* The common tail of the parsers: the domain, then levels. */
static int
parse_common(struct ids_mbname *mb, const struct input *in, int flags)
{
	const char *lv[ALL_LEVELS];
	size_t used = 0, n = 0;
	int r;

	mbname_reset(mb);
	if (in->dom != NULL && (r = check_domain(in->dom, in->domlen)) < 0)
		return r;
	if (in->dom != NULL && !(in->defdomain != NULL &&
	    strlen(in->defdomain) == in->domlen &&
	    memcmp(in->dom, in->defdomain, in->domlen) == 0) &&
	    (mb->domain = store_add(mb, &used, in->dom, in->domlen, 0)) == NULL)
		return ids_error(IDS_ETOOLONG, "domain too long");
	if (in->len == 0)
		return ids_error(IDS_EBADNAME, "empty name");
	if ((r = split_levels(mb, &used, in->s, in->len, in->sp, lv, &n)) < 0)
		return r;
	return classify(mb, lv, n, flags);
}

static int
parse_failed(struct ids_mbname *mb, int r)
{
	mbname_reset(mb);
	return r;
}

/* Cuts name[0..len) at sep (first or last occurrence) into an input. */
static void
cut_domain(struct input *in, const char *name, size_t len, const char *sep,
    int domain_first)
{
	memset(in, 0, sizeof(*in));
	in->s = name;
	in->len = len;
	if (sep == NULL)
		return;
	if (domain_first) {
		in->dom = name;
		in->domlen = (size_t)(sep - name);
		in->s = sep + 1;
		in->len = len - in->domlen - 1;
	} else {
		in->len = (size_t)(sep - name);
		in->dom = sep + 1;
		in->domlen = len - in->len - 1;
	}
}

int
ids_mbname_parse_internal(struct ids_mbname *mb, const char *name, int flags)
{
	struct input in;
	size_t len = strnlen(name, sizeof(mb->store));
	int r;

	if (len >= sizeof(mb->store))
		return parse_failed(mb, ids_error(IDS_ETOOLONG,
		    "name longer than %d bytes", IDS_MBNAME_MAX));
	cut_domain(&in, name, len, memchr(name, '!', len), 1);
	in.sp = &sp_internal;
	r = parse_common(mb, &in, flags);
	return r < 0 ? parse_failed(mb, r) : 0;
}

int
ids_mbname_parse_external(struct ids_mbname *mb, const char *name,
    const struct ids_config *cfg, int flags)
{
	struct input in;
	size_t len = strnlen(name, sizeof(mb->store));
	int vd = cfg == NULL || cfg->virtdomains != IDS_VIRTDOMAINS_OFF, r;

	if (len >= sizeof(mb->store))
		return parse_failed(mb, ids_error(IDS_ETOOLONG,
		    "name longer than %d bytes", IDS_MBNAME_MAX));
	cut_domain(&in, name, len, vd ? memrchr(name, '@', len) : NULL, 0);
	in.sp = (cfg == NULL || cfg->unixhierarchysep) ? &sp_uhs : &sp_dotsep;
	in.defdomain = cfg ? cfg->defaultdomain : NULL;
	r = parse_common(mb, &in, flags);
	return r < 0 ? parse_failed(mb, r) : 0;
}

int
ids_mbname_parse_dbname(struct ids_mbname *mb, const char *key, size_t len,
    int flags)
{
	struct input in;
	int r;

	if (len >= sizeof(mb->store))
		return parse_failed(mb, ids_error(IDS_ETOOLONG,
		    "name longer than %d bytes", IDS_MBNAME_MAX));
	if (memchr(key, '\0', len) != NULL)
		return parse_failed(mb, ids_error(IDS_EBADNAME, "NUL byte in dbname"));
	cut_domain(&in, key, len, memchr(key, DB_DOMAINSEP, len), 1);
	in.sp = &sp_db;
	r = parse_common(mb, &in, flags);
	return r < 0 ? parse_failed(mb, r) : 0;
}

void
ids_mbname_normalize(struct ids_mbname *mb, const struct ids_config *cfg)
{
	if (cfg != NULL && cfg->defaultdomain != NULL && mb->domain != NULL &&
	    strcmp(mb->domain, cfg->defaultdomain) == 0)
		mb->domain = NULL;
}

size_t
ids_mbname_levels(const struct ids_mbname *mb, const char *lv[IDS_MBNAME_ALL_LEVELS])
{
	size_t n = 0, i;

	if (mb->deleted)
		lv[n++] = DELETED_PREFIX;
	if (mb->localpart) {
		lv[n++] = "user";
		lv[n++] = mb->localpart;
	}
	for (i = 0; i < mb->nboxes && i < IDS_MBNAME_LEVELS; i++)
		lv[n++] = mb->boxes[i];
	if (mb->deleted)
		lv[n++] = mb->deleted;
	return n;
}

struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void
out_add(struct out *o, const char *s, size_t n, char dot)
{
	size_t i;

	for (i = 0; i < n; i++, o->len++)
		if (o->len + 1 < o->size)
			o->buf[o->len] = (dot && s[i] == '.') ? dot : s[i];
}

static int
out_end(struct out *o)
{
	if (o->size == 0)
		return ids_error(IDS_ETOOLONG, "no room for the name");
	if (o->len + 1 > o->size || o->len > INT32_MAX) {
		o->buf[0] = '\0';
		return ids_error(IDS_ETOOLONG, "name needs %zu bytes", o->len + 1);
	}
	o->buf[o->len] = '\0';
	return (int)o->len;
}

static void
out_levels(struct out *o, const struct ids_mbname *mb, const struct spelling *sp)
{
	const char *lv[ALL_LEVELS];
	size_t n = ids_mbname_levels(mb, lv), i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			out_add(o, &sp->sep, 1, 0);
		out_add(o, lv[i], strlen(lv[i]), sp->dot);
	}
}

int
ids_mbname_internal(const struct ids_mbname *mb, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };

	if (mb->domain) {
		out_add(&o, mb->domain, strlen(mb->domain), 0);
		out_add(&o, "!", 1, 0);
	}
	out_levels(&o, mb, &sp_internal);
	return out_end(&o);
}

/* With virtdomains, an '@' in a level would be read back as the domain. */
static int
has_at(const struct ids_mbname *mb)
{
	const char *lv[ALL_LEVELS];
	size_t n = ids_mbname_levels(mb, lv), i;

	for (i = 0; i < n; i++)
		if (strchr(lv[i], '@') != NULL)
			return 1;
	return 0;
}

int
ids_mbname_external(const struct ids_mbname *mb, const struct ids_config *cfg,
    char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	int vd = cfg == NULL || cfg->virtdomains != IDS_VIRTDOMAINS_OFF;
	const char *dom = mb->domain;

	if (dom != NULL && !vd)
		return ids_error(IDS_EBADNAME, "the name has a domain but virtdomains is off");
	if (dom == NULL && vd && has_at(mb)) {
		if (cfg == NULL || cfg->defaultdomain == NULL)
			return ids_error(IDS_EBADNAME, "'@' in the name reads as a "
			    "domain: use the internal name");
		dom = cfg->defaultdomain;
	}
	out_levels(&o, mb, (cfg == NULL || cfg->unixhierarchysep) ? &sp_uhs : &sp_dotsep);
	if (dom != NULL) {
		out_add(&o, "@", 1, 0);
		out_add(&o, dom, strlen(dom), 0);
	}
	return out_end(&o);
}

int
ids_mbname_dbname(const struct ids_mbname *mb, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	const char gs = DB_DOMAINSEP;

	if (mb->domain) {
		out_add(&o, mb->domain, strlen(mb->domain), 0);
		out_add(&o, &gs, 1, 0);
	}
	out_levels(&o, mb, &sp_db);
	return out_end(&o);
}

int
ids_mbname_deleted_prefix(const struct ids_mbname *root, char *buf, size_t size)
{
	struct ids_mbname t;
	int n;

	ids_mbname_copy(&t, root);
	t.deleted = "0";
	if ((n = ids_mbname_dbname(&t, buf, size)) < 1)
		return n < 0 ? n : IDS_EINVAL;
	buf[--n] = '\0';	/* drop the "0": the prefix ends in the separator */
	return n;
}

int
ids_mbname_owner(const struct ids_mbname *mb, char *buf, size_t size)
{
	struct out o = { buf, size, 0 };
	const char *who = mb->localpart ? mb->localpart :
	    mb->nboxes ? mb->boxes[0] : NULL;

	if (who == NULL)
		return ids_error(IDS_EBADNAME, "name without an owner");
	out_add(&o, who, strlen(who), 0);
	if (mb->domain) {
		out_add(&o, "@", 1, 0);
		out_add(&o, mb->domain, strlen(mb->domain), 0);
	}
	return out_end(&o);
}

int
ids_mbname_is_user(const struct ids_mbname *mb)
{
	return mb->localpart != NULL;
}

int
ids_mbname_is_inbox(const struct ids_mbname *mb)
{
	return mb->localpart != NULL && mb->deleted == NULL && mb->nboxes == 0;
}

int
ids_mbname_is_deleted(const struct ids_mbname *mb)
{
	return mb->deleted != NULL;
}

static int
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
ids_mbname_same_owner(const struct ids_mbname *a, const struct ids_mbname *b)
{
	if (!streq_null(a->domain, b->domain) ||
	    !streq_null(a->localpart, b->localpart))
		return 0;
	if (a->localpart != NULL)
		return 1;
	return a->nboxes > 0 && b->nboxes > 0 &&
	    strcmp(a->boxes[0], b->boxes[0]) == 0;
}

int
ids_mbname_parent(const struct ids_mbname *mb, struct ids_mbname *parent)
{
	size_t min = mb->localpart ? 0 : 1;

	if (mb->nboxes <= min)
		return ids_error(IDS_ENOTFOUND, "%s has no parent",
		    mb->localpart ? "a user's INBOX" : "a shared top level");
	ids_mbname_copy(parent, mb);
	parent->nboxes--;
	return 0;
}

int
ids_mbname_is_within(const struct ids_mbname *a, const struct ids_mbname *b)
{
	size_t i;

	if (!streq_null(a->domain, b->domain) ||
	    !streq_null(a->localpart, b->localpart) ||
	    !streq_null(a->deleted, b->deleted) || a->nboxes > b->nboxes)
		return 0;
	for (i = 0; i < a->nboxes; i++)
		if (strcmp(a->boxes[i], b->boxes[i]) != 0)
			return 0;
	return 1;
}

/* Re-bases a pointer into src->store onto dst->store. */
static const char *
rebase(const struct ids_mbname *src, struct ids_mbname *dst, const char *p)
{
	if (p == NULL || p < src->store || p >= src->store + sizeof(src->store))
		return p;
	return dst->store + (p - src->store);
}

void
ids_mbname_copy(struct ids_mbname *dst, const struct ids_mbname *src)
{
	size_t i;

	if (dst == src)
		return;
	memcpy(dst, src, sizeof(*dst));
	dst->domain = rebase(src, dst, src->domain);
	dst->localpart = rebase(src, dst, src->localpart);
	dst->deleted = rebase(src, dst, src->deleted);
	for (i = 0; i < src->nboxes && i < IDS_MBNAME_LEVELS; i++)
		dst->boxes[i] = rebase(src, dst, src->boxes[i]);
}

/* Unique id bytes: 1 lower-case hex digit, 2 [0-9a-z], 4 '-'. */
static const unsigned char id_class[256] = {
	['0'] = 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	['a'] = 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2,
	['-'] = 4,
};

/* What each byte of a UUID must be: hex digits with dashes at 8, 13, 18, 23. */
static const unsigned char uuid_want[36] = {
	1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 1, 1, 1, 4, 1, 1, 1, 1, 4,
	1, 1, 1, 1, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Branch-free: every byte is looked up, and one test decides. */
static int
id_shape(const char *id, size_t n)
{
	const unsigned char *p = (const unsigned char *)id;
	unsigned char bad = 0, want = n == 24 ? 2 : 1;
	size_t i;

	if (n == 36) {
		for (i = 0; i < 36; i++)
			bad |= (unsigned char)((id_class[p[i]] & uuid_want[i]) == 0);
	} else {
		for (i = 0; i < n; i++)
			bad |= (unsigned char)((id_class[p[i]] & want) == 0);
	}
	return bad == 0;
}

int
ids_uniqueid_check(const char *id)
{
	size_t n;

	if (id == NULL)
		return ids_error(IDS_EBADID, "no unique id");
	n = strnlen(id, IDS_UNIQUEID_MAX + 1);
	if ((n != 36 && n != 24 && n != 16) || !id_shape(id, n))
		return ids_error(IDS_EBADID, "not a unique id (a lower-case UUID, "
		    "24 [0-9a-z] or 16 hex digits)");
	return 0;
}

int
ids_uniqueid_new(char out[IDS_UNIQUEID_MAX + 1])
{
	uuid_t u;

	uuid_generate(u);
	uuid_unparse_lower(u, out);
	return 0;
}

int
ids_idlist_add(struct ids_idlist *l, const char *id)
{
	if (strlen(id) > IDS_UNIQUEID_MAX)
		return 0;
	if (IDS_ALLOC_GROW(l->ids, l->n + 1, l->alloc) < 0)
		return -ENOMEM;
	strcpy(l->ids[l->n++], id);
	return 0;
}

void
ids_idlist_release(struct ids_idlist *l)
{
	free(l->ids);
	l->ids = NULL;
	l->n = l->alloc = 0;
}
