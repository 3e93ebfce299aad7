# fish completion for sluice
set -l commands proxy show ca filter record diff export import replay step
complete -c sluice -f
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a proxy -d 'Listen, forward and record every connection'
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a show -d 'Print or convert a stream'
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -l help -d 'Show help'
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -l version -d 'Print the version'

# proxy
complete -c sluice -n "__fish_seen_subcommand_from proxy" -s m -l mode -x -a 'regular tcp: raw: reverse: upstream: socks5' -d 'Listener MODE[:DATA][@[HOST:]PORT]'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -s p -l listen-port -x -d 'Port of modes that name none'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l listen-host -x -d 'Address of modes that name none'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -s w -l write -r -F -d 'Write the stream to PATH'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l format -x -a 'jsonl cbor' -d 'Stream encoding'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l compress -d 'zstd-compress the stream (default for *.zst)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l no-compress -d 'Write without zstd'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l threads -x -d 'I/O threads'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l pin-threads -d 'Pin each I/O thread to a CPU of its own'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l grace -x -d 'Seconds to finish on shutdown'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l max-connections -x -d 'Open client connections at most'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l connect-timeout -x -d 'Seconds to connect to a server'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l header-timeout -x -d 'Seconds for a request head (then 408)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l first-byte-timeout -x -d 'Seconds for a server to answer (then 504)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l idle-timeout -x -d 'Seconds without a byte before closing'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l detect-timeout -x -d 'Seconds a silent tunnel client waits (0.5)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l record-body-limit -x -d 'Body bytes recorded per message (16MiB)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l keep-host-header -d 'Reverse mode: keep the client Host header'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l proxy-auth -x -d 'USER:PASS clients must present'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l upstream-auth -x -d 'USER:PASS for the upstream proxy'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l ca-dir -r -a '(__fish_complete_directories)' -d 'CA directory'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l ca-cert -r -F -d 'CA certificate to sign with (PEM)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l ca-key -r -F -d 'Private key of --ca-cert (PEM)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l ca-ephemeral -d 'Sign with a throwaway in-memory CA'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l cert-cache -x -d 'Leaf certificates kept (1024)'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l insecure -d 'Do not verify server certificates'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l server-ca -r -F -d 'Also trust these CA certificates for servers'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l client-cert -r -F -d 'FILE[:HOST_PATTERN] client certificate'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l no-tls-resume -d 'Full TLS handshake on every server connection'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l tls-passthrough -x -d 'Tunnel matching hosts without interception'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l step -x -d 'Run COMMAND as a step program'
complete -c sluice -n "__fish_seen_subcommand_from proxy step" -l step-timeout -x -d 'Seconds a step may take to answer'
complete -c sluice -n "__fish_seen_subcommand_from proxy step" -l step-on-error -x -a 'pass kill' -d 'What units in flight get when a step fails'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l serve-from -r -d 'Answer requests from this capture'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l match -x -d 'Request parts that must match'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l ignore-param -x -d 'Query parameter left out of matching'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l ignore-body -d 'Match whatever the request body'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l ignore-form-field -x -d 'Form field left out of matching'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l match-header -x -d 'Request header that must match'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l reuse -d 'Answer repeats with the last recorded response'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l on-miss -x -a 'forward 404 502 kill' -d 'Answer when nothing matches'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -l refresh-dates -d 'Move recorded dates to now'
complete -c sluice -n "__fish_seen_subcommand_from proxy" -s v -l verbose -d 'Log every event and command'

