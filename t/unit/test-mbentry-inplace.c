/*
 * test-mbentry-inplace.c - the in-place decoder of N values against the
 * tree decoder it stands in for.  On every record shape it must fill
 * the same entry; it must never accept a value the tree decoder
 * refuses, and whatever it gives up on, ids_mbentry_decode_n() must
 * then report exactly the tree decoder's error.
 *
 * Both decoders are static in mbentry.c, so the test includes its
 * source (as t/fuzz/fuzz-dump.c does with a tool's) and calls each.
 */
#include "../../src/lib/mbentry.c"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "unit.h"

#define ID "2f3c0a53-1b3c-4c43-9d2b-3a9e7bfa0d6c"

enum expect {
	FAST,		/* well formed: the in-place decoder must take it */
	BAD,		/* malformed: the tree decoder refuses it */
	EITHER,		/* generated input: only the properties are checked */
};

static void
assert_same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every field, strings NULL or not, ACLs in order. */
static void
assert_same_entry(const struct ids_mbentry *a, const struct ids_mbentry *b)
{
	size_t i;

	assert_same_str(a->name, b->name);
	assert_same_str(a->uniqueid, b->uniqueid);
	assert_same_str(a->partition, b->partition);
	assert_same_str(a->server, b->server);
	assert_string_equal(a->mbtype, b->mbtype);
	assert_int_equal(a->uidvalidity, b->uidvalidity);
	assert_true(a->createdmodseq == b->createdmodseq);
	assert_true(a->foldermodseq == b->foldermodseq);
	assert_true(a->mtime == b->mtime);
	assert_int_equal(a->nacl, b->nacl);
	for (i = 0; i < a->nacl; i++) {
		assert_string_equal(a->acl[i].id, b->acl[i].id);
		assert_string_equal(a->acl[i].rights, b->acl[i].rights);
	}
	assert_int_equal(a->nhistory, b->nhistory);
	assert_null(a->history);
	assert_null(b->history);
}

static void
assert_empty(const struct ids_mbentry *e)
{
	struct ids_mbentry zero;

	ids_mbentry_init(&zero);
	assert_memory_equal(e, &zero, sizeof(zero));
}

static unsigned long fast_taken, tree_taken;

/*
 * Decodes val with both decoders and through ids_mbentry_decode_n()
 * (into an entry that already holds data), checks that they agree,
 * and returns what the tree decoder returned.
 */
static int
check_value(const char *name, const char *in, size_t len, enum expect want)
{
	struct ids_mbentry tree, fast, pub;
	char treemsg[1100], *val = malloc(len ? len : 1);
	int rt, rf, rp;

	assert_non_null(val);
	memcpy(val, in, len);		/* exactly sized, for ASan */
	ids_mbentry_init(&tree);
	ids_mbentry_init(&fast);
	rt = decode_n_tree(&tree, name, val, len);
	snprintf(treemsg, sizeof(treemsg), "%s", rt < 0 ? ids_errmsg(rt) : "");
	rf = decode_n_inplace(&fast, name, val, len);
	if (rf == 0) {
		fast_taken++;
		if (rt != 0)
			fail_msg("in place took what the tree decoder refuses (%s): %.*s",
			    treemsg, (int)len, in);
		assert_same_entry(&fast, &tree);
	} else {
		assert_int_equal(rf, -1);
		assert_empty(&fast);
	}
	if (rt == 0)
		tree_taken++;
	if (want == FAST && rf != 0)
		fail_msg("in place gave up on a well-formed value (%s): %.*s", treemsg,
		    (int)len, in);
	if (want == BAD && rt == 0)
		fail_msg("the tree decoder took a bad value: %.*s", (int)len, in);
	/* The public decoder, over an entry that holds something already. */
	ids_mbentry_init(&pub);
	pub.name = strdup("user.stale");
	assert_int_equal(ids_acl_set(&pub.acl, &pub.nacl, "stale", "lr"), 0);
	ids_error_clear();
	rp = ids_mbentry_decode_n(&pub, name, val, len);
	assert_int_equal(rp, rt);
	if (rt < 0) {
		assert_string_equal(ids_errmsg(rp), treemsg);
		assert_empty(&pub);
	} else {
		assert_same_entry(&pub, &tree);
	}
	ids_mbentry_release(&pub);
	ids_mbentry_release(&fast);
	ids_mbentry_release(&tree);
	free(val);
	return rt;
}

