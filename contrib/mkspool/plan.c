/*
 * plan.c - who owns what in a generated spool.
 *
 * The totals asked for (users, folders, messages) are split over the
 * owners by long-tailed weights, with exact integer arithmetic, so the
 * sums always come out right: most users have a handful of folders and
 * a few hundred messages, a few have hundreds of folders, and INBOX,
 * Sent and the archives hold most of the mail.  About 4% of the folders
 * are shared (under tops such as "shared" or "support", some inside a
 * domain), about 3% are delayed-delete DELETED.* folders (with a
 * tombstone at the name they had), and 2% were renamed once.
 *
 * Each owner is then planned from its own seeded stream: its name, its
 * partition, the naming style of its standard folders (Thunderbird,
 * Outlook, Apple, and German, Russian and French ones in modified
 * UTF-7), a random folder tree at most five levels below its root, and
 * for each folder a unique id whose shape follows the folder's age:
 * 16 hex digits (Cyrus 2.x: name hash and UIDVALIDITY) before 2012, some
 * 24-character ids until 2016, UUIDs after.
 *
 * The first user is a fixed showcase, so that even a tiny spool has
 * every case the tests look for: a domain and a dot in the localpart,
 * names with spaces, '&-', a dot ('^'), modified UTF-7, a folder five
 * levels deep, a DELETED folder, a renamed one whose cyrus.header still
 * carries its old name, both header formats and all three id shapes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "mkspool.h"

#define MAX_DEPTH	5
#define SHOWCASE_EXTRA	16	/* folders of the first user besides INBOX */
#define Y2012		1325376000
#define Y2016		1451606400

/* A set of 64-bit string hashes; a rare false "present" only changes a name. */
struct hset {
	uint64_t *v;
	size_t cap, n;
};

struct plan {
	const struct ids_config *cfg;
	struct plan_opts o;
	int64_t now;
	unsigned nusers, ntops;
	unsigned *folders;	/* per owner */
	uint64_t *messages;	/* per owner */
	struct hset owners;	/* userids and shared tops taken */
	struct hset names;	/* the current owner's folder names */
	struct folder *f;
	size_t nf, af;
	int showcase;		/* the first user is the showcase */
	char lastuser[160];	/* the previous user: a colleague to share with */
};

