# Arguments of pvgpu's scripts, sourced by each before it does anything:
# the help a script prints is the comment block at its top.
#
# Copyright (c) 2026 pvgpu authors
# SPDX-License-Identifier: GPL-2.0-or-later

usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }

# want_help ARG: for -h or --help, print the usage and exit
want_help() {
    case "${1-}" in
    -h|--help) usage; exit 0 ;;
    esac
}

# no_args "$@": for a script that takes no arguments but -h/--help:
# anything else is refused (status 2)
no_args() {
    want_help "${1-}"
    if [ $# -gt 0 ]; then
        echo "$0: unknown argument '$1'; try --help" >&2
        exit 2
    fi
}
