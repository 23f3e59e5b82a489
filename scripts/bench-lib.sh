# shellcheck shell=sh
# Shared by the benchmark scripts (sourced): how much CPU time the host
# took from this machine while a benchmark ran.  On a virtual machine
# (a cloud instance) the hypervisor may run other guests on our CPUs;
# /proc/stat counts that time as "steal".  A benchmark's figures from a
# run with more than a few percent of steal measure the host's load, not
# pvgpu.

# CPU time (clock ticks) of all CPUs: "steal total"
cpu_ticks() {
    awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t }' \
        /proc/stat
}

# Print the steal since cpu_ticks printed $1 $2
steal_report() {
    cpu_ticks | awk -v s0="$1" -v t0="$2" '{
        pct = 0
        if ($2 > t0)
            pct = 100 * ($1 - s0) / ($2 - t0)
        note = ""
        if (pct > 3)
            note = " (more than 3%: the figures are noisy)"
        printf "  host CPU steal during the run: %.1f%% of CPU time%s\n",
               pct, note
    }'
}