static const char *const ufirst[] = {
	"john", "mary", "anna", "peter", "li", "mohammed", "olga", "jose",
	"fatima", "yuki", "lars", "ingrid", "pierre", "chloe", "raj", "priya",
	"tom", "sarah", "david", "laura", "carlos", "sofia", "ahmed", "elena",
	"hans", "greta", "kenji", "mei", "oluwaseun", "amara", "liam", "emma",
	"noah", "mia", "lucas", "zoe", "ivan", "nina", "omar", "leila",
};
static const char *const ulast[] = {
	"doe", "smith", "mueller", "garcia", "rossi", "nguyen", "kowalski",
	"ivanova", "tanaka", "okafor", "johansson", "dubois", "patel", "chen",
	"silva", "novak", "schmidt", "brown", "jensen", "costa", "haddad",
	"obrien", "fischer", "moreau", "yilmaz", "kim", "santos", "weber",
};
static const char *const udomains[] = {
	"example.com", "example.com", "example.org", "example.net",
	"mail.example.com", "sales.example.org", "eu.example.net",
	"acme.example", "globex.example", "initech.example", "university.example",
};
static const char *const tops[] = {
	"shared", "public", "support", "sales", "archive", "helpdesk", "hr",
	"projects", "announcements", "finance",
};
static const char *const shared_topics[] = {
	"Announcements", "Tickets", "Open", "Closed", "Escalated", "Customers",
	"Partners", "Press", "Policies", "Minutes", "Templates", "Forms",
	"Newsletters", "Job Openings", "Kantine", "&AMk-v&AOk-nements",
	"Office Move 2^0",
};
/* Standard folders per style, in the order Sent Drafts Trash Junk Archive other. */
static const char *const std_names[][6] = {
	{ "Sent", "Drafts", "Trash", "Junk", "Archives", "Templates" },
	{ "Sent Items", "Drafts", "Deleted Items", "Junk E-mail", "Archive", "Outbox" },
	{ "Sent Messages", "Drafts", "Deleted Messages", "Junk", "Archive", "Notes" },
	{ "Gesendet", "Entw&APw-rfe", "Papierkorb", "Spam", "Archiv", "Vorlagen" },
	{ "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", "&BCcENQRABD0EPgQyBDgEOgQ4-",
	  "&BBoEPgRABDcEOAQ9BDA-", "&BCEEPwQwBDw-", "&BBAEQARFBDgEMg-", "Templates" },
	{ "&AMk-l&AOk-ments envoy&AOk-s", "Brouillons", "Corbeille",
	  "Courrier ind&AOk-sirable", "Archives", "Mod&AOg-les" },
};
static const unsigned style_weight[] = { 35, 25, 15, 10, 7, 8 };
static const enum folder_kind std_kinds[6] = {
	FK_SENT, FK_DRAFTS, FK_TRASH, FK_JUNK, FK_ARCHIVE, FK_PLAIN,
};
/* Levels right below INBOX; "Mailing Lists" holds list folders. */
static const char *const topics[] = {
	"Projects", "Clients", "Family", "Travel", "Receipts", "Newsletters",
	"Work", "Personal", "Finance", "Taxes", "Invoices", "Orders",
	"Friends", "Notifications", "Social", "Reports", "Meetings",
	"Conferences", "Hiring", "Support", "Old Mail", "To Do", "Follow Up",
	"Read Later", "Important", "Kids", "House", "Car", "Health",
	"Insurance", "Bank", "Jobs", "Sports Club", "Book Club",
	"Mailing Lists", "Mailing Lists", "Mailing Lists",
	"&AOQ-rger", "Gr&APwA3w-e", "Re&AOc-us", "Voyage &AOA- Paris",
	"Familie M&APw-ller", "Steuererkl&AOQ-rung", "&ANw-berweisungen",
	"Rechnungen &- Belege", "R&AOk-sum&AOk-s", "Best&AOQ-tigungen",
	"&BB8EQAQ4BDIENQRC-", "&ZeVnLIqe-", "&kAFP4W4IMH8-",
	"&A6ADwQPMA8cDtQO5A8EDsQ-", "Caf&AOk- Bookings", "Fotos &2D3c9w-",
	"Release 2^0", "v1^5 Beta",
};
static const char *const subtopics[] = {
	"Acme Corp", "Globex", "Initech", "Umbrella", "Wayne Enterprises",
	"Contracts", "Meeting notes", "Drafts", "Design", "Specs", "Budget",
	"Team", "Vendors", "Legal", "Marketing", "Sales", "Q1", "Q2", "Q3",
	"Q4", "Misc", "Old", "Done", "Pending", "Paris", "Berlin", "Tokyo",
	"New York", "Summer 2023", "Christmas", "Birthday", "Website",
	"Mobile App", "API", "Infrastructure", "Hardware", "Licenses",
	"Photos", "Tickets", "Alpha", "Beta", "Gamma", "St&AOk-phane",
	"Z&APw-rich Office", "Pra&AX4-sk&AOk- Jaro", "Meeting 2^0",
};
static const char *const lists[] = {
	"cyrus-devel", "cyrus-announce", "debian-user", "lkml", "postfix-users",
	"dovecot", "freebsd-hackers", "openbsd-misc", "ietf-announce",
	"python-dev", "nanog", "pgsql-general",
};
static const char *const month_names[] = {
	"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12",
	"January", "February", "March", "Q1", "Q2", "Q3", "Q4",
};
/* Long tails: folders per user, message weights of ordinary folders. */
static const uint32_t folder_tail[] = { 1, 1, 1, 2, 2, 3, 4, 6, 9, 14, 25, 60 };
static const uint32_t msg_tail[] = { 0, 0, 5, 10, 20, 30, 50, 80, 150, 300 };
static const uint32_t years_ago[] = { 0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10,
	12, 14, 17, 20 };