#define CHECK(val, want) check_value("user.john.Sent", val, sizeof(val) - 1, want)

/* Every shape a writer produces or a reader must take. */
static const char *const good[] = {
	/* live, with ACLs; a legacy folder */
	"%(T el I " ID " P default V 1795000050 C 1 F 7 M 1795000100 "
	    "A %(carol@example.org lrswipkxtecdan anyone lr))",
	"%(T e I " ID " P default V 1700000000 A %(owner lrswipkxtecdan))",
	/* tombstones */
	"%(T edl I " ID " V 1795000050 C 1 M 1795000100)",
	"%(T ed I " ID ")",
	/* Cyrus 3.6's key order, an unknown key, no T */
	"%(I p0o9i8u7y6t5r4e3w2q1a2s3 P default T e V 1795000021 C 1 F 2 "
	    "M 1795000020 A %(dave lrswipkxtecdan) X unknown)",
	"%(I p0o9i8u7y6t5r4e3w2q1a2s3 P default V 1)",
	/* empty and NIL fields */
	"%()",
	"%(A %())",
	"%(A NIL P NIL S NIL I NIL T NIL V NIL C NIL F NIL M NIL)",
	"%(P \"\" S \"\" I \"\")",
	/* name history lists (I values carry them; here unknown, skipped) */
	"%(T e I x H (%(N user\x1fjohn\x1fOld M 1795000000 V 2 T el P default) "
	    "%(N \"example.org\x1duser\x1f" "carol\x1fLists\")) P p)",
	"%(H () T e)",
	/* mbtype flags out of order, all of them, a remote folder */
	"%(T eld I x)",
	"%(T elizrmd I x)",
	"%(T cr I x S imap2.example.org P default)",
	/* every string spelling, escapes and runs of spaces */
	"%(\"T\" \"e\" {1}\r\nI {3}\r\nabc P \"my part\" S \"\" V \"007\" M -5)",
	"%(T e I \"a\\\"b\" P \"de\\fault\" S \"\\\\\")",
	"%(  T  e   I {3+}\nx y )",
	"%(P \"a partition name well over thirty-two bytes long\" I x)",
	/* repeated keys: the first one counts, the others are only read */
	"%(T e T q I x I y V 1 V x A %(a l) A (x) M 1 M NIL)",
	/* repeated ACL ids replace the rights in place; odd ids */
	"%(A %(a lr b l a lrs \"\" x))",
	"%(A %({5}\r\ngroup \"l r\" \"we\\\"ird\" lrs \"NIL\" \"\"))",
	/* numbers at their limits */
	"%(V 4294967295 C 18446744073709551615 F 0 M -9223372036854775808)",
	"%(V 00000000000000000000001 M 9223372036854775807)",
	/* unknown keys may hold anything well formed */
	"%(Z ((((((x)))))) T e)",
	"%(Z %(k (1 NIL \"\") NIL NIL) T e)",
};

/* Malformed values, some with several faults (the tree's order wins). */
static const char *const bad[] = {
	"", "NIL", "e", "(a b)", "()", "%(a b", "%(T e) x", " %(T e)", "%(T e)\n",
	"%(T e I)", "%(T e I x", "%(T\te)", "%(T e\tI x)",
	"%(T q)", "%(T \"\")", "%(T edd)", "%(T edddddddddddddd)", "%(T el i)",
	"%(T (e))", "%(T %(e x))",
	"%(I (x))", "%(P %(a b))", "%(S (a))",
	"%(V x)", "%(V 4294967296)", "%(V -1)", "%(V \"\")", "%(V ())", "%(V 1.0)",
	"%(C -1)", "%(C 18446744073709551616)", "%(F 1x)", "%(F (1))",
	"%(M 9223372036854775808)", "%(M -)", "%(M (1))", "%(M \"\")",
	"%(A (x))", "%(A x)", "%(A %(x NIL))", "%(A %(x (l)))", "%(A %(x %(y z)))",
	"%(A %(x lr y NIL))",
	"%(V x T q)", "%(A %(x NIL) T q)", "%(I (y) A %(x NIL))",
	"%(V x A %(a", "%(T q Z (", "%(T e I x Z %(a))", "%(T e Z %x)",
	"%(%(a b) c)", "%((a) b)", "%(T \"e)", "%(T {5}\r\ne)", "%(T {2}e)",
};

