# bash completion for sluice                                   -*- shell-script -*-
_sluice() {
    local cur prev words cword
    _init_completion || return

    local commands="proxy show ca filter record diff export import replay"
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            proxy|show|ca|filter|record|diff|export|import|replay) cmd=${words[i]}; break ;;
        esac
    done

    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi

    case $cmd in
        proxy)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
                -m|--mode) COMPREPLY=($(compgen -W "regular tcp: raw: reverse: upstream: socks5" -- "$cur")); compopt -o nospace; return ;;
                --threads|--grace|--connect-timeout|--header-timeout|--first-byte-timeout|--idle-timeout|--detect-timeout) return ;;
                --record-body-limit|--proxy-auth|--upstream-auth|--cert-cache|--tls-passthrough) return ;;
                --match|--ignore-param|--ignore-form-field|--match-header) return ;;
                --on-miss) COMPREPLY=($(compgen -W "forward 404 502 kill" -- "$cur")); return ;;
                --serve-from) _filedir; return ;;
                --ca-dir) _filedir -d; return ;;
                --ca-cert|--ca-key|--server-ca|--client-cert) _filedir; return ;;
            esac
            COMPREPLY=($(compgen -W "-m --mode -w --write --format --no-compress --threads --pin-threads --grace --connect-timeout --header-timeout --first-byte-timeout --idle-timeout --detect-timeout --record-body-limit --keep-host-header --proxy-auth --upstream-auth --ca-dir --ca-cert --ca-key --ca-ephemeral --cert-cache --insecure --server-ca --client-cert --no-tls-resume --tls-passthrough --serve-from --match --ignore-param --ignore-body --ignore-form-field --match-header --reuse --on-miss --refresh-dates -v --verbose --help" -- "$cur"))
            ;;
        show)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                --detail) COMPREPLY=($(compgen -W "0 1 2 3" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--detail --jsonl --format --compress --no-compress -w --write --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        filter)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                --max-pending) return ;;
                -w|--write) _filedir; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--envelopes --max-pending --format --compress --no-compress -w --write --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        record)
            case $prev in
                --sync) COMPREPLY=($(compgen -W "always interval never" -- "$cur")); return ;;
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                --rotate-size|--rotate-every|--name|--sync-interval) return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--rotate-size --rotate-every --name --sync --sync-interval --tee --format --no-compress --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        diff)
            case $prev in
                --ignore-param|--ignore-header|--ignore-json-path) return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--ignore-param --ignore-host --ignore-body --ignore-header --ignore-json-path --json --all --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        replay)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                -w|--write|--junit|--server-ca|--client-cert) _filedir; return ;;
                --target|-j|--concurrency|--rate|--timeout|--connect-timeout|--retries|--scope|--ignore-header|--ignore-json-path|--record-body-limit) return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--target -j --concurrency --rate --timeout --connect-timeout --retries --as-recorded --check --junit --scope --ignore-header --ignore-json-path -w --write --format --no-compress --record-body-limit --insecure --server-ca --client-cert --no-tls-resume -q --quiet --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        export)
            case $prev in
                --format) COMPREPLY=($(compgen -W "har curl httpie raw" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--format -w --write --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        import)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--format --no-compress -w --write --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        ca)
            case $prev in
                --ca-dir) _filedir -d; return ;;
                -o|--output) _filedir; return ;;
                --format) COMPREPLY=($(compgen -W "pem der p12" -- "$cur")); return ;;
                --password) return ;;
            esac
            local verb="" j
            for ((j = i + 1; j < cword; j++)); do
                case "${words[j]}" in
                    init|path|export|spki|trust-hint) verb=${words[j]}; break ;;
                esac
            done
            if [[ -z $verb ]]; then
                COMPREPLY=($(compgen -W "init path export spki trust-hint --ca-dir --help" -- "$cur"))
            elif [[ $verb == export ]]; then
                COMPREPLY=($(compgen -W "--format -o --output --password --help" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--help" -- "$cur"))
            fi
            ;;
    esac
} &&
    complete -F _sluice sluice