/* The first user's fixed folders: name below INBOX, kind, flags. */
static const struct {
	const char *rel;
	enum folder_kind kind;
	unsigned flags;
	const char *old;	/* renamed from */
} showcase[] = {
	{ "Mailing Lists", FK_LISTS, 0, NULL },
	{ "Mailing Lists.cyrus-devel", FK_LIST, 0, NULL },
	{ "&AOQ-rger", FK_PLAIN, 0, NULL },
	{ "Rechnungen &- Belege", FK_PLAIN, 0, NULL },
	{ "Release 2^0", FK_PLAIN, 0, NULL },
	{ "Projects", FK_PLAIN, 0, NULL },
	{ "Projects.2023", FK_YEAR, 0, NULL },
	{ "Projects.2023.Q1", FK_PLAIN, 0, NULL },
	{ "Projects.2023.Q1.Clients", FK_PLAIN, 0, NULL },
	{ "Projects.2023.Q1.Clients.Acme Corp", FK_PLAIN, 0, NULL },
	{ "Old Stuff", FK_PLAIN, FF_DELETED, NULL },
	{ "Travel", FK_PLAIN, FF_RENAMED | FF_STALEHDR, "Trips" },
};

/* --- small helpers ---------------------------------------------------- */

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h ? h : 1;
}

/* Adds s: 1 if it was new, 0 if present, -ENOMEM. */
static int
hset_add(struct hset *s, const char *str)
{
	uint64_t h = hash_str(str), *nv;
	size_t i, j;

	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;

		if ((nv = calloc(cap, sizeof(*nv))) == NULL)
			return -ENOMEM;
		for (i = 0; i < s->cap; i++)
			for (j = s->v[i] % cap; s->v[i] != 0; j = (j + 1) % cap)
				if (nv[j] == 0) {
					nv[j] = s->v[i];
					break;
				}
		free(s->v);
		s->v = nv;
		s->cap = cap;
	}
	for (i = h % s->cap; s->v[i] != 0; i = (i + 1) % s->cap)
		if (s->v[i] == h)
			return 0;
	s->v[i] = h;
	s->n++;
	return 1;
}

static void
hset_clear(struct hset *s)
{
	if (s->v)
		memset(s->v, 0, s->cap * sizeof(*s->v));
	s->n = 0;
}

/* Splits total over n slots in proportion to w (all equal when w sums to 0). */
static void
split(uint64_t total, const uint32_t *w, size_t n, uint64_t *out)
{
	unsigned __int128 sum = 0, acc = 0;
	uint64_t prev = 0, cur;
	size_t i;

	for (i = 0; i < n; i++)
		sum += w[i];
	for (i = 0; i < n; i++) {
		acc += sum ? w[i] : 1;
		cur = (uint64_t)(total * acc / (sum ? sum : n));
		out[i] = cur - prev;
		prev = cur;
	}
}

/* snprintf into a fixed buffer; IDS_ETOOLONG when it does not fit. */
__attribute__((format(printf, 3, 4)))
static int
bprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return ids_error(IDS_ETOOLONG, "name too long: '%.40s...'", buf);
	return n;
}

/* --- splitting the totals ------------------------------------------- */

static int
split_folders(struct plan *p, struct rng *r, uint64_t userf, uint64_t shared)
{
	unsigned n = p->nusers, first = 0, i;
	uint64_t extras = userf - n, *out;
	uint32_t *w;

	w = calloc((size_t)n + p->ntops + 1, sizeof(*w));
	out = calloc((size_t)n + p->ntops + 1, sizeof(*out));
	if (w == NULL || out == NULL) {
		free(w);
		free(out);
		return -ENOMEM;
	}
	p->folders[0] = 1;
	if (extras >= SHOWCASE_EXTRA) {
		p->showcase = 1;
		p->folders[0] += SHOWCASE_EXTRA;
		extras -= SHOWCASE_EXTRA;
		first = 1;
	}
	for (i = first; i < n; i++)
		w[i] = RNG_PICK(r, folder_tail);
	split(extras, w + first, n - first, out + first);
	for (i = first; i < n; i++)
		p->folders[i] = 1 + (unsigned)out[i];
	if (first == n)
		p->folders[0] += (unsigned)extras;
	for (i = 0; i < p->ntops; i++)
		w[n + i] = RNG_PICK(r, folder_tail);
	split(shared - p->ntops, w + n, p->ntops, out + n);
	for (i = 0; i < p->ntops; i++)
		p->folders[n + i] = 1 + (unsigned)out[n + i];
	free(w);
	free(out);
	return 0;
}

