/*
 * message.c - realistic RFC 5322 messages, made fast.
 *
 * A message is a list of iovecs: a header block and the MIME glue are
 * formatted into a fixed per-generator buffer, while the bodies are
 * slices of three corpora made once at start (English-like text wrapped
 * at 72 columns, the same text quoted with "> ", and base64 lines of
 * random bytes standing in for attachments).  Nothing is copied; the
 * SHA-1 (the message's GUID) is taken over the same iovecs the caller
 * writes with writev(2), so each byte is touched once by us and once
 * by the kernel.
 *
 * Sizes follow what mail stores see: the text part is drawn from a
 * long-tailed table (median about 3.7 KB, one in sixteen above 18 KB),
 * a quarter of the messages also carry an HTML alternative, 30% are
 * replies quoting what they answer, and about one in a hundred has a
 * base64 attachment of 100 KB to 2 MB (log-uniform).  Lines end in
 * CRLF, as Cyrus stores them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "error.h"
#include "mkspool.h"

#define TEXT_CORPUS	(4u << 20)	/* bytes of prose */
#define B64_RAW		(1536u * 1024)	/* random bytes behind the base64 corpus */
#define B64_LINE	78		/* 76 characters and CRLF */
#define GLUE_SIZE	(64u << 10)	/* headers and MIME glue of one message */
#define WRAP		72

struct corpus {
	char *p;
	size_t len;
	uint32_t *lines;	/* offset of each line start */
	size_t nlines;
};

struct msggen {
	struct corpus text;	/* prose */
	struct corpus quote;	/* the same prose, each line quoted */
	char *b64;		/* base64 lines */
	size_t b64len;
	char *glue;		/* this message's headers and MIME glue */
	size_t gluelen;
	int overflow;
	EVP_MD *sha1;
	EVP_MD_CTX *md;
	uint64_t serial;	/* messages made: makes Message-IDs unique */
};

static const char *const words[] = {
	"the", "the", "the", "a", "a", "to", "to", "of", "of", "and", "and",
	"in", "in", "is", "for", "for", "on", "that", "we", "we", "you", "you",
	"it", "with", "this", "be", "as", "are", "will", "can", "have", "I",
	"our", "not", "at", "from", "by", "all", "please", "would", "about",
	"meeting", "project", "report", "team", "budget", "review", "draft",
	"schedule", "update", "customer", "contract", "invoice", "deadline",
	"proposal", "question", "server", "release", "version", "change",
	"issue", "plan", "week", "month", "quarter", "Monday", "Friday",
	"tomorrow", "yesterday", "morning", "afternoon", "agenda", "notes",
	"document", "attached", "figures", "numbers", "results", "design",
	"migration", "mailbox", "folder", "account", "password", "backup",
	"support", "ticket", "request", "approval", "decision", "option",
	"price", "order", "delivery", "shipment", "travel", "flight", "hotel",
	"conference", "presentation", "slides", "feedback", "comments",
	"office", "holiday", "family", "weekend", "dinner", "photos", "trip",
	"soon", "again", "still", "already", "just", "also", "really", "maybe",
	"probably", "quickly", "carefully", "finally", "important", "new",
	"old", "next", "last", "first", "final", "short", "long", "good",
	"great", "small", "large", "open", "late", "early", "possible",
	"send", "check", "discuss", "confirm", "prepare", "finish", "move",
	"call", "think", "know", "need", "want", "agree", "expect", "forward",
	"reply", "share", "suggest", "attach", "sign", "book", "cancel",
	"should", "could", "must", "might", "there", "here", "when", "if",
	"but", "so", "because", "before", "after", "until", "while", "than",
};

