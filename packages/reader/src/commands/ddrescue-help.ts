/** `ddferry-reader ddrescue --help`. */
export const HELP = `ddferry-reader ddrescue: GNU ddrescue 1.27's rescue, made by ddferry. The same
algorithm, options, mapfiles and logs as GNU ddrescue; mapfile saves are atomic.
The source is only ever opened read-only.

Always use a mapfile: without one a rescue can't be resumed, only restarted.

Usage: ddferry-reader ddrescue [options] infile outfile [mapfile]

Options:
  -h, --help                     display this help and exit
  -V, --version                  output version information and exit
  -a, --min-read-rate=<bytes>    minimum read rate of good areas in bytes/s
  -A, --try-again                mark non-trimmed, non-scraped as non-tried
  -b, --sector-size=<bytes>      sector size of input device [default 512]
  -B, --binary-prefixes          show binary multipliers in numbers [SI]
  -c, --cluster-size=<sectors>   sectors to copy at a time [128]
  -C, --complete-only            don't read new data beyond mapfile limits
  -d, --idirect                  use direct disc access for input file
  -e, --max-bad-areas=[+]<n>     maximum number of [new] bad areas allowed
  -E, --max-error-rate=<bytes>   maximum allowed rate of read errors per second
  -f, --force                    overwrite output device or partition
  -H, --test-mode=<file>         set map of good/bad blocks from given mapfile
  -i, --input-position=<bytes>   starting position of domain in input file [0]
  -I, --check-input-size         compare input file size with size in mapfile
  -K, --skip-size=[<i>][,<max>]  initial,maximum size to skip on read error
  -L, --loose-domain             accept unordered domain mapfile with gaps
  -m, --domain-mapfile=<file>    restrict domain to finished blocks in <file>
  -M, --retrim                   mark all failed blocks as non-trimmed
  -n, --no-scrape                skip the scraping phase
  -N, --no-trim                  skip the trimming phase
  -o, --output-position=<bytes>  starting position in output file [ipos]
  -O, --reopen-on-error          reopen input file after every read error
  -p, --preallocate              preallocate space on disc for output file
  -q, --quiet                    suppress all messages
  -r, --retry-passes=<n>         exit after <n> retry passes (-1=infinity) [0]
  -R, --reverse                  reverse the direction of all passes
  -s, --size=<bytes>             maximum size of input data to be copied
  -S, --sparse                   use sparse writes for output file
  -t, --truncate                 truncate output file to zero size
  -T, --timeout=<interval>       maximum time since last successful read
  -u, --unidirectional           run all passes in the same direction
  -v, --verbose                  be verbose (a 2nd -v gives more)
  -x, --extend-outfile=<bytes>   extend outfile size to be at least this long
  -X, --max-read-errors=<n>      maximum number of read errors allowed
      --cpass=<range>            select what copying pass(es) to run
      --delay-slow=<interval>    initial delay before checking slow reads [30]
      --log-events=<file>        log significant events in <file>
      --log-rates=<file>         log rates and error sizes in <file>
      --log-reads=<file>         log all read operations in <file>
      --mapfile-interval=[i][,i]   save/sync mapfile at given interval [auto]
      --max-slow-reads=<n>         maximum number of slow reads allowed
      --pause-on-error=<interval>  time to wait after each read error [0]
      --pause-on-pass=<interval>   time to wait between passes [0]
      --reset-slow               reset slow reads if rate rises above min

Not offered (use GNU ddrescue itself; the mapfiles are the same): -D, -F, -G,
-J, -P, -w, -W, -y, -Z, --ask, --command-mode, --same-file.

Numbers may be in decimal, hexadecimal, or octal, and may be followed by a
multiplier: s = sectors, k = 1000, Ki = 1024, M = 10^6, Mi = 2^20, etc...
Time intervals have the format 1[.5][smhd] or 1/2[smhd].

The status block is written on standard error. SIGINT, SIGTERM and SIGHUP
finish the current read, save the mapfile and exit as GNU ddrescue does.

Exit status: 0 for a normal exit, 1 for environmental problems (file not
found, invalid command-line options, I/O errors, a stop condition, etc), 2 to
indicate a corrupt or invalid mapfile, 3 for an internal consistency error.
Errors carry a code (ERR_...); the README lists each and what to do.
`;

export const VERSION = 'ddferry-reader ddrescue 0.1.0 (the rescue of GNU ddrescue 1.27)\n';