/* Messages follow folders, times a long-tailed activity factor. */
static int
split_messages(struct plan *p, struct rng *r)
{
	static const uint32_t activity[] = { 1, 1, 1, 2, 2, 3, 5, 8 };
	unsigned n = p->nusers + p->ntops, i;
	uint32_t *w = calloc(n, sizeof(*w));

	if (w == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		w[i] = p->folders[i] * RNG_PICK(r, activity);
	split(p->o.messages, w, n, p->messages);
	free(w);
	return 0;
}

int
plan_new(const struct ids_config *cfg, const struct plan_opts *o, struct plan **pp)
{
	uint64_t shared = o->folders / 25;
	struct plan *p;
	struct rng r;
	unsigned n;
	int ret;

	if (shared < 2 && o->folders >= (uint64_t)o->users + 8)
		shared = 2;
	if (o->users == 0 || (uint64_t)o->folders < (uint64_t)o->users + shared)
		return ids_error(IDS_EINVAL, "%u folders are too few for %u users",
		    o->folders, o->users);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->cfg = cfg;
	p->o = *o;
	p->nusers = o->users;
	p->ntops = (unsigned)((shared + 7) / 8);
	n = p->nusers + p->ntops;
	rng_seed(&r, o->seed, STREAM_PLAN);
	p->now = MKSPOOL_EPOCH - (int64_t)rng_below(&r, 365) * DAY;
	p->folders = calloc(n, sizeof(*p->folders));
	p->messages = calloc(n, sizeof(*p->messages));
	ret = -ENOMEM;
	if (p->folders == NULL || p->messages == NULL ||
	    (ret = split_folders(p, &r, o->folders - shared, shared)) < 0 ||
	    (ret = split_messages(p, &r)) < 0) {
		plan_free(p);
		return ret;
	}
	*pp = p;
	return 0;
}

void
plan_free(struct plan *p)
{
	if (p == NULL)
		return;
	free(p->folders);
	free(p->messages);
	free(p->owners.v);
	free(p->names.v);
	free(p->f);
	free(p);
}

unsigned
plan_owners(const struct plan *p)
{
	return p->nusers + p->ntops;
}

int64_t
plan_now(const struct plan *p)
{
	return p->now;
}

/* --- owners ----------------------------------------------------------- */

static void
capitalize(char *dst, size_t size, const char *first, const char *last)
{
	int n = snprintf(dst, size, "%s %s", first, last);

	if (n > 0 && (size_t)n < size) {
		dst[0] = (char)(dst[0] - 'a' + 'A');
		dst[strlen(first) + 1] = (char)(dst[strlen(first) + 1] - 'a' + 'A');
	}
}

/* The localpart with '.' written '^', as internal names spell it. */
static void
hat(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '.')
			*s = '^';
}

static void
pick_domain(struct plan *p, struct owner *o, struct rng *r, int forced)
{
	const char *d = forced ? "example.com" : RNG_PICK(r, udomains);

	o->domain[0] = '\0';
	if (p->cfg->virtdomains == IDS_VIRTDOMAINS_OFF)
		return;
	if (!forced && (o->index == 1 || rng_chance(r, 250)))
		return;
	if (p->cfg->defaultdomain && strcmp(p->cfg->defaultdomain, d) == 0)
		return;
	memcpy(o->domain, d, strlen(d) + 1);
}

/* A localpart of one of the usual shapes; "" for a unique one of a counter. */
static int
localpart_form(struct rng *r, char *buf, size_t size, struct owner *o)
{
	const char *f = RNG_PICK(r, ufirst), *l = RNG_PICK(r, ulast);

	capitalize(o->realname, sizeof(o->realname), f, l);
	switch (rng_below(r, 7)) {
	case 0:
		return bprintf(buf, size, "%s", f);
	case 1:
	case 2:
		return bprintf(buf, size, "%s.%s", f, l);
	case 3:
		return bprintf(buf, size, "%c%s", f[0], l);
	case 4:
		return bprintf(buf, size, "%s_%s", f, l);
	case 5:
		return bprintf(buf, size, "%s-%s", f, l);
	default:
		return bprintf(buf, size, "%s%u", f, 10 + rng_below(r, 90));
	}
}

/* Sets o->userid from local and domain; 1 if it is new, 0 if taken. */
static int
claim_userid(struct plan *p, struct owner *o, const char *local)
{
	int r;

	if (o->domain[0])
		r = bprintf(o->userid, sizeof(o->userid), "%s@%s", local, o->domain);
	else
		r = bprintf(o->userid, sizeof(o->userid), "%s", local);
	if (r < 0)
		return r;
	return hset_add(&p->owners, o->userid);
}

