# -h / -b / -m with -q -: read a message from stdin and query header lines
# (-h; multi-line headers are joined with their newlines), body lines (-b),
# or MIME part headers (-m); output is "input<TAB>result" for each hit.
# Without -h/-b every input line is an independent key.
run_in message postmap -c . -h -q - regexp:checks
run_in message postmap -c . -b -q - regexp:checks
run_in message postmap -c . -h -b -q - regexp:checks
run_in message postmap -c . -q - regexp:checks
run_in mime postmap -c . -h -q - regexp:checks
run_in mime postmap -c . -b -q - regexp:checks
run_in mime postmap -c . -m -h -q - regexp:checks
run_in mime postmap -c . -m -b -q - regexp:checks
run_in mime postmap -c . -m -h -b -q - regexp:checks