# show
complete -c sluice -n "__fish_seen_subcommand_from show" -F
complete -c sluice -n "__fish_seen_subcommand_from show" -l detail -x -a '0 1 2 3' -d 'Detail level'
complete -c sluice -n "__fish_seen_subcommand_from show" -l jsonl -d 'Write plain uncompressed JSONL'
complete -c sluice -n "__fish_seen_subcommand_from show" -l format -x -a 'jsonl cbor' -d 'Write the stream in this encoding'
complete -c sluice -n "__fish_seen_subcommand_from show" -l compress -d 'zstd-compress the written stream'
complete -c sluice -n "__fish_seen_subcommand_from show" -l no-compress -d 'Write the stream uncompressed'
complete -c sluice -n "__fish_seen_subcommand_from show" -s w -l write -r -F -d 'Write to PATH'

# filter
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a filter -d 'Pass the flows that match a filter expression'
complete -c sluice -n "__fish_seen_subcommand_from filter" -F
complete -c sluice -n "__fish_seen_subcommand_from filter" -l envelopes -d 'Judge each envelope on its own'
complete -c sluice -n "__fish_seen_subcommand_from filter" -l max-pending -x -d 'Undecided flows held at once (10000)'
complete -c sluice -n "__fish_seen_subcommand_from filter" -l format -x -a 'jsonl cbor' -d 'Write the stream in this encoding'
complete -c sluice -n "__fish_seen_subcommand_from filter" -l compress -d 'zstd-compress the output'
complete -c sluice -n "__fish_seen_subcommand_from filter" -l no-compress -d 'Write the output uncompressed'
complete -c sluice -n "__fish_seen_subcommand_from filter" -s w -l write -r -F -d 'Write to PATH'

# record
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a record -d 'Write a stream durably, rotating segments'
complete -c sluice -n "__fish_seen_subcommand_from record" -F
complete -c sluice -n "__fish_seen_subcommand_from record" -l rotate-size -x -d 'New segment past this size (256MiB)'
complete -c sluice -n "__fish_seen_subcommand_from record" -l rotate-every -x -d 'New segment this often (1h)'
complete -c sluice -n "__fish_seen_subcommand_from record" -l name -x -d 'strftime pattern of segment names'
complete -c sluice -n "__fish_seen_subcommand_from record" -l sync -x -a 'always interval never' -d 'When to sync'
complete -c sluice -n "__fish_seen_subcommand_from record" -l sync-interval -x -d 'Seconds between syncs (1)'
complete -c sluice -n "__fish_seen_subcommand_from record" -l tee -d 'Also pass the stream to standard output'
complete -c sluice -n "__fish_seen_subcommand_from record" -l format -x -a 'jsonl cbor' -d 'Write this encoding'
complete -c sluice -n "__fish_seen_subcommand_from record" -l compress -d 'zstd-compress the stream (default for *.zst)'
complete -c sluice -n "__fish_seen_subcommand_from record" -l no-compress -d 'Write uncompressed'

# diff
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a diff -d 'Compare the HTTP exchanges of two captures'
complete -c sluice -n "__fish_seen_subcommand_from diff" -F
complete -c sluice -n "__fish_seen_subcommand_from diff" -l ignore-param -x -d 'Query parameter left out of pairing'
complete -c sluice -n "__fish_seen_subcommand_from diff" -l ignore-host -d 'Pair whatever the host'
complete -c sluice -n "__fish_seen_subcommand_from diff" -l ignore-body -d 'Pair whatever the request body'
complete -c sluice -n "__fish_seen_subcommand_from diff" -l ignore-header -x -d 'Response header not compared'
complete -c sluice -n "__fish_seen_subcommand_from diff" -l ignore-json-path -x -d 'JSON body path not compared'
complete -c sluice -n "__fish_seen_subcommand_from diff" -l json -d 'Write the report as JSON'
complete -c sluice -n "__fish_seen_subcommand_from diff" -l all -d 'Also list the same flows'

