# CR is whitespace to the parser: it is trimmed from values; a missing final
# newline is fine. -e rewrites only the edited lines (with LF), the others
# keep their CR. (Appending to a file whose last line lacks a newline is not
# recorded: Postfix 3.7 output varies, see NOTES.md.)
run postconf -c . -n
run postconf -c . -h relayhost
run postconf -c . -h mail_name
run postconf -c . -e 'mail_name = Edited' 'relayhost = [new.example.com]'
touch -d '1 hour ago' main.cf
run cat -A main.cf
run postconf -c . -e 'relay_domains = example.net'
touch -d '1 hour ago' main.cf
run cat -A main.cf