static const char *const firsts[] = {
	"John", "Mary", "Anna", "Peter", "Li", "Mohammed", "Olga", "Jose",
	"Fatima", "Yuki", "Lars", "Ingrid", "Pierre", "Chloe", "Raj", "Priya",
	"Tom", "Sarah", "David", "Laura", "Carlos", "Sofia", "Ahmed", "Elena",
	"Hans", "Greta", "Kenji", "Mei", "Oluwaseun", "Amara", "Liam", "Emma",
};
static const char *const lasts[] = {
	"Doe", "Smith", "Mueller", "Garcia", "Rossi", "Nguyen", "Kowalski",
	"Ivanova", "Tanaka", "Okafor", "Johansson", "Dubois", "Patel", "Chen",
	"Silva", "Novak", "Schmidt", "Brown", "Jensen", "Costa", "Haddad",
};
static const char *const peerdomains[] = {
	"example.org", "example.net", "mail.example.net", "corp.example.com",
	"lists.example.org", "globex.example", "initech.example",
	"umbrella.example", "acme.example", "university.example",
};
static const char *const topics[] = {
	"Quarterly report", "Meeting on Monday", "Budget 2024", "Your order",
	"Invoice 4711", "Project kickoff", "Release planning", "Server outage",
	"Contract draft", "Holiday photos", "Dinner on Friday?",
	"Travel arrangements", "Conference slides", "Password reset",
	"Backup failed", "New office", "Team offsite", "Welcome aboard",
	"Migration plan", "Design review", "Action items", "Status update",
	"Question about the API", "Your account", "Weekly newsletter",
	"Shipping confirmation", "Job application", "Board minutes",
	"Lunch?", "Re-scheduled call", "Support ticket #20931",
};
static const char *const encoded_topics[] = {
	"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_Z=C3=BCrich?=",
	"=?UTF-8?B?0J/RgNC40LLQtdGC?=",
	"=?ISO-8859-1?Q?R=E9union_de_l'=E9quipe?=",
	"=?UTF-8?B?5Lya6K2w44Gu6K2w5LqL6Yyy?=",
};
static const char *const zones[] = {
	"-0800", "-0500", "-0300", "+0000", "+0100", "+0100", "+0200",
	"+0530", "+0800", "+0900",
};
static const char *const mailers[] = {
	"X-Mailer: Apple Mail (2.3731.700.6)",
	"User-Agent: Mozilla Thunderbird",
	"X-Mailer: Microsoft Outlook 16.0",
	"User-Agent: Mutt/2.2.9 (2022-11-12)",
	"User-Agent: Roundcube Webmail/1.6.5",
	"X-Mailer: iPhone Mail (21D61)",
};
static const char *const attach_types[][2] = {
	{ "application/pdf", "report.pdf" },
	{ "image/jpeg", "IMG_4032.jpg" },
	{ "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	  "Contract v3.docx" },
	{ "application/zip", "photos.zip" },
	{ "image/png", "screenshot.png" },
};
static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* Text part sizes at the quantiles 0, 1/16, ..., 16/16. */
static const uint32_t body_quantiles[17] = {
	200, 500, 900, 1300, 1700, 2100, 2600, 3100, 3700,
	4400, 5200, 6200, 7500, 9500, 12500, 18000, 40000,
};

/* --- the corpora --------------------------------------------------- */

static int
corpus_line(struct corpus *c, size_t *alines, size_t off)
{
	uint32_t *n;

	if (c->nlines == *alines) {
		*alines = *alines ? 2 * *alines : 4096;
		if ((n = realloc(c->lines, *alines * sizeof(*n))) == NULL)
			return -ENOMEM;
		c->lines = n;
	}
	c->lines[c->nlines++] = (uint32_t)off;
	return 0;
}

/*
 * One sentence of 5 to 18 words into s, which has room for 18 of the
 * longest word with a space and a comma each.
 */
static size_t
sentence(struct rng *r, char *s)
{
	static const char ends[] = "...?!";
	unsigned n = 5 + rng_below(r, 14), i;
	size_t len = 0;

	for (i = 0; i < n; i++) {
		const char *w = RNG_PICK(r, words);
		size_t wl = strlen(w);

		if (i > 0)
			s[len++] = ' ';
		memcpy(s + len, w, wl);
		if (i == 0 && s[len] >= 'a' && s[len] <= 'z')
			s[len] = (char)(s[len] - 'a' + 'A');
		len += wl;
		if (i + 1 < n && rng_chance(r, 60))
			s[len++] = ',';
	}
	s[len++] = ends[rng_below(r, sizeof(ends) - 1)];
	s[len] = '\0';
	return len;
}

/* Appends the words of sentence s (len bytes), wrapping at WRAP columns. */
static int
corpus_add_sentence(struct corpus *c, size_t *alines, size_t *col,
    const char *s, size_t len)
{
	size_t i, w;

	for (i = 0; i < len; i += w + (s[i + w] == ' ')) {
		w = strcspn(s + i, " ");
		if (*col > 0 && *col + 1 + w > WRAP) {
			memcpy(c->p + c->len, "\r\n", 2);
			c->len += 2;
			*col = 0;
			if (corpus_line(c, alines, c->len) < 0)
				return -ENOMEM;
		} else if (*col > 0) {
			c->p[c->len++] = ' ';
			(*col)++;
		}
		memcpy(c->p + c->len, s + i, w);
		c->len += w;
		*col += w;
	}
	return 0;
}

/*
 * Fills c with paragraphs of 2 to 6 sentences, separated by empty
 * lines.  The buffer has room for one sentence past TEXT_CORPUS.
 */
static int
corpus_make_text(struct corpus *c, struct rng *r)
{
	char s[18 * 16];
	size_t alines = 0, col = 0, len;
	unsigned left = 0;

	if ((c->p = malloc(TEXT_CORPUS + 512)) == NULL)
		return -ENOMEM;
	c->len = 0;
	if (corpus_line(c, &alines, 0) < 0)
		return -ENOMEM;
	while (c->len < TEXT_CORPUS) {
		if (left == 0 && col > 0) {
			memcpy(c->p + c->len, "\r\n\r\n", 4);
			c->len += 4;
			col = 0;
			if (corpus_line(c, &alines, c->len - 2) < 0 ||
			    corpus_line(c, &alines, c->len) < 0)
				return -ENOMEM;
		}
		if (left == 0)
			left = 2 + rng_below(r, 5);
		left--;
		len = sentence(r, s);
		if (corpus_add_sentence(c, &alines, &col, s, len) < 0)
			return -ENOMEM;
	}
	memcpy(c->p + c->len, "\r\n", 2);
	c->len += 2;
	return 0;
}

/* The same lines as text, each starting with "> " (empty ones with ">"). */
static int
corpus_make_quote(struct corpus *q, const struct corpus *t)
{
	size_t alines = 0, i;

	if ((q->p = malloc(t->len + 2 * t->nlines + 2)) == NULL)
		return -ENOMEM;
	q->len = 0;
	for (i = 0; i < t->nlines; i++) {
		size_t a = t->lines[i];
		size_t b = i + 1 < t->nlines ? t->lines[i + 1] : t->len;
		int empty = b - a == 2;

		if (corpus_line(q, &alines, q->len) < 0)
			return -ENOMEM;
		memcpy(q->p + q->len, empty ? ">" : "> ", empty ? 1 : 2);
		q->len += empty ? 1 : 2;
		memcpy(q->p + q->len, t->p + a, b - a);
		q->len += b - a;
	}
	return 0;
}

/* base64 of random bytes in lines of 76 characters and CRLF. */
static int
corpus_make_b64(struct msggen *mg, struct rng *r)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t lines = B64_RAW / 57, i, j;
	char *p;

	if ((mg->b64 = malloc(lines * B64_LINE)) == NULL)
		return -ENOMEM;
	p = mg->b64;
	for (i = 0; i < lines; i++) {
		for (j = 0; j < 19; j++) {	/* 19 groups of 3 bytes */
			uint32_t v = (uint32_t)rng_next(r) & 0xffffff;

			*p++ = tab[v >> 18];
			*p++ = tab[(v >> 12) & 63];
			*p++ = tab[(v >> 6) & 63];
			*p++ = tab[v & 63];
		}
		*p++ = '\r';
		*p++ = '\n';
	}
	mg->b64len = (size_t)(p - mg->b64);
	return 0;
}