static int
pick_localpart(struct plan *p, struct owner *o, struct rng *r, int forced)
{
	char base[48];
	unsigned k;
	int ret;

	if (forced) {
		capitalize(o->realname, sizeof(o->realname), "john", "doe");
		ret = bprintf(base, sizeof(base), "john.doe");
	} else {
		ret = localpart_form(r, base, sizeof(base), o);
	}
	if (ret < 0)
		return ret;
	memcpy(o->local, base, strlen(base) + 1);
	for (k = 2; (ret = claim_userid(p, o, o->local)) == 0; k++)
		if ((ret = bprintf(o->local, sizeof(o->local), "%s%u", base, k)) < 0)
			return ret;
	return ret < 0 ? ret : 0;
}

static unsigned
pick_partition(const struct plan *p, unsigned index, struct rng *r)
{
	unsigned np = (unsigned)p->cfg->npartitions;

	if (index < np)
		return index;	/* every partition gets an owner early */
	return rng_below(r, np);
}

static unsigned
pick_style(struct rng *r)
{
	unsigned x = rng_below(r, 100), i;

	for (i = 0; i + 1 < sizeof(style_weight) / sizeof(style_weight[0]); i++) {
		if (x < style_weight[i])
			return i;
		x -= style_weight[i];
	}
	return i;
}

static int64_t
pick_born(const struct plan *p, struct rng *r)
{
	return p->now - 30 * DAY - (int64_t)RNG_PICK(r, years_ago) * 365 * DAY -
	    (int64_t)rng_below(r, 365 * DAY);
}

static int
plan_user(struct plan *p, struct owner *o, struct rng *r)
{
	int forced = o->index == 0 && p->showcase;
	char local[64];
	int ret;

	o->is_user = 1;
	pick_domain(p, o, r, forced);
	if ((ret = pick_localpart(p, o, r, forced)) < 0)
		return ret;
	o->partition = pick_partition(p, o->index, r);
	o->style = forced ? 0 : pick_style(r);
	o->quota = forced || rng_chance(r, 700);
	o->deleted = !forced && o->index > 1 && rng_chance(r, 20);
	o->born = forced ? 1230768000 : pick_born(p, r);	/* 2009 */
	memcpy(o->colleague, p->lastuser, sizeof(o->colleague));
	memcpy(p->lastuser, o->userid, sizeof(p->lastuser));
	memcpy(local, o->local, sizeof(local));
	hat(local);
	if (o->domain[0])
		return bprintf(o->prefix, sizeof(o->prefix), "%s!user.%s", o->domain, local);
	return bprintf(o->prefix, sizeof(o->prefix), "user.%s", local);
}

static int
plan_top(struct plan *p, struct owner *o, struct rng *r)
{
	const char *top = o->index == p->nusers ? "shared" : RNG_PICK(r, tops);
	char key[200];
	unsigned k;
	int ret;

	if (o->index != p->nusers && p->cfg->virtdomains != IDS_VIRTDOMAINS_OFF &&
	    rng_chance(r, 500)) {
		const char *d = RNG_PICK(r, udomains);

		memcpy(o->domain, d, strlen(d) + 1);
	}
	if (p->cfg->defaultdomain && strcmp(p->cfg->defaultdomain, o->domain) == 0)
		o->domain[0] = '\0';
	ret = bprintf(o->local, sizeof(o->local), "%s", top);
	for (k = 2; ret >= 0; k++) {
		if ((ret = bprintf(key, sizeof(key), "#%s@%s", o->local, o->domain)) < 0 ||
		    (ret = hset_add(&p->owners, key)) != 0)
			break;
		ret = bprintf(o->local, sizeof(o->local), "%s%u", top, k);
	}
	if (ret < 0)
		return ret;
	memcpy(o->userid, o->local, sizeof(o->local));
	capitalize(o->realname, sizeof(o->realname), "the", o->local);
	o->partition = pick_partition(p, o->index, r);
	o->quota = rng_chance(r, 200);
	o->born = pick_born(p, r);
	if (o->domain[0])
		return bprintf(o->prefix, sizeof(o->prefix), "%s!%s", o->domain, o->local);
	return bprintf(o->prefix, sizeof(o->prefix), "%s", o->local);
}

/* --- folder trees ------------------------------------------------------ */

/*
 * Appends the folder <parent's name>.<leaf> (the owner's root when
 * parent < 0), made unique with " 2", " 3"...  Returns its index.
 */
