#!/usr/bin/env bash
# Option parsing for recipe scripts: source it after declaring the options as
# shell variables with their defaults, e.g.
#     stage=0
#     train_config=conf/train.yaml
#     . utils/parse_options.sh
# Then "--stage 3", "--stage=3" and "--train-config x.yaml" set them. An option
# whose variable was not declared is an error; "--help" prints ${help_message}.
# Parsing stops at the first argument that does not start with "--"; the rest
# stays in "$@".

__po_usage() {
    echo "${help_message:-Usage: $0 [--option value] ...}" >&2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            echo "${help_message:-Usage: $0 [--option value] ...}"
            exit 0 ;;
        --*=*)
            __po_name="${1%%=*}"; __po_value="${1#*=}"; shift ;;
        --*)
            __po_name="$1"
            if [ $# -lt 2 ]; then
                echo "$0: option $1 needs a value" >&2; __po_usage; exit 1
            fi
            __po_value="$2"; shift 2 ;;
        *)
            break ;;
    esac
    __po_name="${__po_name#--}"
    __po_name="${__po_name//-/_}"
    if ! [[ "${__po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "$0: invalid option name --${__po_name}" >&2; __po_usage; exit 1
    fi
    if [ -z "${!__po_name+set}" ]; then
        echo "$0: unknown option --${__po_name}" >&2; __po_usage; exit 1
    fi
    # A boolean option takes only true or false.
    case "${!__po_name}" in
        true|false)
            case "${__po_value}" in
                true|false) ;;
                *) echo "$0: --${__po_name} takes true or false, got '${__po_value}'" >&2; exit 1 ;;
            esac ;;
    esac
    printf -v "${__po_name}" '%s' "${__po_value}"
done
unset __po_name __po_value
true