int
msggen_new(uint64_t seed, struct msggen **mgp)
{
	struct msggen *mg;
	struct rng r;
	int ret = -ENOMEM;

	if ((mg = calloc(1, sizeof(*mg))) == NULL)
		return -ENOMEM;
	rng_seed(&r, seed, STREAM_CORPUS);
	if ((mg->glue = malloc(GLUE_SIZE)) == NULL ||
	    corpus_make_text(&mg->text, &r) < 0 ||
	    corpus_make_quote(&mg->quote, &mg->text) < 0 ||
	    corpus_make_b64(mg, &r) < 0)
		goto fail;
	ret = ids_error(-EIO, "libcrypto: SHA-1 is not available");
	if ((mg->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)) == NULL ||
	    (mg->md = EVP_MD_CTX_new()) == NULL)
		goto fail;
	*mgp = mg;
	return 0;
fail:
	msggen_free(mg);
	return ret;
}

void
msggen_free(struct msggen *mg)
{
	if (mg == NULL)
		return;
	free(mg->text.p);
	free(mg->text.lines);
	free(mg->quote.p);
	free(mg->quote.lines);
	free(mg->b64);
	free(mg->glue);
	EVP_MD_CTX_free(mg->md);
	EVP_MD_free(mg->sha1);
	free(mg);
}

