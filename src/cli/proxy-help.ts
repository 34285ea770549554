import { EXIT_INTERNAL_ERROR } from './last-resort.js';

/** `wstap proxy --help`: every option, in the order a user reads them. */
export const PROXY_HELP = `Usage: wstap proxy --target URL [options]

Relays every connection to --target unchanged and records what it sees.

Options:
  --target URL          where to forward: http://, https://, ws://, wss://,
                        or unix:/path/app.sock (an app on a unix socket)
                        (with --tcp: HOST:PORT, tcp://HOST:PORT, https://HOST:PORT
                        for TLS, or unix:/path)                       [required]
  --listen [HOST:]PORT|unix:PATH
                        where to listen: a TCP address or a unix socket file
                        (created mode 0660, removed at exit)  [127.0.0.1:8066]
  --tls-cert FILE       accept TLS with this certificate (PEM; with --tls-key),
                        for nginx's proxy_pass https://
  --tls-key FILE        the certificate's private key (PEM)
  --tcp                 raw TCP relay: no HTTP parsing, close evidence only
  --capture FILE        write every event to FILE, a new file (JSON lines,
                        mode 0600); an existing FILE is refused without --force.
                        Without it, the UI keeps its session in a private
                        temporary file and prints its path at exit
  --har FILE            at exit, write the session as a HAR file (see wstap export);
                        with --rotate, from the files --keep kept
  --payloads MODE       none or preview: with --har, each message's first
                        --preview-bytes bytes (a longer one is marked with
                        _size), or sizes only                      [preview]
  --no-redact           with --har: keep secrets (redacted by default)
  --rotate SIZE         with --capture: start a new file before one passes SIZE
                        (e.g. 10M, 512K, 1G): FILE, FILE.1, FILE.2, ...
  --keep N              with --rotate: keep the newest N files, delete older ones
  --min-free SIZE       pause the capture (relaying continues) while the disk
                        holding it has less free space; 0 turns it off
                                     [the smaller of 1G and 5 % of the disk]
  --force               overwrite an existing capture or HAR file (and delete
                        an earlier rotated capture's FILE.1, FILE.2, ...)
  --preview-bytes N     payload bytes kept per frame and message          [256]
  --drain SECONDS       on Ctrl-C, let live connections finish first        [0]
  --head-timeout SECONDS
                        a client that has not sent a whole request head by then
                        is answered 408 (slowloris); 0 turns it off      [60]
                        Under TLS its handshake must be done by then too.
  --connect-timeout SECONDS
                        give up connecting to the target (TCP connect and TLS
                        handshake) after this long: 502 (or an RST with --tcp),
                        as nginx's proxy_connect_timeout; 0 turns it off  [60]
  --insecure            do not verify the upstream's TLS certificate
  --profile NAME|FILE   the hops' timeouts and the app's heartbeat (wstap profiles
                        lists the shipped ones); flags override its values
  --timeout NAME=DUR[:MEASURE]
                        a hop's idle timeout, for the UI's countdowns; repeatable,
                        e.g. --timeout nginx.proxy_read_timeout=60s. MEASURE is
                        both-idle (default), client-idle, upstream-idle or lifetime
  --probe-token TOKEN   answer, as wstap itself, every request that carries the
                        header X-Wstap-Probe: TOKEN (any path; see wstap probe
                        --token); it never reaches the app. A request with a
                        wrong token is refused (403), one without the header
                        is relayed as always. At least 8 characters
  --nginx-error-log FILE
                        follow nginx's error log (across rotation) as evidence:
                        its lines about each connection name the hop that cut it
                        (nginx's timeout, or its absence). Needs
                        \`error_log FILE info;\`; tie lines exactly with
                        \`proxy_set_header X-Nginx-Connection $connection;\`.
                        nginx's times are read in this process's time zone (TZ)
  --metrics [HOST:]PORT Prometheus metrics at http://HOST:PORT/metrics (a bare
                        PORT is loopback; another address is warned about)
  --metrics-path-group REGEX=NAME
                        with --metrics: label connections whose request path
                        matches REGEX path_group="NAME" (first match wins; the
                        rest are "other"); repeatable, at most 50. Paths are
                        never labels themselves
  --metrics-no-process  with --metrics: leave out prom-client's process and
                        Node.js metrics (CPU, memory, event loop lag, GC,
                        handles), which cost the relay a few % more CPU at
                        high message rates
  --instance NAME       this proxy's name in the capture's header, so captures of
                        several proxies read together (wstap view A B) say which
                        connection came through which    [HOSTNAME/--listen]
  --no-tui              line output instead of the terminal UI (the default
                        when stdout is not a terminal)
  --log-file FILE       with the UI: where log lines go [$TMPDIR/wstap-log-*/]
  --log-format FORMAT   auto, pretty or json                             [auto]
  --log-level LEVEL     info, warn, error or debug                       [info]
                        (debug adds a line for each plain HTTP exchange
                        answered below 400; the capture has every one)
  -h, --help            this help

Signals: SIGINT or SIGTERM stop gracefully (a second one stops at once, 130).
SIGHUP (the terminal closed, an SSH session dropped) never stops relaying: the
UI closes and wstap goes on headless, logging to its log file, until SIGINT or
SIGTERM.

Exit status: 0 stopped; 1 the shutdown or the HAR failed; 2 bad usage or cannot
start; ${EXIT_INTERNAL_ERROR} internal error (its stack is logged, the capture written out first).
`;
