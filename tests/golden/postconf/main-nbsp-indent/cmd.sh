# Lines indented with U+00A0 (bytes c2 a0) are not continuation lines: postconf
# sees a new "name" without '=' and stops (the name is printed with ?? for the
# two non-ASCII bytes).
run postconf -c . -n
run postconf -c . debug_peer_level
run postconf -c . -d debugger_command
