# SPDX-License-Identifier: BSD-3-Clause
# Bar chart of bench/compare.sh's results: requests per second per server core.
#   gnuplot -e "datafile='results.dat'; outfile='compare.png'" bench/plot.gp
# results.dat: one line per run, "label" requests_per_second ('#' lines are comments).
if (!exists("datafile")) datafile = 'results.dat'
if (!exists("outfile")) outfile = 'compare.png'
set terminal pngcairo size 1200,700 noenhanced font "sans,10"
set output outfile
set title "Requests per second, one server core (bench/compare.sh)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.8
set ylabel "requests/s (log scale)"
set logscale y
set yrange [1000:*]
set grid ytics
set xtics rotate by -30 left
set bmargin 10
set rmargin 12
unset key
plot datafile using 2:xtic(1) linecolor rgb "#3070b0", \
     '' using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.8 notitle
