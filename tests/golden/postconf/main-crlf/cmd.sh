# CR is whitespace to the parser: it is trimmed from values; a missing final
# newline is fine. -e rewrites only the edited line (with LF), the others keep CR.
run postconf -c . -n
run postconf -c . -h relayhost
run postconf -c . -h mail_name
run postconf -c . -e 'mail_name = Edited'
run cat -A main.cf
