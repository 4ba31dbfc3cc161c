/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ctl_args: shardctl's command line, in etcdctl's habits. Flags may come before the
 * command, after it or between its words (`shardctl -w json member list` and `shardctl
 * member list -w json` are the same); `--flag=value`, `--flag value`, `-w json` and
 * `-wjson` are the same; the last occurrence of a flag wins; `--` ends the flags, so a
 * value that begins with '-' can follow it. Global flags apply to every command; a
 * command's own flags (`--cluster`, `--peer-urls`) only to the commands that list them.
 * An unknown flag, a flag of another command, or a flag without its value is an error,
 * never ignored.
 *
 * The parser only recognises; the values are checked by the caller (so the messages name
 * the flag and the accepted values in one place).
 */
#ifndef SP_CTL_ARGS_H
#define SP_CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Words of a command and its arguments, the flags taken out. */
#define CTL_ARGS_WORDS_MAX 16

enum ctl_opt {
	CTL_OPT_ENDPOINTS,
	CTL_OPT_SECRET_FILE,
	CTL_OPT_WRITE_OUT,
	CTL_OPT_CONSISTENCY,
	CTL_OPT_DIAL_TIMEOUT,
	CTL_OPT_COMMAND_TIMEOUT,
	CTL_OPT_HELP,
	CTL_OPT_CLUSTER,
	CTL_OPT_PEER_URLS,
	CTL_OPT_CLIENT_URLS,
	CTL_OPT_COUNT
};

struct ctl_args {
	const char *words[CTL_ARGS_WORDS_MAX]; /* the command's words, in order */
	uint32_t n_words;
	bool set[CTL_OPT_COUNT];
	const char *value[CTL_OPT_COUNT]; /* the last value given; NULL for a switch */
};

/*
 * Parses argv[1..argc-1] into a. Returns 0, or -1 with a message in why (a usage error:
 * exit status 2). Pointers in a point into argv. The command, for the check that a
 * command's flag belongs to it, is the first one or two words (`member add`).
 */
int ctl_args_parse(int argc, char *const *argv, struct ctl_args *a, char *why, size_t why_len);

/* The flag's long name without the dashes ("write-out"). This function can't fail. */
const char *ctl_args_name(enum ctl_opt opt);

#endif
