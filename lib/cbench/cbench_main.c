/* SPDX-License-Identifier: BSD-3-Clause */
/* main() for benchmark programs that only register benchmarks (link cbench_main_dep). */
#include "cbench/cbench.h"

int main(int argc, char **argv);

int
main(int argc, char **argv)
{
	return cbench_main(argc, argv);
}