static int
add_folder(struct plan *p, const struct owner *o, int parent, const char *leaf,
    enum folder_kind kind, unsigned flags)
{
	struct folder *f, *nf;
	unsigned k;
	int ret;

	if (p->nf == p->af) {
		p->af = p->af ? 2 * p->af : 64;
		if ((nf = realloc(p->f, p->af * sizeof(*nf))) == NULL)
			return -ENOMEM;
		p->f = nf;
	}
	f = &p->f[p->nf];
	memset(f, 0, sizeof(*f));
	if (parent < 0)
		ret = bprintf(f->name, sizeof(f->name), "%s", o->prefix);
	else
		ret = bprintf(f->name, sizeof(f->name), "%s.%s", p->f[parent].name, leaf);
	for (k = 2; ret >= 0 && (ret = hset_add(&p->names, f->name)) == 0 &&
	    parent >= 0; k++)
		ret = bprintf(f->name, sizeof(f->name), "%s.%s %u", p->f[parent].name,
		    leaf, k);
	if (ret < 0)
		return ret;
	f->kind = kind;
	f->flags = flags;
	f->parent = parent;
	f->depth = parent < 0 ? 0 : p->f[parent].depth + 1;
	return (int)p->nf++;
}

/* Index of the folder called <prefix>.<rel>, or the root. */
static int
find_folder(const struct plan *p, const struct owner *o, const char *rel,
    size_t rellen)
{
	size_t plen = strlen(o->prefix), i;

	for (i = 1; i < p->nf; i++)
		if (strncmp(p->f[i].name, o->prefix, plen) == 0 &&
		    p->f[i].name[plen] == '.' &&
		    strncmp(p->f[i].name + plen + 1, rel, rellen) == 0 &&
		    p->f[i].name[plen + 1 + rellen] == '\0')
			return (int)i;
	return 0;
}

/* Gives folder k the old name <parent>.<leaf> it had before a rename. */
static int
set_oldname(struct plan *p, int k, const char *leaf)
{
	struct folder *f = &p->f[k];
	int ret;

	ret = bprintf(f->oldname, sizeof(f->oldname), "%s.%s",
	    p->f[f->parent].name, leaf);
	if (ret < 0)
		return ret;
	if ((ret = hset_add(&p->names, f->oldname)) <= 0) {
		f->flags &= ~(unsigned)(FF_RENAMED | FF_STALEHDR);
		f->oldname[0] = '\0';
	}
	return ret < 0 ? ret : k;
}

static int
add_showcase(struct plan *p, const struct owner *o)
{
	size_t i;
	int k;

	for (i = 0; i < sizeof(showcase) / sizeof(showcase[0]); i++) {
		const char *rel = showcase[i].rel, *dot = strrchr(rel, '.');
		int parent = dot ? find_folder(p, o, rel, (size_t)(dot - rel)) : 0;
		unsigned flags = showcase[i].flags | FF_SHOWCASE;

		if (flags & (FF_DELETED | FF_RENAMED))
			flags |= FF_NOPARENT;
		k = add_folder(p, o, parent, dot ? dot + 1 : rel, showcase[i].kind, flags);
		if (k >= 0 && showcase[i].old != NULL)
			k = set_oldname(p, k, showcase[i].old);
		if (k < 0)
			return k;
	}
	return 0;
}

/* Sent, Drafts, Trash, Junk and maybe Archive and one more, by style. */
static int
add_standard(struct plan *p, const struct owner *o, struct rng *r, unsigned n)
{
	unsigned i;
	int k;

	for (i = 0; i < n && i < 6 && p->nf < o->nfolders; i++) {
		unsigned flags = std_kinds[i] == FK_DRAFTS || std_kinds[i] == FK_TRASH ||
		    std_kinds[i] == FK_JUNK ? FF_NOPARENT : 0;

		if ((k = add_folder(p, o, 0, std_names[o->style][i], std_kinds[i],
		    flags)) < 0)
			return k;
	}
	return 0;
}

static int
pick_parent(const struct plan *p, struct rng *r)
{
	unsigned tries;
	size_t k;

	for (tries = 0; tries < 8; tries++) {
		k = rng_chance(r, 400) ? 0 : rng_below(r, (uint32_t)p->nf);
		if (p->f[k].depth < MAX_DEPTH && !(p->f[k].flags & FF_NOPARENT))
			return (int)k;
	}
	return 0;
}