static void
test_shapes(void **state)
{
	static const char nul_z[] = "%(Z {3}\r\na\0b T e)";	/* only unknown keys may */
	static const char nul_t[] = "%(T {2}\r\ne\0)";
	static const char nul_i[] = "%(I {3}\r\na\0b)";
	static const char nul_p[] = "%(P \"a\0b\")";
	static const char nul_acl[] = "%(A %(x {3}\r\nl\0r))";
	static const char nul_key[] = "%(\"T\0\" e)";
	static const char nul_id[] = "%(A %(\"a\0b\" lr))";
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(check_value("user.john.Sent", good[i], strlen(good[i]),
		    FAST), 0);
	assert_int_equal(CHECK(nul_z, FAST), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check_value("user.john.Sent", bad[i], strlen(bad[i]), BAD),
		    IDS_ECORRUPT);
	assert_int_equal(CHECK(nul_t, BAD), IDS_ECORRUPT);
	assert_int_equal(CHECK(nul_i, BAD), IDS_ECORRUPT);
	assert_int_equal(CHECK(nul_p, BAD), IDS_ECORRUPT);
	assert_int_equal(CHECK(nul_acl, BAD), IDS_ECORRUPT);
	assert_int_equal(CHECK(nul_key, BAD), IDS_ECORRUPT);
	assert_int_equal(CHECK(nul_id, BAD), IDS_ECORRUPT);
}

/* The values fields decode to, beyond agreeing with the tree decoder. */
static void
test_fields(void **state)
{
	static const char dup[] = "%(T e T q I x I y V 1 V x A %(a lr b l a lrs))";
	static const char esc[] = "%(I \"a\\\"b\" P \"de\\fault\" T eld)";
	struct ids_mbentry e;

	(void)state;
	ids_mbentry_init(&e);
	assert_int_equal(decode_n_inplace(&e, "user.x", dup, sizeof(dup) - 1), 0);
	assert_string_equal(e.mbtype, "e");
	assert_string_equal(e.uniqueid, "x");
	assert_int_equal(e.uidvalidity, 1);
	assert_int_equal(e.nacl, 2);
	assert_string_equal(e.acl[0].id, "a");
	assert_string_equal(e.acl[0].rights, "lrs");
	assert_string_equal(e.acl[1].id, "b");
	ids_mbentry_release(&e);
	assert_int_equal(decode_n_inplace(&e, "user.x", esc, sizeof(esc) - 1), 0);
	assert_string_equal(e.uniqueid, "a\"b");
	assert_string_equal(e.partition, "default");
	assert_string_equal(e.mbtype, "edl");
	assert_string_equal(e.name, "user.x");
	assert_null(e.server);
	ids_mbentry_release(&e);
	assert_int_equal(decode_n_inplace(&e, "user.x", "%()", 3), 0);
	assert_string_equal(e.mbtype, "e");
	assert_null(e.partition);
	assert_null(e.acl);
	ids_mbentry_release(&e);
}

/* What ids_mbentry_encode_n() writes comes back through the fast path. */
static void
test_encoded(void **state)
{
	static const char *const names[] = {
		"user.john.Sent", "example.org!user.carol.Mailing Lists",
		"DELETED.user.dave.Temp.6B033B15", "user.john^doe", "shared.news",
		"example.com!DELETED.shared.5F", "user.a b.\"q\" (x)",
	};
	static const char *const types[] = { "e", "el", "ed", "edl", "er", "emrzil", "n" };
	struct ids_buf b = IDS_BUF_INIT;
	struct ids_mbentry e, back;
	char id[32];
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
			ids_mbentry_init(&e);
			e.name = strdup(names[i]);
			snprintf(id, sizeof(id), "%016zx", i * 100 + k);
			e.uniqueid = strdup(id);
			strcpy(e.mbtype, types[k]);
			if (types[k][1] != 'd')
				e.partition = strdup(k % 2 ? "default" : "part two");
			if (types[k][1] == 'r')
				e.server = strdup("imap2.example.org");
			e.uidvalidity = (uint32_t)(1795000000 + k);
			e.createdmodseq = k;
			e.foldermodseq = 7 * k;
			e.mtime = k % 3 == 2 ? -1 : (int64_t)(1795000100 + i);
			if (k % 3 != 1) {
				assert_int_equal(ids_acl_set(&e.acl, &e.nacl, "anyone", "lr"), 0);
				assert_int_equal(ids_acl_set(&e.acl, &e.nacl, "group:a b", ""), 0);
				assert_int_equal(ids_acl_set(&e.acl, &e.nacl, "x\\y", "lrs"), 0);
			}
			ids_buf_reset(&b);
			assert_int_equal(ids_mbentry_encode_n(&e, &b), 0);
			assert_int_equal(check_value(e.name, b.s, b.len, FAST), 0);
			ids_mbentry_init(&back);
			assert_int_equal(decode_n_inplace(&back, e.name, b.s, b.len), 0);
			assert_same_entry(&back, &e);
			ids_mbentry_release(&back);
			ids_mbentry_release(&e);
		}
	}
	ids_buf_release(&b);
}

