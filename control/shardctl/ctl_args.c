/* SPDX-License-Identifier: BSD-3-Clause */
/* shardctl's command line; the rules are in ctl_args.h. */
#include "ctl_args.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

struct flag_def {
	const char *name; /* long name, without "--" */
	char short_name;  /* or 0 */
	bool takes_value;
	const char *scope; /* NULL: global; else the commands it belongs to, '|'-separated */
};

static const struct flag_def flags[CTL_OPT_COUNT] = {
        [CTL_OPT_ENDPOINTS] = {"endpoints", 0, true, NULL},
        [CTL_OPT_SECRET_FILE] = {"secret-file", 0, true, NULL},
        [CTL_OPT_WRITE_OUT] = {"write-out", 'w', true, NULL},
        [CTL_OPT_CONSISTENCY] = {"consistency", 0, true, NULL},
        [CTL_OPT_DIAL_TIMEOUT] = {"dial-timeout", 0, true, NULL},
        [CTL_OPT_COMMAND_TIMEOUT] = {"command-timeout", 0, true, NULL},
        [CTL_OPT_HELP] = {"help", 'h', false, NULL},
        [CTL_OPT_CLUSTER] = {"cluster", 0, false, "endpoint status|endpoint health"},
        [CTL_OPT_PEER_URLS] = {"peer-urls", 0, true, "member add"},
        [CTL_OPT_CLIENT_URLS] = {"client-urls", 0, true, "member add"},
};

const char *
ctl_args_name(enum ctl_opt opt)
{
	assert(opt < CTL_OPT_COUNT);
	assert(flags[opt].name != NULL);
	return flags[opt].name;
}

/* Whether "w0 w1" (w1 may be NULL) is one of scope's '|'-separated commands. */
static bool
in_scope(const char *scope, const char *w0, const char *w1)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "%s%s%s", w0 ? w0 : "", w1 ? " " : "", w1 ? w1 : "");
	size_t len = strlen(cmd);
	for (const char *s = scope; *s;) {
		const char *bar = strchr(s, '|');
		size_t n = bar ? (size_t)(bar - s) : strlen(s);
		if (n == len && memcmp(s, cmd, n) == 0)
			return true;
		s += n + (bar != NULL);
	}
	return false;
}

static int
find_long(const char *name, size_t len)
{
	for (int i = 0; i < CTL_OPT_COUNT; i++)
		if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
			return i;
	return -1;
}

static int
find_short(char c)
{
	for (int i = 0; i < CTL_OPT_COUNT; i++)
		if (flags[i].short_name == c)
			return i;
	return -1;
}

int
ctl_args_parse(int argc, char *const *argv, struct ctl_args *a, char *why, size_t why_len)
{
	assert(argc >= 1);
	assert(why_len > 0);
	memset(a, 0, sizeof(*a));
	bool flags_done = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (flags_done || arg[0] != '-' || arg[1] == '\0') {
			if (a->n_words == CTL_ARGS_WORDS_MAX) {
				snprintf(why, why_len, "more than %d arguments",
				         CTL_ARGS_WORDS_MAX);
				return -1;
			}
			a->words[a->n_words++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			flags_done = true;
			continue;
		}
		int opt;
		const char *value = NULL;
		if (arg[1] == '-') {
			const char *eq = strchr(arg + 2, '=');
			size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
			opt = find_long(arg + 2, len);
			if (opt >= 0 && eq)
				value = eq + 1;
		} else {
			opt = find_short(arg[1]);
			if (opt >= 0 && arg[2])
				value = arg + 2;
		}
		if (opt < 0) {
			snprintf(why, why_len, "unknown flag '%s'; see shardctl --help", arg);
			return -1;
		}
		if (!flags[opt].takes_value && value) {
			snprintf(why, why_len, "flag --%s takes no value ('%s')", flags[opt].name,
			         arg);
			return -1;
		}
		if (flags[opt].takes_value && value == NULL) {
			if (i + 1 >= argc) {
				snprintf(why, why_len, "flag --%s needs a value", flags[opt].name);
				return -1;
			}
			value = argv[++i];
		}
		a->set[opt] = true;
		a->value[opt] = value;
	}
	/* A command's own flags belong to it alone. */
	for (int i = 0; i < CTL_OPT_COUNT; i++) {
		const char *w0 = a->n_words > 0 ? a->words[0] : NULL;
		const char *w1 = a->n_words > 1 ? a->words[1] : NULL;
		if (!a->set[i] || flags[i].scope == NULL || a->set[CTL_OPT_HELP])
			continue;
		if (!in_scope(flags[i].scope, w0, w1)) {
			snprintf(why, why_len, "flag --%s is not a flag of '%s%s%s' (only of %s)",
			         flags[i].name, w0 ? w0 : "", w1 ? " " : "", w1 ? w1 : "",
			         flags[i].scope);
			return -1;
		}
	}
	return 0;
}