/* --- assembling a message ------------------------------------------ */

/* Appends bytes to the message: glue bytes join the previous glue iovec. */
static void
put(struct msggen *mg, struct msg *m, const char *p, size_t len)
{
	struct iovec *last = m->niov ? &m->iov[m->niov - 1] : NULL;

	if (len == 0)
		return;
	if (last && (char *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
	} else if (m->niov < MSG_MAXIOV) {
		m->iov[m->niov].iov_base = (void *)p;
		m->iov[m->niov++].iov_len = len;
	} else {
		mg->overflow = 1;
		return;
	}
	m->size += len;
}

/* printf into the glue buffer, appended to the message. */
__attribute__((format(printf, 3, 4)))
static void
gprintf(struct msggen *mg, struct msg *m, const char *fmt, ...)
{
	size_t room = GLUE_SIZE - mg->gluelen;
	char *p = mg->glue + mg->gluelen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		mg->overflow = 1;
		return;
	}
	mg->gluelen += (size_t)n;
	put(mg, m, p, (size_t)n);
}

/* Minutes east of UTC of a zone "+hhmm". */
static int
zone_minutes(const char *zone)
{
	int mins = ((zone[1] - '0') * 10 + (zone[2] - '0')) * 60 +
	    (zone[3] - '0') * 10 + (zone[4] - '0');

	return zone[0] == '-' ? -mins : mins;
}

