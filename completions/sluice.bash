# bash completion for sluice                                   -*- shell-script -*-
_sluice() {
    local cur prev words cword
    _init_completion || return

    local commands="proxy show ca filter record diff export import replay step transform redact"
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case "${words[i]}" in
            proxy|show|ca|filter|record|diff|export|import|replay|step|transform|redact) cmd=${words[i]}; break ;;
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
                -p|--listen-port|--listen-host) return ;;
                --threads|--grace|--max-connections|--connect-timeout|--header-timeout|--first-byte-timeout|--idle-timeout|--detect-timeout) return ;;
                --record-body-limit|--record-memory|--proxy-auth|--upstream-auth|--cert-cache|--tls-passthrough|--allow-hosts|--ignore-hosts) return ;;
                --safety) COMPREPLY=($(compgen -W "default destructive-sql destructive-os-command" -- "$cur")); _filedir json; return ;;
                --scope-filter) return ;;
                --match|--ignore-param|--ignore-form-field|--match-header) return ;;
                --on-miss) COMPREPLY=($(compgen -W "forward 404 502 kill" -- "$cur")); return ;;
                --serve-from) _filedir; return ;;
                --step|--step-timeout) return ;;
                -H|--modify-headers|-B|--modify-body|-M|--map-remote|--map-local|--block-list) return ;;
                --rules) _filedir json; return ;;
                --set) COMPREPLY=($(compgen -W "modify_headers= modify_body= map_local= block_list=" -- "$cur")); compopt -o nospace; return ;;
                --step-on-error) COMPREPLY=($(compgen -W "pass kill" -- "$cur")); return ;;
                --ca-dir) _filedir -d; return ;;
                --ca-cert|--ca-key|--server-ca|--client-cert) _filedir; return ;;
            esac
            COMPREPLY=($(compgen -W "-m --mode -p --listen-port --listen-host -w --write --format --compress --no-compress --threads --pin-threads --grace --max-connections --connect-timeout --header-timeout --first-byte-timeout --idle-timeout --detect-timeout --record-body-limit --record-memory --keep-host-header --proxy-auth --upstream-auth --ca-dir --ca-cert --ca-key --ca-ephemeral --cert-cache --insecure --server-ca --client-cert --no-tls-resume --tls-passthrough --allow-hosts --ignore-hosts --step --step-timeout --step-on-error -H --modify-headers -B --modify-body -M --map-remote --map-local --block-list --rules --set --redact --safety --scope-filter --serve-from --match --ignore-param --ignore-body --ignore-form-field --match-header --reuse --on-miss --refresh-dates -v --verbose --help" -- "$cur"))
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
                return
            fi
            # The first word after the options is the expression: its operators, never ~user names or
            # files (bash would expand a leading ~ to home directories).
            local args=0 k
            for ((k = i + 1; k < cword; k++)); do
                case "${words[k]}" in
                    --max-pending|--format|-w|--write) ((k++)) ;;
                    -*) ;;
                    *) ((args++)) ;;
                esac
            done
            if ((args == 0)); then
                # Escaped: compgen expands its word list, and ~root is a home directory.
                local ops='\~a \~all \~anomaly \~b \~bq \~bs \~c \~d \~dst \~e \~grpc \~h \~hq \~hs \~http \~m \~proto \~q \~replay \~s \~src \~t \~tag \~tcp \~tq \~ts \~u \~variant \~websocket'
                COMPREPLY=($(compgen -W "$ops" -- "$cur"))
                compopt -o nospace 2>/dev/null
                [[ ${#COMPREPLY[@]} -eq 1 ]] && COMPREPLY[0]+=" "
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
                COMPREPLY=($(compgen -W "--rotate-size --rotate-every --name --sync --sync-interval --tee --format --compress --no-compress --help" -- "$cur"))
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
                --target|-j|--concurrency|--rate|--timeout|--connect-timeout|--retries|--scope|--allow-hosts|--ignore-hosts|--ignore-header|--ignore-json-path|--record-body-limit) return ;;
                --safety) COMPREPLY=($(compgen -W "default destructive-sql destructive-os-command" -- "$cur")); _filedir json; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--target -j --concurrency --rate --timeout --connect-timeout --retries --as-recorded --check --junit --scope --allow-hosts --ignore-hosts --safety --ignore-header --ignore-json-path -w --write --format --compress --no-compress --record-body-limit --insecure --server-ca --client-cert --no-tls-resume -q --quiet --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        export)
            case $prev in
                --format) COMPREPLY=($(compgen -W "har mitmproxy curl httpie raw" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--format -w --write --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        step)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
                --step-timeout) return ;;
                --step-on-error) COMPREPLY=($(compgen -W "pass kill" -- "$cur")); return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--step-timeout --step-on-error --format --compress --no-compress -w --write --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        transform)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
                -H|--modify-headers|-B|--modify-body|-M|--map-remote|--map-local|--block-list) return ;;
                --rules) _filedir json; return ;;
                --set) COMPREPLY=($(compgen -W "modify_headers= modify_body= map_local= block_list=" -- "$cur")); compopt -o nospace; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "-H --modify-headers -B --modify-body -M --map-remote --map-local --block-list --rules --set --format --compress --no-compress -w --write --help" -- "$cur"))
            else
                _filedir
            fi
            ;;
        redact)
            case $prev in
                --format) COMPREPLY=($(compgen -W "jsonl cbor" -- "$cur")); return ;;
                -w|--write) _filedir; return ;;
                -p|--policy) COMPREPLY=($(compgen -W "default credentials pii private_key password jwt bearer authorization cookie api_key email credit_card phone" -- "$cur")); _filedir json; return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "-p --policy --format --compress --no-compress -w --write --help" -- "$cur"))
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
                COMPREPLY=($(compgen -W "--format --compress --no-compress -w --write --help" -- "$cur"))
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
                COMPREPLY=($(compgen -W "--format -o --output --password --ca-dir --help" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--ca-dir --help" -- "$cur"))
            fi
            ;;
    esac
} &&
    complete -F _sluice sluice