/* The name of a new child of pf, and its kind. */
static const char *
pick_leaf(const struct owner *o, const struct folder *pf, struct rng *r,
    enum folder_kind *kind, char *year)
{
	*kind = FK_PLAIN;
	if (pf->kind == FK_ARCHIVE || (pf->kind != FK_YEAR && rng_chance(r, 80))) {
		*kind = FK_YEAR;
		bprintf(year, 8, "%d", 2005 + (int)rng_below(r, 20));
		return year;
	}
	if (pf->kind == FK_YEAR)
		return RNG_PICK(r, month_names);
	if (pf->kind == FK_LISTS) {
		*kind = FK_LIST;
		return RNG_PICK(r, lists);
	}
	if (!o->is_user)
		return pf->depth == 0 || rng_chance(r, 500) ? RNG_PICK(r, shared_topics) :
		    RNG_PICK(r, subtopics);
	if (pf->kind == FK_INBOX) {
		const char *t = RNG_PICK(r, topics);

		if (strcmp(t, "Mailing Lists") == 0)
			*kind = FK_LISTS;
		return t;
	}
	return RNG_PICK(r, subtopics);
}

static int
add_random(struct plan *p, const struct owner *o, struct rng *r)
{
	int parent = pick_parent(p, r), k;
	enum folder_kind kind;
	unsigned flags = 0;
	char year[8];
	const char *leaf = pick_leaf(o, &p->f[parent], r, &kind, year);

	if (kind != FK_LISTS && rng_chance(r, 30))
		flags = FF_DELETED | FF_NOPARENT;
	else if (kind != FK_LISTS && rng_chance(r, 20))
		flags = FF_RENAMED | FF_NOPARENT | (rng_chance(r, 500) ? FF_STALEHDR : 0);
	k = add_folder(p, o, parent, leaf, kind, flags);
	if (k >= 0 && (flags & FF_RENAMED))
		k = set_oldname(p, k, o->is_user ? RNG_PICK(r, subtopics) :
		    RNG_PICK(r, shared_topics));
	return k;
}

static int
build_tree(struct plan *p, const struct owner *o, struct rng *r)
{
	int k;

	k = add_folder(p, o, -1, NULL, o->is_user ? FK_INBOX : FK_SHARED, 0);
	if (k >= 0 && o->index == 0 && p->showcase && (k = add_standard(p, o, r, 4)) >= 0)
		k = add_showcase(p, o);
	else if (k >= 0 && o->is_user)
		k = add_standard(p, o, r, 4 + rng_below(r, 3));
	while (k >= 0 && p->nf < o->nfolders)
		k = add_random(p, o, r);
	return k < 0 ? k : 0;
}

/* --- ids, times, formats, messages ---------------------------------- */

enum id_shape { ID_UUID, ID_24, ID_16, ID_BY_AGE };