/* An RFC 5322 date for time t (UTC seconds) in zone; 0 or -1 (truncated). */
static int
fmt_date(char *out, size_t size, int64_t t, const char *zone)
{
	time_t local = (time_t)(t + zone_minutes(zone) * 60);
	struct tm tm;
	int n;

	gmtime_r(&local, &tm);
	n = snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d %s", days[tm.tm_wday],
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, zone);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The day of t in zone, as 00:00 UTC of that date (Cyrus's sentdate). */
static int64_t
day_of(int64_t t, const char *zone)
{
	int64_t local = t + zone_minutes(zone) * 60;

	return local - ((local % DAY) + DAY) % DAY;
}

/* Picks how the text part is sized: the long-tailed table, interpolated. */
static size_t
body_size(struct rng *r)
{
	uint32_t x = rng_below(r, 16 * 1024);
	uint32_t i = x / 1024, f = x % 1024;

	return body_quantiles[i] +
	    (size_t)(body_quantiles[i + 1] - body_quantiles[i]) * f / 1024;
}

/* Attachment sizes: log-uniform over 100 KB .. 2 MB (base64 bytes). */
static size_t
attach_size(struct rng *r)
{
	static const uint32_t steps[] = { 100, 141, 200, 283, 400, 566, 800,
	    1131, 1600, 2048 };
	uint32_t i = rng_below(r, 9), f = rng_below(r, 1024);

	return ((size_t)steps[i] * 1024 +
	    (size_t)(steps[i + 1] - steps[i]) * 1024 * f / 1024);
}

/* --- people, headers and bodies ------------------------------------ */

struct person {
	char name[64];
	char addr[192];
};

/* What one message will look like, decided before any byte is written. */
struct shape {
	struct person from, to, cc;
	int received;		/* came in over SMTP (not Sent or Drafts) */
	int has_cc, reply, html, attach, dkim;
	const char *zone;
	const char *greeting;
	int64_t date;		/* the Date header */
	char datestr[48];
	char subject[192];
	char boundary[40];
	uint64_t msgid;
};

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* snprintf that flags truncation on mg instead of returning it. */
__attribute__((format(printf, 4, 5)))
static void
fmt(struct msggen *mg, char *buf, size_t size, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, size, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		mg->overflow = 1;
}

static void
peer(struct msggen *mg, struct rng *r, struct person *p)
{
	const char *f = RNG_PICK(r, firsts), *l = RNG_PICK(r, lasts);

	fmt(mg, p->name, sizeof(p->name), "%s %s", f, l);
	fmt(mg, p->addr, sizeof(p->addr), "%s.%s@%s", f, l, RNG_PICK(r, peerdomains));
	lower(p->addr);
}

/* The owner as a correspondent; a list folder's owner is the list. */
static void
self(struct msggen *mg, const struct msgspec *spec, struct person *p)
{
	const struct owner *o = spec->owner;
	const char *dom = o->domain[0] ? o->domain : "example.com";

	if (spec->list != NULL) {
		fmt(mg, p->name, sizeof(p->name), "%s", spec->list);
		fmt(mg, p->addr, sizeof(p->addr), "%s@lists.example.org", spec->list);
		lower(p->addr);
		return;
	}
	fmt(mg, p->name, sizeof(p->name), "%s", o->realname);
	fmt(mg, p->addr, sizeof(p->addr), "%s@%s", o->local, dom);
}

static void
make_subject(struct msggen *mg, struct rng *r, const struct msgspec *spec,
    struct shape *sh)
{
	const char *topic = rng_chance(r, 30) ? RNG_PICK(r, encoded_topics) :
	    RNG_PICK(r, topics);
	const char *re = sh->reply ? "Re: " : rng_chance(r, 50) ? "Fwd: " : "";

	if (spec->list != NULL)
		fmt(mg, sh->subject, sizeof(sh->subject), "%s[%s] %s", re,
		    spec->list, topic);
	else
		fmt(mg, sh->subject, sizeof(sh->subject), "%s%s", re, topic);
}

static void
make_shape(struct msggen *mg, struct rng *r, const struct msgspec *spec,
    struct shape *sh)
{
	static const char *const greetings[] = { "Hi", "Hello", "Dear", "Hey",
	    "Good morning" };

	sh->received = spec->kind != FK_SENT && spec->kind != FK_DRAFTS;
	peer(mg, r, sh->received ? &sh->from : &sh->to);
	self(mg, spec, sh->received ? &sh->to : &sh->from);
	if ((sh->has_cc = rng_chance(r, 200)) != 0)
		peer(mg, r, &sh->cc);
	sh->reply = rng_chance(r, 300);
	sh->attach = spec->attachment || rng_chance(r, 10);
	sh->html = !sh->attach && rng_chance(r, 250);
	sh->dkim = sh->received && rng_chance(r, 400);
	sh->zone = sh->received ? RNG_PICK(r, zones) :
	    zones[spec->owner->index % (sizeof(zones) / sizeof(zones[0]))];
	sh->greeting = RNG_PICK(r, greetings);
	sh->date = spec->internaldate - (sh->received ? rng_range(r, 5, 3600) :
	    rng_range(r, 0, 2));
	if (fmt_date(sh->datestr, sizeof(sh->datestr), sh->date, sh->zone) < 0)
		mg->overflow = 1;
	sh->msgid = rng_next(r);
	fmt(mg, sh->boundary, sizeof(sh->boundary), "=_%016llx",
	    (unsigned long long)rng_next(r));
	make_subject(mg, r, spec, sh);
}

/* A random run of base64 characters from the attachment corpus. */
static const char *
b64_chars(struct msggen *mg, struct rng *r, size_t n)
{
	size_t line = rng_below(r, (uint32_t)(mg->b64len / B64_LINE));

	return mg->b64 + line * B64_LINE + (n < 76 ? rng_below(r, (uint32_t)(77 - n)) : 0);
}

static void
put_received(struct msggen *mg, struct msg *m, struct rng *r,
    const struct msgspec *spec, const struct shape *sh)
{
	const char *dom = strchr(sh->from.addr, '@') + 1;
	unsigned mx = 1 + rng_below(r, 4);
	char when[48];

	if (fmt_date(when, sizeof(when), spec->internaldate, "+0000") < 0)
		mg->overflow = 1;
	gprintf(mg, m, "Return-Path: <%s>\r\n", sh->from.addr);
	gprintf(mg, m, "Received: from mx%u.%s (mx%u.%s [198.51.100.%u])\r\n"
	    "\tby imap.example.com (Cyrus 3.6.1) with LMTPA;\r\n\t%s\r\n",
	    mx, dom, mx, dom, 1 + rng_below(r, 254), when);
	gprintf(mg, m, "Received: from [192.168.%u.%u] (unknown [203.0.113.%u])\r\n"
	    "\tby mx%u.%s (Postfix) with ESMTPSA id %08X%04X\r\n"
	    "\tfor <%s>; %s\r\n", rng_below(r, 256), 1 + rng_below(r, 254),
	    1 + rng_below(r, 254), mx, dom, (unsigned)rng_next(r),
	    rng_below(r, 65536), sh->to.addr, sh->datestr);
	if (sh->dkim)
		gprintf(mg, m, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;"
		    " d=%s;\r\n\ts=sel%u; t=%lld; h=from:to:subject:date:message-id;\r\n"
		    "\tbh=%.43s=;\r\n\tb=%.70s\r\n\t %.70s\r\n\t %.70s\r\n\t %.70s\r\n",
		    dom, 1 + rng_below(r, 2), (long long)sh->date, b64_chars(mg, r, 43),
		    b64_chars(mg, r, 70), b64_chars(mg, r, 70), b64_chars(mg, r, 70),
		    b64_chars(mg, r, 70));
}

static void
put_content_type(struct msggen *mg, struct msg *m, struct rng *r,
    const struct shape *sh)
{
	if (sh->attach)
		gprintf(mg, m, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n",
		    sh->boundary);
	else if (sh->html)
		gprintf(mg, m, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n",
		    sh->boundary);
	else if (rng_chance(r, 500))
		gprintf(mg, m, "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
		    "Content-Transfer-Encoding: 7bit\r\n");
	else
		gprintf(mg, m, "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n");
}

static void
put_headers(struct msggen *mg, struct msg *m, struct rng *r,
    const struct msgspec *spec, const struct shape *sh)
{
	const char *dom = strchr(sh->from.addr, '@') + 1;

	if (sh->received)
		put_received(mg, m, r, spec, sh);
	if (spec->list != NULL)
		gprintf(mg, m, "List-Id: %s <%s.lists.example.org>\r\n"
		    "List-Unsubscribe: <mailto:%s-leave@lists.example.org>\r\n"
		    "Precedence: list\r\n", spec->list, spec->list, spec->list);
	gprintf(mg, m, "Date: %s\r\nFrom: %s <%s>\r\nTo: %s <%s>\r\n", sh->datestr,
	    sh->from.name, sh->from.addr, sh->to.name, sh->to.addr);
	if (sh->has_cc)
		gprintf(mg, m, "Cc: %s <%s>\r\n", sh->cc.name, sh->cc.addr);
	gprintf(mg, m, "Subject: %s\r\nMessage-ID: <%016llx.%llu@%s>\r\n",
	    sh->subject, (unsigned long long)sh->msgid,
	    (unsigned long long)mg->serial, dom);
	if (sh->reply)
		gprintf(mg, m, "In-Reply-To: <%016llx@%s>\r\nReferences: <%016llx@%s>\r\n",
		    (unsigned long long)(sh->msgid ^ 0x5a5a), sh->to.addr,
		    (unsigned long long)(sh->msgid ^ 0x5a5a), sh->to.addr);
	if (rng_chance(r, 700))
		gprintf(mg, m, "%s\r\n", RNG_PICK(r, mailers));
	gprintf(mg, m, "MIME-Version: 1.0\r\n");
	put_content_type(mg, m, r, sh);
	gprintf(mg, m, "\r\n");
}

/* A slice of about want bytes of c, from a line start to a line end. */
static struct iovec
slice(const struct corpus *c, struct rng *r, size_t want)
{
	struct iovec v;
	size_t start, end;
	const char *nl;

	if (want > c->len / 2)
		want = c->len / 2;
	do
		start = c->lines[rng_below(r, (uint32_t)c->nlines)];
	while (start + want + 3 >= c->len);
	if (c->p[start] == '\r')
		start += 2;	/* never start with an empty line */
	else if (c->p[start] == '>' && c->p[start + 1] == '\r')
		start += 3;
	end = start + want;
	nl = memchr(c->p + end, '\n', c->len - end);
	end = nl ? (size_t)(nl - c->p) + 1 : c->len;
	v.iov_base = c->p + start;
	v.iov_len = end - start;
	return v;
}

/* Greeting, prose, the quoted original, signature; as HTML if html. */
static void
put_text(struct msggen *mg, struct msg *m, const struct shape *sh,
    const struct iovec *prose, const struct iovec *quote, int html)
{
	char first[64];

	fmt(mg, first, sizeof(first), "%s", sh->to.name);
	first[strcspn(first, " ")] = '\0';
	if (html)
		gprintf(mg, m, "<html><head><meta http-equiv=\"Content-Type\" "
		    "content=\"text/html; charset=utf-8\"></head>\r\n"
		    "<body><div dir=\"ltr\">");
	gprintf(mg, m, "%s %s,\r\n\r\n", sh->greeting, first);
	put(mg, m, prose->iov_base, prose->iov_len);
	if (quote != NULL) {
		gprintf(mg, m, "\r\n%sOn %s, %s wrote:\r\n", html ? "<blockquote>" : "",
		    sh->datestr, sh->to.name);
		put(mg, m, quote->iov_base, quote->iov_len);
	}
	gprintf(mg, m, "\r\n%s-- \r\n%s\r\n", html && quote ? "</blockquote>" : "",
	    sh->from.name);
	if (html)
		gprintf(mg, m, "</div></body></html>\r\n");
}

static void
put_part_header(struct msggen *mg, struct msg *m, const struct shape *sh,
    const char *type)
{
	gprintf(mg, m, "--%s\r\nContent-Type: %s; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n", sh->boundary, type);
}

static void
put_attachment(struct msggen *mg, struct msg *m, struct rng *r,
    const struct shape *sh)
{
	size_t lines = attach_size(r) / B64_LINE, total = mg->b64len / B64_LINE;
	size_t first = rng_below(r, (uint32_t)(total - lines + 1));
	unsigned t = rng_below(r, sizeof(attach_types) / sizeof(attach_types[0]));

	gprintf(mg, m, "\r\n--%s\r\nContent-Type: %s; name=\"%s\"\r\n"
	    "Content-Disposition: attachment; filename=\"%s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n", sh->boundary,
	    attach_types[t][0], attach_types[t][1], attach_types[t][1]);
	put(mg, m, mg->b64 + first * B64_LINE, lines * B64_LINE);
	gprintf(mg, m, "\r\n--%s--\r\n", sh->boundary);
}

static void
put_body(struct msggen *mg, struct msg *m, struct rng *r, const struct shape *sh,
    const struct iovec *prose, const struct iovec *quote)
{
	if (!sh->attach && !sh->html) {
		put_text(mg, m, sh, prose, quote, 0);
		return;
	}
	if (sh->attach)
		gprintf(mg, m, "This is a multi-part message in MIME format.\r\n\r\n");
	put_part_header(mg, m, sh, "text/plain");
	put_text(mg, m, sh, prose, quote, 0);
	if (sh->attach) {
		put_attachment(mg, m, r, sh);
		return;
	}
	gprintf(mg, m, "\r\n");
	put_part_header(mg, m, sh, "text/html");
	put_text(mg, m, sh, prose, quote, 1);
	gprintf(mg, m, "\r\n--%s--\r\n", sh->boundary);
}

static int
digest(struct msggen *mg, struct msg *m)
{
	unsigned int len = 0;
	int i;

	if (EVP_DigestInit_ex(mg->md, mg->sha1, NULL) != 1)
		return ids_error(-EIO, "libcrypto: SHA-1 init failed");
	for (i = 0; i < m->niov; i++)
		if (EVP_DigestUpdate(mg->md, m->iov[i].iov_base, m->iov[i].iov_len) != 1)
			return ids_error(-EIO, "libcrypto: SHA-1 update failed");
	if (EVP_DigestFinal_ex(mg->md, m->guid, &len) != 1 || len != IDS_GUID_LEN)
		return ids_error(-EIO, "libcrypto: SHA-1 final failed");
	return 0;
}

int
msggen_make(struct msggen *mg, struct rng *r, const struct msgspec *spec,
    struct msg *m)
{
	struct shape sh;
	struct iovec prose, quote;

	memset(m, 0, sizeof(*m));
	memset(&sh, 0, sizeof(sh));
	mg->gluelen = 0;
	mg->overflow = 0;
	mg->serial++;
	make_shape(mg, r, spec, &sh);
	prose = slice(&mg->text, r, body_size(r));
	if (sh.reply)
		quote = slice(&mg->quote, r, 300 + rng_below(r, 4000));
	put_headers(mg, m, r, spec, &sh);
	m->header_size = (uint32_t)m->size;
	put_body(mg, m, r, &sh, &prose, sh.reply ? &quote : NULL);
	if (mg->overflow)
		return ids_error(IDS_ETOOLONG, "message %llu: too long for its buffers",
		    (unsigned long long)mg->serial);
	m->sentdate = day_of(sh.date, sh.zone);
	m->attachment = sh.attach;
	return digest(mg, m);
}