# export, import
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a export -d 'Write exchanges as HAR, curl, HTTPie or raw'
complete -c sluice -n "__fish_seen_subcommand_from export" -F
complete -c sluice -n "__fish_seen_subcommand_from export" -l format -x -a 'har curl httpie raw' -d 'Output format'
complete -c sluice -n "__fish_seen_subcommand_from export" -s w -l write -r -F -d 'Write to PATH'
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a import -d 'Turn a HAR file into a stream'
complete -c sluice -n "__fish_seen_subcommand_from import" -F
complete -c sluice -n "__fish_seen_subcommand_from import" -l format -x -a 'jsonl cbor' -d 'Stream encoding'
complete -c sluice -n "__fish_seen_subcommand_from import" -l compress -d 'zstd-compress the stream (default for *.zst)'
complete -c sluice -n "__fish_seen_subcommand_from import" -l no-compress -d 'Write the stream uncompressed'
complete -c sluice -n "__fish_seen_subcommand_from import" -s w -l write -r -F -d 'Write to PATH'

# ca
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a ca -d 'The local certificate authority'
complete -c sluice -n "__fish_seen_subcommand_from ca; and not __fish_seen_subcommand_from init path export spki trust-hint" -a 'init path export spki trust-hint' -d 'CA action'
complete -c sluice -n "__fish_seen_subcommand_from ca" -l ca-dir -r -a '(__fish_complete_directories)' -d 'CA directory'
complete -c sluice -n "__fish_seen_subcommand_from export" -l format -x -a 'pem der p12' -d 'Certificate format'
complete -c sluice -n "__fish_seen_subcommand_from export" -s o -l output -r -F -d 'Write to PATH'
complete -c sluice -n "__fish_seen_subcommand_from export" -l password -x -d 'p12 password'

# replay
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a replay -d 'Send the requests of a capture again'
complete -c sluice -n "__fish_seen_subcommand_from replay" -F
complete -c sluice -n "__fish_seen_subcommand_from replay" -l target -x -d 'Send every request to this origin'
complete -c sluice -n "__fish_seen_subcommand_from replay" -s j -l concurrency -x -d 'Requests in flight at once'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l rate -x -d 'Requests started per second at most'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l timeout -x -d 'Seconds an exchange may take'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l connect-timeout -x -d 'Seconds to connect'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l retries -x -d 'Tries again after a failure'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l as-recorded -d 'Send the recorded bytes exactly'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l check -d 'Compare the new responses with the recorded ones'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l junit -r -d 'Write a JUnit XML report'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l scope -x -d 'Only send to matching hosts'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l ignore-header -x -d 'Response header not compared'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l ignore-json-path -x -d 'JSON body path not compared'
complete -c sluice -n "__fish_seen_subcommand_from replay" -s w -l write -r -d 'Write the new exchanges to PATH'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l format -x -a 'jsonl cbor' -d 'Stream encoding'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l compress -d 'zstd-compress the stream (default for *.zst)'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l no-compress -d 'Write uncompressed'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l record-body-limit -x -d 'Body bytes recorded per message'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l insecure -d 'Do not verify servers'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l server-ca -r -d 'Also trust this CA'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l client-cert -r -d 'Client certificate FILE[:PATTERN]'
complete -c sluice -n "__fish_seen_subcommand_from replay" -l no-tls-resume -d 'Full TLS handshake on every server connection'
complete -c sluice -n "__fish_seen_subcommand_from replay" -s q -l quiet -d 'No progress or report'

# step
complete -c sluice -n "not __fish_seen_subcommand_from $commands" -a step -d 'Run a step program over a recorded stream'
complete -c sluice -n "__fish_seen_subcommand_from step" -F
complete -c sluice -n "__fish_seen_subcommand_from step" -l format -x -a 'jsonl cbor' -d 'Stream encoding'
complete -c sluice -n "__fish_seen_subcommand_from step" -l compress -d 'zstd-compress the stream (default for *.zst)'
complete -c sluice -n "__fish_seen_subcommand_from step" -l no-compress -d 'Write the stream uncompressed'
complete -c sluice -n "__fish_seen_subcommand_from step" -s w -l write -r -F -d 'Write to PATH'