static void
make_uniqueid(struct folder *f, struct rng *r, enum id_shape shape)
{
	static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	uint64_t a = rng_next(r), b = rng_next(r);
	int i;

	if (shape == ID_BY_AGE)
		shape = f->created < Y2012 ? ID_16 : f->created < Y2016 ?
		    (rng_chance(r, 600) ? ID_24 : ID_UUID) :
		    (rng_chance(r, 50) ? ID_24 : ID_UUID);
	if (shape == ID_16) {
		/* Cyrus 2.x: a hash of the name, then the UIDVALIDITY. */
		snprintf(f->uniqueid, sizeof(f->uniqueid), "%08x%08x",
		    (unsigned)(hash_str(f->name) & 0xffffffff), f->uidvalidity);
		return;
	}
	if (shape == ID_24) {
		for (i = 0; i < 24; i++)
			f->uniqueid[i] = b36[rng_below(r, 36)];
		f->uniqueid[24] = '\0';
		return;
	}
	a = (a & ~0xf000ULL) | 0x4000ULL;	/* version 4 */
	b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;	/* variant */
	snprintf(f->uniqueid, sizeof(f->uniqueid), "%08x-%04x-%04x-%04x-%012llx",
	    (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff,
	    (unsigned)(b >> 48), (unsigned long long)(b & 0xffffffffffffULL));
}

static uint32_t
folder_weight(const struct folder *f, struct rng *r)
{
	uint32_t w;

	switch (f->kind) {
	case FK_INBOX:   w = 400; break;
	case FK_SENT:    w = 150; break;
	case FK_DRAFTS:  w = 5; break;
	case FK_TRASH:   w = 30; break;
	case FK_JUNK:    w = 20; break;
	case FK_ARCHIVE: w = 60; break;
	case FK_YEAR:    w = 120; break;
	case FK_LIST:    w = 150; break;
	case FK_LISTS:   w = 0; break;
	case FK_SHARED:  w = 50; break;
	default:         w = RNG_PICK(r, msg_tail); break;
	}
	return f->flags & FF_DELETED ? w / 2 : w;
}

/* [dom!]DELETED.<name without dom>.<HEX of when> */
static int
deleted_name(struct folder *f)
{
	const char *bang = strchr(f->oldname, '!');
	int dl = bang ? (int)(bang - f->oldname) + 1 : 0;

	return bprintf(f->name, sizeof(f->name), "%.*sDELETED.%s.%llX", dl,
	    f->oldname, f->oldname + dl, (unsigned long long)f->changed);
}

/* Creation and change times, ids, header format, sharing, weight. */
static int
assign_folder(struct plan *p, const struct owner *o, struct rng *r, size_t k,
    int64_t horizon)
{
	struct folder *f = &p->f[k];
	int forced = (f->flags & FF_SHOWCASE) || (o->index == 0 && p->showcase);
	enum id_shape shape = ID_BY_AGE;

	f->created = k == 0 ? o->born :
	    rng_between(r, p->f[f->parent].created, horizon - 2 * DAY);
	f->uidvalidity = (uint32_t)f->created;
	if (f->flags & (FF_DELETED | FF_RENAMED))
		f->changed = o->deleted ? horizon : rng_between(r, f->created + DAY, horizon);
	if (forced && k <= 1)
		shape = k == 0 ? ID_16 : ID_24;
	make_uniqueid(f, r, shape);
	if ((forced && k == 0) || rng_chance(r, f->uniqueid[16] == '\0' ? 600 :
	    f->uniqueid[24] == '\0' ? 400 : 50))
		f->flags |= FF_OLDHEADER;
	if (o->is_user && k > 0 && o->colleague[0] && rng_chance(r, 50))
		f->flags |= FF_COLLEAGUE;
	f->weight = folder_weight(f, r);
	if (!(f->flags & FF_DELETED))
		return 0;
	memcpy(f->oldname, f->name, sizeof(f->oldname));
	return deleted_name(f);
}

static int
assign_folders(struct plan *p, const struct owner *o, struct rng *r)
{
	int64_t horizon = p->now - DAY;
	uint32_t *w;
	uint64_t *n;
	size_t k;
	int ret = 0;

	if (o->deleted)
		horizon = rng_between(r, o->born + 60 * DAY, p->now - DAY);
	w = calloc(p->nf, sizeof(*w));
	n = calloc(p->nf, sizeof(*n));
	if (w == NULL || n == NULL)
		ret = -ENOMEM;
	for (k = 0; ret >= 0 && k < p->nf; k++) {
		if (o->deleted)
			p->f[k].flags = (p->f[k].flags & ~(unsigned)FF_RENAMED) | FF_DELETED;
		ret = assign_folder(p, o, r, k, horizon);
		w[k] = p->f[k].weight;
	}
	if (ret >= 0)
		split(o->nmessages, w, p->nf, n);
	for (k = 0; ret >= 0 && k < p->nf; k++)
		p->f[k].nmsgs = (uint32_t)n[k];
	free(w);
	free(n);
	return ret;
}

int
plan_owner(struct plan *p, unsigned i, struct owner *o, struct folder **fp,
    size_t *np, struct rng *r)
{
	int ret;

	memset(o, 0, sizeof(*o));
	rng_seed(r, p->o.seed, (uint64_t)i + 1);
	o->index = i;
	o->nfolders = p->folders[i];
	o->nmessages = p->messages[i];
	p->nf = 0;
	hset_clear(&p->names);
	ret = i < p->nusers ? plan_user(p, o, r) : plan_top(p, o, r);
	if (ret < 0 || (ret = build_tree(p, o, r)) < 0 ||
	    (ret = assign_folders(p, o, r)) < 0)
		return ret;
	*fp = p->f;
	*np = p->nf;
	return 0;
}