static uint32_t
next_rand(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 8;
}

/* Random damage to a value: overwrites, insertions, deletions, cuts. */
static size_t
mutate(char *buf, size_t len, size_t size, uint32_t *seed)
{
	static const char bytes[] = "(){}\"%\\ NIL0123456789\r\n\t+-TIPSVCFMAe\0";
	int n = 1 + (int)(next_rand(seed) % 3);

	while (n-- > 0) {
		size_t at = len ? next_rand(seed) % len : 0;
		char c = next_rand(seed) % 4 ? bytes[next_rand(seed) % (sizeof(bytes) - 1)] :
		    (char)next_rand(seed);

		switch (next_rand(seed) % 4) {
		case 0:
			if (len)
				buf[at] = c;
			break;
		case 1:
			if (len + 1 < size) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = c;
				len++;
			}
			break;
		case 2:
			if (len) {
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
			break;
		default:
			len = at;
			break;
		}
	}
	return len;
}

/* Damaged shapes: the two decoders agree on each. */
static void
test_mutations(void **state)
{
	char buf[512];
	uint32_t seed = 20261122;
	size_t i, k, len;

	(void)state;
	fast_taken = tree_taken = 0;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		for (k = 0; k < 3000; k++) {
			len = strlen(good[i]);
			memcpy(buf, good[i], len);
			len = mutate(buf, len, sizeof(buf), &seed);
			check_value("user.john.Sent", buf, len, EITHER);
		}
	}
	/* Both outcomes are reached, and the fast path takes all good ones. */
	assert_true(tree_taken > 1000);
	assert_int_equal(fast_taken, tree_taken);
}

static size_t
read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, size, f);
	fclose(f);
	return n;
}

/*
 * Every file of every fuzz corpus, from each '%' on (the record values
 * inside cyrus.header files and dumps), whole and cut short.
 */
static void
test_corpus(void **state)
{
	static const char *const targets[] = { "dlist", "header", "dump", "name" };
	static char buf[1 << 16];
	const char *slash = strrchr(__FILE__, '/');
	int dirlen = slash ? (int)(slash + 1 - __FILE__) : 0;
	char dir[4200], path[8400];
	struct dirent *de;
	size_t i, n, at, cut, files = 0;
	DIR *d;

	(void)state;
	fast_taken = tree_taken = 0;
	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		snprintf(dir, sizeof(dir), "%.*s../fuzz/corpus/%s", dirlen, __FILE__,
		    targets[i]);
		if ((d = opendir(dir)) == NULL)
			fail_msg("%s: cannot open (run from the top of the tree)", dir);
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			n = read_file(path, buf, sizeof(buf));
			files++;
			check_value("user.john", buf, n, EITHER);
			for (at = 0; at < n; at++) {
				if (buf[at] != '%')
					continue;
				for (cut = at; cut <= n && cut - at < 400; cut++)
					check_value("user.john", buf + at, cut - at, EITHER);
				check_value("user.john", buf + at, n - at, EITHER);
			}
		}
		closedir(d);
	}
	assert_true(files >= 10);
	assert_true(tree_taken > 0);
	assert_int_equal(fast_taken, tree_taken);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_encoded),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_corpus),
	};

	return unit_run(tests);
}
