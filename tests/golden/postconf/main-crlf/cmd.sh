# CR is whitespace to the parser: it is trimmed from values. -e rewrites
# only the edited lines (with LF); the others keep their CR. (Postfix appends
# a new entry to a last line that lacks its newline, gluing the two; Rostfix
# adds the newline, so this case's file ends with one.)
run postconf -c . -n
run postconf -c . -h relayhost
run postconf -c . -h mail_name
run postconf -c . -e 'relay_domains = example.net'
touch -d '1 hour ago' main.cf
run cat -A main.cf
run postconf -c . -e 'mail_name = Edited' 'relayhost = [new.example.com]'
touch -d '1 hour ago' main.cf
run cat -A main.cf
