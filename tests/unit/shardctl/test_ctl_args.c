/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardctl's command line: flags before and after the command parse to the same thing;
 * every spelling of a value is the same; unknown flags, another command's flags and a
 * missing value are errors with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_args.h"

#define ARGV_MAX 16

/* Parses a NULL-terminated list of words after "shardctl". */
static int
parse(struct ctl_args *a, char *why, const char *first, ...)
{
	char *argv[ARGV_MAX + 1] = {"shardctl"};
	int argc = 1;
	va_list ap;
	va_start(ap, first);
	for (const char *w = first; w; w = va_arg(ap, const char *)) {
		assert_true(argc < ARGV_MAX);
		argv[argc++] = (char *)w;
	}
	va_end(ap);
	why[0] = '\0';
	return ctl_args_parse(argc, argv, a, why, 256);
}

static void
assert_same(const struct ctl_args *x, const struct ctl_args *y)
{
	assert_int_equal(x->n_words, y->n_words);
	for (uint32_t i = 0; i < x->n_words; i++)
		assert_string_equal(x->words[i], y->words[i]);
	for (int o = 0; o < CTL_OPT_COUNT; o++) {
		assert_int_equal(x->set[o], y->set[o]);
		if (x->value[o] || y->value[o]) {
			assert_non_null(x->value[o]);
			assert_non_null(y->value[o]);
			assert_string_equal(x->value[o], y->value[o]);
		}
	}
}

static void
test_global_flags_before_and_after(void **state)
{
	(void)state;
	struct ctl_args a, b, c;
	char why[256];
	assert_int_equal(parse(&a, why, "-w", "json", "member", "list", NULL), 0);
	assert_int_equal(parse(&b, why, "member", "list", "-w", "json", NULL), 0);
	assert_int_equal(parse(&c, why, "member", "-wjson", "list", NULL), 0);
	assert_same(&a, &b);
	assert_same(&a, &c);
	assert_int_equal(a.n_words, 2);
	assert_string_equal(a.words[1], "list");
	assert_string_equal(a.value[CTL_OPT_WRITE_OUT], "json");

	assert_int_equal(parse(&a, why, "--consistency", "s", "config", "get", "K", NULL), 0);
	assert_int_equal(parse(&b, why, "config", "get", "K", "--consistency=s", NULL), 0);
	assert_same(&a, &b);
	assert_string_equal(a.value[CTL_OPT_CONSISTENCY], "s");

	assert_int_equal(parse(&a, why, "--endpoints=1.2.3.4:5", "--command-timeout", "700",
	                       "endpoint", "status", "--cluster", NULL),
	                 0);
	assert_int_equal(parse(&b, why, "endpoint", "status", "--cluster", "--endpoints",
	                       "1.2.3.4:5", "--command-timeout=700", NULL),
	                 0);
	assert_same(&a, &b);
	assert_true(a.set[CTL_OPT_CLUSTER]);
	assert_null(a.value[CTL_OPT_CLUSTER]);
}

static void
test_command_flags_and_double_dash(void **state)
{
	(void)state;
	struct ctl_args a;
	char why[256];
	assert_int_equal(parse(&a, why, "member", "add", "n4", "--peer-urls", "1.1.1.1:1",
	                       "--client-urls=2.2.2.2:2", NULL),
	                 0);
	assert_int_equal(a.n_words, 3);
	assert_string_equal(a.words[2], "n4");
	assert_string_equal(a.value[CTL_OPT_PEER_URLS], "1.1.1.1:1");
	assert_string_equal(a.value[CTL_OPT_CLIENT_URLS], "2.2.2.2:2");
	/* After "--" a word that begins with '-' is a value; "-" alone is a word. */
	assert_int_equal(parse(&a, why, "config", "set", "k", "--", "-5", NULL), 0);
	assert_int_equal(a.n_words, 4);
	assert_string_equal(a.words[3], "-5");
	assert_int_equal(parse(&a, why, "snapshot", "save", "-", NULL), 0);
	assert_string_equal(a.words[2], "-");
	/* The last occurrence wins. */
	assert_int_equal(parse(&a, why, "-w", "table", "member", "list", "-w", "simple", NULL), 0);
	assert_string_equal(a.value[CTL_OPT_WRITE_OUT], "simple");
}

static void
test_errors_name_the_flag(void **state)
{
	(void)state;
	struct ctl_args a;
	char why[256];
	assert_int_equal(parse(&a, why, "member", "list", "--bogus", NULL), -1);
	assert_non_null(strstr(why, "unknown flag '--bogus'"));
	assert_int_equal(parse(&a, why, "-x", "member", "list", NULL), -1);
	assert_non_null(strstr(why, "unknown flag '-x'"));
	assert_int_equal(parse(&a, why, "member", "list", "--cluster", NULL), -1);
	assert_non_null(strstr(why, "--cluster is not a flag of 'member list'"));
	assert_int_equal(parse(&a, why, "config", "get", "--peer-urls=x", "K", NULL), -1);
	assert_non_null(strstr(why, "--peer-urls"));
	assert_int_equal(parse(&a, why, "member", "list", "-w", NULL), -1);
	assert_non_null(strstr(why, "--write-out needs a value"));
	assert_int_equal(parse(&a, why, "endpoint", "status", "--cluster=yes", NULL), -1);
	assert_non_null(strstr(why, "--cluster takes no value"));
	/* A prefix of a flag is not the flag (getopt would take it; etcdctl does not). */
	assert_int_equal(parse(&a, why, "--end", "x", "member", "list", NULL), -1);
	assert_non_null(strstr(why, "unknown flag '--end'"));
}

static void
test_help_anywhere_and_bounds(void **state)
{
	(void)state;
	struct ctl_args a;
	char why[256];
	assert_int_equal(parse(&a, why, "member", "list", "--cluster", "-h", NULL), 0);
	assert_true(a.set[CTL_OPT_HELP]);
	assert_int_equal(parse(&a, why, NULL), 0);
	assert_int_equal(a.n_words, 0);
	char *argv[CTL_ARGS_WORDS_MAX + 2] = {"shardctl"};
	for (int i = 1; i <= CTL_ARGS_WORDS_MAX + 1; i++)
		argv[i] = "w";
	assert_int_equal(ctl_args_parse(CTL_ARGS_WORDS_MAX + 1, argv, &a, why, sizeof(why)), 0);
	assert_int_equal(a.n_words, CTL_ARGS_WORDS_MAX);
	assert_int_equal(ctl_args_parse(CTL_ARGS_WORDS_MAX + 2, argv, &a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "more than"));
	assert_string_equal(ctl_args_name(CTL_OPT_COMMAND_TIMEOUT), "command-timeout");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_global_flags_before_and_after),
	        cmocka_unit_test(test_command_flags_and_double_dash),
	        cmocka_unit_test(test_errors_name_the_flag),
	        cmocka_unit_test(test_help_anywhere_and_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
