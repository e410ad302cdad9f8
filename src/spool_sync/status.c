/*
 * status.c - spool_sync -s (status.h): the findings the client stored
 * in $configdirectory/sync/findings, as text or JSON lines.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "error.h"
#include "sync/findings.h"
#include "tool.h"
#include "status.h"

static const char *
str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static json_int_t
num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* One finding as a line of text. */
static void
print_text(json_t *o, FILE *out)
{
	char when[32], pbuf[256], nbuf[256];
	time_t t = (time_t)num(o, "time");
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
	    &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)t);
	fprintf(out, "%s %s %s: %s: %s (%s)", when, str(o, "direction"),
	    tool_printable(str(o, "peer"), pbuf, sizeof(pbuf)), str(o, "kind"),
	    tool_printable(str(o, "mailbox"), nbuf, sizeof(nbuf)), str(o, "uniqueid"));
	if (num(o, "uid") != 0) {
		fprintf(out, ": the %s message of uid %lld", str(o, "side"), (long long)num(o, "uid"));
		if (num(o, "newuid") != 0)
			fprintf(out, ", now uid %lld", (long long)num(o, "newuid"));
		fprintf(out, ", GUID %s", str(o, "guid"));
		if (*str(o, "otherguid"))
			fprintf(out, " (the other side's: %s)", str(o, "otherguid"));
	} else {
		fprintf(out, ": the %s folder, copied to the other side", str(o, "side"));
		if (*str(o, "newname"))
			fprintf(out, " as %s", tool_printable(str(o, "newname"), nbuf, sizeof(nbuf)));
	}
	fputc('\n', out);
}

int
status_print(const struct ids_config *cfg, int json, FILE *out)
{
	char path[PATH_MAX], *line = NULL;
	size_t cap = 0, n = 0, shown = 0;
	ssize_t len;
	FILE *f;
	int rc = IDS_EXIT_OK, r;

	if ((r = ids_sync_findings_path(cfg, path, sizeof(path))) < 0)
		return tool_error(r, "findings"), IDS_EXIT_FAIL;
	if ((f = fopen(path, "re")) == NULL) {
		if (errno != ENOENT)
			return tool_error(-errno, path), IDS_EXIT_FAIL;
		if (!json)
			fprintf(out, "findings: none\n");
		return IDS_EXIT_OK;
	}
	if (!json)
		fprintf(out, "findings:\n");
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *o;
		int torn = line[len - 1] != '\n';

		n++;
		if (!torn)
			line[--len] = '\0';
		if (len == 0)
			continue;
		o = json_loads(line, 0, NULL);
		if (o == NULL || !json_is_object(o) || json_object_get(o, "kind") == NULL) {
			json_decref(o);
			if (torn)
				continue;	/* the end of an append a crash cut short */
			fprintf(stderr, "spool_sync: %s: line %zu: not a finding\n", path, n);
			rc = IDS_EXIT_FAIL;
			continue;
		}
		if (json) {
			char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

			if (s != NULL)
				fprintf(out, "%s\n", s);
			free(s);
		} else {
			fputs("  ", out);
			print_text(o, out);
		}
		shown++;
		json_decref(o);
	}
	if (ferror(f))
		rc = (tool_error(-EIO, path), IDS_EXIT_FAIL);
	fclose(f);
	free(line);
	if (!json && shown == 0)
		fprintf(out, "  none\n");
	return rc;
}
